"""The drawing surface: face units <-> pixels, antialiased coverage, layers.

Faces are drawn in batches of B photos at once (one numpy call serves them
all, which is what makes rendering fast: on small windows the call overhead
outweighs the arithmetic). Per-photo parameters are (B, 1, 1) float32 arrays
that broadcast against (B, h, w) pixel arrays.

A *layer* is ``(window, alpha, colour)``: ``window`` a pair of slices into the
images (the union of the photos' own windows), ``alpha`` (B, h, w) float32 in
[0, 1], ``colour`` (B, 3, h, w), (B, 3, 1, 1) or (3,) float32 sRGB in
[0, 255]; ``(window, alpha, colour, True)`` when the window is already cut to
where alpha reaches (see ``trim``: a layer computes its colour only there).
Compositing is ``img = img + alpha * (colour - img)``, so a pixel where alpha
is exactly 0 is left bit-for-bit unchanged. That is what makes
counterfactuals exact: an attribute's layers are zero outside its region.
Every soft profile has compact support, and a layer's window holds all of it,
for the same reason and so that a photo does not depend on which others share
its batch (windows are unions over the batch).

Speed: rendering is a few thousand NumPy calls a batch, so both the work per
pixel and the number of calls count. Temporaries are updated in place where
the arithmetic stays the same operation for operation (the images do not
change by a bit), layers are cut to where their alpha reaches before their
colour is computed, and per-pixel fields shared by layers are computed once
over the part of the image that needs them (``Face.field``).

Pixel centres are at integer coordinates (x = column, y = row), the convention
of OpenCV's warpAffine, so landmarks map to the same positions in an aligner.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import sys
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

F32 = np.float32
INF = F32(np.inf)

_MALLOC_TUNED = False


def keep_freed_memory() -> None:
    """Let glibc's malloc keep freed memory in the process (once; Linux only).

    A batch allocates and frees a few MB of 0.1-1 MB NumPy temporaries. By
    default glibc returns freed memory at the top of the heap to the kernel
    and maps large blocks afresh, so the next batch page-faults all of it in
    again: about a sixth of the rendering time went to the kernel. Raising the
    mmap threshold to 32 MiB and the trim threshold to 128 MiB (the process
    keeps at most that much unused) removes it.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or not sys.platform.startswith("linux"):
        return
    _MALLOC_TUNED = True
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 128 << 20)


