"""Per-pixel primitives of the drawing surface (canvas.py): in-place clipping,
antialiased coverage, signed distances and soft profiles with compact support.

All work on float32 (B, h, w) arrays of face coordinates and update their
temporaries in place where the arithmetic stays the same (see canvas.py).
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
INF = F32(np.inf)


# NumPy's clip runs 2-4x faster than np.maximum / np.minimum against a scalar
# or a (B, 1, 1) array (those take a slow broadcasting loop); for numbers (no
# NaN) the results are the same. The ndarray method skips np.clip's Python
# wrapper (~5 us a call, and there are ~100 calls a batch).


def clamp(x: np.ndarray, lo, hi) -> np.ndarray:
    """Clip a temporary in place (bounds: scalars or (B, 1, 1) arrays)."""
    return x.clip(lo, hi, out=x)


def sphere_z(nx: np.ndarray, ny: np.ndarray, floor) -> np.ndarray:
    """The z of a unit normal with x ``nx`` and y ``ny``: sqrt(1 - nx^2 - ny^2),
    kept at least sqrt(``floor``) so that silhouettes never go fully dark (a new array)."""
    nz = nx * nx
    np.subtract(F32(1), nz, out=nz)
    nz -= ny * ny
    return np.sqrt(clamp(nz, floor, INF), out=nz)


def at_least(x: np.ndarray, lo) -> np.ndarray:
    """``np.maximum(x, lo)`` for a scalar or per-photo ``lo`` (a new array)."""
    return x.clip(lo, INF)


def at_most(x: np.ndarray, hi) -> np.ndarray:
    """``np.minimum(x, hi)`` for a scalar or per-photo ``hi`` (a new array)."""
    return x.clip(-INF, hi)


def select(cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.where(cond, a, b)`` for a per-photo (B, 1, 1) ``cond``: returns ``a`` or
    ``b`` itself when every photo takes the same branch (the usual case: a
    batch is mostly one person's photos)."""
    if cond.all():
        return a
    if not cond.any():
        return b
    return np.where(cond, a, b)


def cover(d: np.ndarray, px: float, soft: float = 1.0) -> np.ndarray:
    """Coverage of a pixel by the shape whose signed distance (face units,
    negative inside) is ``d``: a one-pixel (times ``soft``) linear ramp."""
    t = d * F32(1.0 / (px * soft))
    np.subtract(F32(0.5), t, out=t)
    return clamp(t, F32(0), F32(1))


def cover_implicit(f: np.ndarray, soft: float = 1.0) -> np.ndarray:
    """Coverage for an implicit function that is not a distance (negative inside):
    divide by its screen-space gradient, as a shader's ``fwidth`` does."""
    gx = np.empty_like(f)
    gy = np.empty_like(f)
    if f.shape[-1] > 1:
        gx[..., :-1] = f[..., 1:] - f[..., :-1]
        gx[..., -1] = gx[..., -2]
    else:
        gx[:] = 1.0
    if f.shape[-2] > 1:
        gy[..., :-1, :] = f[..., 1:, :] - f[..., :-1, :]
        gy[..., -1, :] = gy[..., -2, :]
    else:
        gy[:] = 1.0
    fw = np.abs(gx, out=gx)
    fw += np.abs(gy, out=gy)
    fw += F32(1e-6)
    fw *= F32(soft)
    np.divide(f, fw, out=fw)
    np.subtract(F32(0.5), fw, out=fw)
    return clamp(fw, F32(0), F32(1))


def ellipse(u: np.ndarray, v: np.ndarray, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (exact on the axes)."""
    x = u - F32(cx)
    x *= F32(1 / a)
    y = v - F32(cy)
    y *= F32(1 / b)
    x *= x  # x^2
    y *= y
    q = x + y
    np.sqrt(q, out=q)
    x *= F32(1 / (a * a))
    y *= F32(1 / (b * b))
    x += y
    g = np.sqrt(x, out=x)
    g += F32(1e-6)
    d = q - F32(1.0)
    d *= q
    d /= g
    return d


def circle(u: np.ndarray, v: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    du, dv = u - F32(cx), v - F32(cy)
    du *= du
    dv *= dv
    du += dv
    np.sqrt(du, out=du)
    du -= F32(r)
    return du


def rounded_box(u: np.ndarray, v: np.ndarray, hw: float, hh: float, r: float) -> np.ndarray:
    """Signed distance to a box of half-size (hw, hh) with corner radius r, centred at 0."""
    qx = np.abs(u)
    qx -= F32(hw - r)
    qy = np.abs(v)
    qy -= F32(hh - r)
    mx, my = at_least(qx, F32(0)), at_least(qy, F32(0))
    mx *= mx
    my *= my
    mx += my
    d = np.sqrt(mx, out=mx)
    inside = np.maximum(qx, qy, out=qx)
    d += clamp(inside, -INF, F32(0))
    d -= F32(r)
    return d


def _falloff(t: np.ndarray) -> np.ndarray:
    """(1 - t/8)^4 where t < 8, else 0, in place: t is a squared distance in standard
    deviations, so the profile is Gaussian-like, exp(-t/2), with compact support."""
    t *= F32(1 / 8)
    np.subtract(F32(1), t, out=t)
    clamp(t, F32(0), INF)
    t *= t
    t *= t
    return t


def bump(x: np.ndarray) -> np.ndarray:
    """A Gaussian-like profile exp(-x^2/2) with compact support: (1 - x^2/8)^4 for |x| < 2.83, else 0."""
    return _falloff(x * x)


GAUSS_REACH = 2.83  # gauss and bump are 0 beyond sqrt(8) = 2.828 standard deviations


def gauss(u: np.ndarray, v: np.ndarray, cx, cy, sx, sy) -> np.ndarray:
    """A 2-D blob of standard deviations (sx, sy), 0 beyond ``GAUSS_REACH`` of them (see ``bump``)."""
    x = u - F32(cx)
    x *= F32(1 / sx)
    y = v - F32(cy)
    y *= F32(1 / sy)
    x *= x
    y *= y
    return _falloff(np.add(x, y, out=x))


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = x - F32(e0)
    t *= F32(1 / (e1 - e0))
    clamp(t, F32(0), F32(1))
    k = F32(2) * t
    np.subtract(F32(3), k, out=k)
    k *= t * t  # (t t) (3 - 2 t)
    return k