@dataclass(frozen=True, eq=False)
class Canvas:
    """B images of ``height`` x ``width`` pixels, each showing its face under a
    similarity transform: pixel = (cx, cy) + scale * R(angle) @ face_point.

    ``scale``, ``angle``, ``cx``, ``cy``: (B,) float64.
    """

    height: int
    width: int
    scale: np.ndarray
    angle: np.ndarray
    cx: np.ndarray
    cy: np.ndarray

    @property
    def n(self) -> int:
        return len(self.scale)

    @cached_property
    def px(self) -> np.ndarray:
        """(B, 1, 1) the size of one pixel in face units (the antialiasing width)."""
        return (1.0 / self.scale).astype(F32).reshape(-1, 1, 1)

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        """(B, N, 2) face units -> (B, N, 2) pixel coordinates."""
        c, s = np.cos(self.angle)[:, None], np.sin(self.angle)[:, None]
        p = np.asarray(points, np.float64)
        k = self.scale[:, None]
        x = self.cx[:, None] + k * (c * p[..., 0] - s * p[..., 1])
        y = self.cy[:, None] + k * (s * p[..., 0] + c * p[..., 1])
        return np.stack([x, y], axis=-1)

    @cached_property
    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """(B, H, W) float32 face coordinates ``u``, ``v`` of every pixel centre."""
        c = (np.cos(self.angle) / self.scale).astype(F32).reshape(-1, 1, 1)
        s = (np.sin(self.angle) / self.scale).astype(F32).reshape(-1, 1, 1)
        x = np.arange(self.width, dtype=F32)[None, None, :] - self.cx.astype(F32).reshape(-1, 1, 1)
        y = np.arange(self.height, dtype=F32)[None, :, None] - self.cy.astype(F32).reshape(-1, 1, 1)
        return c * x + s * y, c * y - s * x

    def window(self, x0, y0, x1, y1):
        """The pixels covering the face-unit box [x0, x1] x [y0, y1] of every photo
        (each bound a scalar or a (B, 1, 1) array).

        Returns ``(win, u, v)``: ``win`` a (rows, cols) pair of slices and
        ``u``, ``v`` (B, h, w) float32 face coordinates of those pixels (views);
        None when the box lies outside every image.
        """
        # few NumPy calls: at ~30 windows a batch their fixed cost adds up
        box = np.empty((4, self.n))
        box[0], box[1], box[2], box[3] = (b.reshape(-1) if isinstance(b, np.ndarray) else b for b in (x0, x1, y0, y1))
        corners = box[[0, 1, 0, 1, 2, 2, 3, 3]].reshape(2, 4, -1).transpose(2, 0, 1)  # (B, 2, 4): x, y
        px = self._affine @ corners  # (B, 2, 4) pixel x, y of the corners, less the centre
        px += self._centre
        (xmin, ymin), (xmax, ymax) = px.min(axis=(0, 2)).tolist(), px.max(axis=(0, 2)).tolist()
        c0 = max(math.floor(xmin) - 2, 0)
        c1 = min(math.ceil(xmax) + 3, self.width)
        r0 = max(math.floor(ymin) - 2, 0)
        r1 = min(math.ceil(ymax) + 3, self.height)
        if c0 >= c1 or r0 >= r1:
            return None
        win = (slice(r0, r1), slice(c0, c1))
        u, v = self.coords
        return win, u[:, r0:r1, c0:c1], v[:, r0:r1, c0:c1]

    def subset(self, photos) -> "Canvas":
        """The canvas of some of the photos (indices), sharing computed coordinates."""
        sub = Canvas(self.height, self.width, self.scale[photos], self.angle[photos], self.cx[photos], self.cy[photos])
        if "coords" in self.__dict__:  # computed already: copy rather than recompute
            sub.__dict__["coords"] = tuple(c[photos] for c in self.coords)
        return sub

    def pixels(self, x0, y0, x1, y1):
        """The (rows, cols) slices of ``window`` alone (None outside every image)."""
        got = self.window(x0, y0, x1, y1)
        return None if got is None else got[0]

    @cached_property
    def _affine(self) -> np.ndarray:
        """(B, 2, 2) face units -> pixels, less the translation."""
        c, s = np.cos(self.angle) * self.scale, np.sin(self.angle) * self.scale
        return np.stack([np.stack([c, -s], 1), np.stack([s, c], 1)], 1)

    @cached_property
    def _centre(self) -> np.ndarray:
        """(B, 2, 1) pixel position of each face's origin."""
        return np.stack([self.cx, self.cy], 1)[:, :, None]

    def full(self):
        u, v = self.coords
        return (slice(0, self.height), slice(0, self.width)), u, v

    def uv(self, win) -> tuple[np.ndarray, np.ndarray]:
        """(B, h, w) face coordinates of the pixels of ``win`` (views)."""
        u, v = self.coords
        return u[:, win[0], win[1]], v[:, win[0], win[1]]


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


def bump(x: np.ndarray) -> np.ndarray:
    """A Gaussian-like profile exp(-x^2/2) with compact support: (1 - x^2/8)^4 for |x| < 2.83, else 0."""
    t = x * x
    t *= F32(1 / 8)
    np.subtract(F32(1), t, out=t)
    clamp(t, F32(0), INF)
    t *= t
    t *= t
    return t


GAUSS_REACH = 2.83  # gauss and bump are 0 beyond sqrt(8) = 2.828 standard deviations


def gauss(u: np.ndarray, v: np.ndarray, cx, cy, sx, sy) -> np.ndarray:
    """A 2-D blob of standard deviations (sx, sy), 0 beyond ``GAUSS_REACH`` of them (see ``bump``)."""
    x = u - F32(cx)
    x *= F32(1 / sx)
    y = v - F32(cy)
    y *= F32(1 / sy)
    x *= x
    y *= y
    t = np.add(x, y, out=x)
    t *= F32(1 / 8)
    np.subtract(F32(1), t, out=t)
    clamp(t, F32(0), INF)
    t *= t
    t *= t
    return t


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = x - F32(e0)
    t *= F32(1 / (e1 - e0))
    clamp(t, F32(0), F32(1))
    k = F32(2) * t
    np.subtract(F32(3), k, out=k)
    k *= t * t  # (t t) (3 - 2 t)
    return k


def tint_rgb(rgb: np.ndarray, k: np.ndarray) -> np.ndarray:
    """A colour ((3,) or (B, 3, 1, 1)) times a (B, h, w) factor -> (B, 3, h, w)."""
    rgb = np.asarray(rgb, F32)
    if rgb.ndim == 1:
        rgb = rgb[None, :, None, None]
    return rgb * k[:, None]


def trim(win, alpha: np.ndarray):
    """Cut a layer's window to the rows and columns where some photo's alpha
    (>= 0) is nonzero; pixels outside are left unchanged by the layer anyway.

    Returns ``(win, alpha, sub)``, ``sub`` the (rows, cols) slices of the old
    window's arrays to keep (to cut its colour, or to compute it only there);
    None when alpha is zero everywhere.
    """
    # ufunc reductions directly: the array methods' Python wrappers cost more
    # than the work on most layers
    reach = np.maximum.reduce(alpha, axis=0) > 0
    rows = np.logical_or.reduce(reach, axis=1).nonzero()[0]
    if not len(rows):
        return None
    cols = np.logical_or.reduce(reach, axis=0).nonzero()[0]
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    sub = (slice(r0, r1), slice(c0, c1))
    win = (slice(win[0].start + r0, win[0].start + r1), slice(win[1].start + c0, win[1].start + c1))
    return win, alpha[:, r0:r1, c0:c1], sub


def composite(img: np.ndarray, layers: list, photos: np.ndarray | None = None) -> None:
    """Paint ``layers`` (window, alpha, colour) over ``img`` (B, 3, H, W) float32, in place.

    ``photos``: the indices of the photos of ``img`` that the layers were drawn
    for (their arrays' first axis runs over these); None: all of them.

    Images are planar (channels first) so that every numpy loop runs along a
    contiguous row rather than over three interleaved channels.
    """
    if photos is not None:  # one photo at a time, through views of img
        for j, k in enumerate(photos):
            composite(img[k:k + 1], [(layer[0], layer[1][j:j + 1], _photo(layer[2], j)) for layer in layers])
        return
    for layer in layers:
        win, alpha, colour = layer[:3]
        if colour.ndim == 1:
            colour = colour[None, :, None, None]
        if len(layer) == 3 and alpha.shape[1] * alpha.shape[2] > 200:  # paint only where some photo's alpha reaches
            got = trim(win, alpha)
            if got is None:
                continue
            win, alpha, sub = got
            if colour.shape[-1] > 1:
                colour = colour[:, :, sub[0], sub[1]]
        region = img[:, :, win[0], win[1]]
        step = colour - region
        step *= alpha[:, None]
        region += step


def _photo(colour: np.ndarray, j: int) -> np.ndarray:
    """Photo ``j``'s part of a layer colour ((3,) and (1, 3, ...) colours serve all)."""
    return colour[j:j + 1] if colour.ndim == 4 and colour.shape[0] > 1 else colour


def finish(img: np.ndarray, gain: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Light gradient, sensor noise, rounding: (B, 3, H, W) float32 -> (B, H, W, 3) uint8.

    Both are per-pixel and identical for a photo and its counterfactual, so a
    pixel whose painted colour is unchanged stays byte-identical.
    """
    out = img * gain[:, None]
    out += noise
    out += F32(0.5)  # round half up by truncation
    planes = clamp(out, F32(0), F32(255.5)).astype(np.uint8)
    rgb = np.empty((planes.shape[0], planes.shape[2], planes.shape[3], 3), np.uint8)
    for k, (r, g, b) in enumerate(planes):  # planar -> interleaved: cv2.merge is ~6x NumPy's transposed copy
        got = cv2.merge((r, g, b), dst=rgb[k])
        if not np.shares_memory(got, rgb):  # OpenCV allocated its own output
            rgb[k] = got
    return rgb


_TEXTURES: dict[str, np.ndarray] = {}


def _blurred_noise(sigma_rows: float, sigma_cols: float, n: int = 256) -> np.ndarray:
    """A tileable (n, n) noise texture, std 1, blurred by a Gaussian in the
    frequency domain, rounded to 1/64 so it is the same on every machine."""
    rng = np.random.default_rng(1234567)
    white = rng.standard_normal((n, n))
    f = np.fft.fftfreq(n)
    kernel = np.exp(-2 * np.pi**2 * ((f[:, None] * sigma_rows) ** 2 + (f[None, :] * sigma_cols) ** 2))
    tex = np.fft.ifft2(np.fft.fft2(white) * kernel).real
    tex = (tex - tex.mean()) / tex.std()
    return (np.round(tex * 64) / 64).astype(F32)


def texture(name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sample a fixed noise texture at texel coordinates (a, b) (nearest, tiled).

    ``grain``: isotropic fine noise; ``streak``: long along b (hair strands).
    """
    tex = _TEXTURES.get(name)
    if tex is None:
        tex = _TEXTURES[name] = _blurred_noise(*{"grain": (0.8, 0.8), "streak": (0.7, 10.0)}[name])
    ia = (a + F32(65536)).astype(np.int32)
    ib = (b + F32(65536)).astype(np.int32)
    ia &= 255
    ib &= 255
    ia <<= 8
    ia |= ib  # the flat index a * 256 + b: one take is ~3x a 2-D fancy index
    return tex.reshape(-1).take(ia)
