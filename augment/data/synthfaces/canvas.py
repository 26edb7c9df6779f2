"""The drawing surface: face units <-> pixels, antialiased coverage, layers.

Faces are drawn in batches of B photos at once (one numpy call serves them
all, which is what makes rendering fast: on small windows the call overhead
outweighs the arithmetic). Per-photo parameters are (B, 1, 1) float32 arrays
that broadcast against (B, h, w) pixel arrays.

A *layer* is ``(window, alpha, colour)``: ``window`` a pair of slices into the
images (the union of the photos' own windows), ``alpha`` (B, h, w) float32 in
[0, 1], ``colour`` (B, 3, h, w), (B, 3, 1, 1) or (3,) float32 sRGB in
[0, 255]. Compositing is ``img = img + alpha * (colour - img)``, so a pixel
where alpha is exactly 0 is left bit-for-bit unchanged. That is what makes
counterfactuals exact: an attribute's layers are zero outside its region.
Every soft profile has compact support for the same reason (and so that a
photo does not depend on which others share its batch and its windows).

Pixel centres are at integer coordinates (x = column, y = row), the convention
of OpenCV's warpAffine, so landmarks map to the same positions in an aligner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

F32 = np.float32


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
        n = self.n
        box = np.empty((4, n))
        for k, b in enumerate((x0, x1, y0, y1)):
            box[k] = np.reshape(b, -1) if np.ndim(b) else b
        c, s = self._rot
        ax, ay = c * box[0:2, None] - s * box[None, 2:4], s * box[0:2, None] + c * box[None, 2:4]
        xs, ys = self.cx + ax, self.cy + ay
        c0 = max(math.floor(xs.min()) - 2, 0)
        c1 = min(math.ceil(xs.max()) + 3, self.width)
        r0 = max(math.floor(ys.min()) - 2, 0)
        r1 = min(math.ceil(ys.max()) + 3, self.height)
        if c0 >= c1 or r0 >= r1:
            return None
        win = (slice(r0, r1), slice(c0, c1))
        u, v = self.coords
        return win, u[:, r0:r1, c0:c1], v[:, r0:r1, c0:c1]

    @cached_property
    def _rot(self) -> tuple[np.ndarray, np.ndarray]:
        return np.cos(self.angle) * self.scale, np.sin(self.angle) * self.scale

    def full(self):
        u, v = self.coords
        return (slice(0, self.height), slice(0, self.width)), u, v


def clamp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``np.clip`` in place on a temporary, without its Python-level dispatch
    (which costs more than the arithmetic on a small window)."""
    np.maximum(x, F32(lo), out=x)
    np.minimum(x, F32(hi), out=x)
    return x


def cover(d: np.ndarray, px: float, soft: float = 1.0) -> np.ndarray:
    """Coverage of a pixel by the shape whose signed distance (face units,
    negative inside) is ``d``: a one-pixel (times ``soft``) linear ramp."""
    return clamp(F32(0.5) - d * F32(1.0 / (px * soft)), 0.0, 1.0)


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
    fw = np.abs(gx) + np.abs(gy) + F32(1e-6)
    return clamp(F32(0.5) - f / (fw * F32(soft)), 0.0, 1.0)


def ellipse(u: np.ndarray, v: np.ndarray, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (exact on the axes)."""
    x = (u - F32(cx)) * F32(1 / a)
    y = (v - F32(cy)) * F32(1 / b)
    q = np.sqrt(x * x + y * y)
    g = np.sqrt(x * x * F32(1 / (a * a)) + y * y * F32(1 / (b * b))) + F32(1e-6)
    return (q - F32(1.0)) * q / g


def circle(u: np.ndarray, v: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    du, dv = u - F32(cx), v - F32(cy)
    return np.sqrt(du * du + dv * dv) - F32(r)


def rounded_box(u: np.ndarray, v: np.ndarray, hw: float, hh: float, r: float) -> np.ndarray:
    """Signed distance to a box of half-size (hw, hh) with corner radius r, centred at 0."""
    qx = np.abs(u) - F32(hw - r)
    qy = np.abs(v) - F32(hh - r)
    mx, my = np.maximum(qx, 0), np.maximum(qy, 0)
    return np.sqrt(mx * mx + my * my) + np.minimum(np.maximum(qx, qy), 0) - F32(r)


def bump(x: np.ndarray) -> np.ndarray:
    """A Gaussian-like profile exp(-x^2/2) with compact support: (1 - x^2/8)^4 for |x| < 2.83, else 0."""
    t = np.maximum(F32(1) - x * x * F32(1 / 8), 0)
    t *= t
    return t * t


def gauss(u: np.ndarray, v: np.ndarray, cx, cy, sx, sy) -> np.ndarray:
    """A 2-D blob of standard deviations (sx, sy) (compactly supported, see ``bump``)."""
    x = (u - F32(cx)) * F32(1 / sx)
    y = (v - F32(cy)) * F32(1 / sy)
    t = np.maximum(F32(1) - (x * x + y * y) * F32(1 / 8), 0)
    t *= t
    return t * t


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = clamp((x - F32(e0)) * F32(1 / (e1 - e0)), 0.0, 1.0)
    return t * t * (F32(3) - F32(2) * t)


def tint_rgb(rgb: np.ndarray, k: np.ndarray) -> np.ndarray:
    """A colour ((3,) or (B, 3, 1, 1)) times a (B, h, w) factor -> (B, 3, h, w)."""
    rgb = np.asarray(rgb, F32)
    if rgb.ndim == 1:
        rgb = rgb[None, :, None, None]
    return rgb * k[:, None]


def composite(img: np.ndarray, layers: list) -> None:
    """Paint ``layers`` (window, alpha, colour) over ``img`` (B, 3, H, W) float32, in place.

    Images are planar (channels first) so that every numpy loop runs along a
    contiguous row rather than over three interleaved channels.
    """
    for win, alpha, colour in layers:
        if colour.ndim == 1:
            colour = colour[None, :, None, None]
        if alpha.shape[1] * alpha.shape[2] > 2500:
            # a large window: paint only the rows and columns some photo's alpha reaches
            rows, cols = np.flatnonzero(alpha.any(axis=(0, 2))), np.flatnonzero(alpha.any(axis=(0, 1)))
            if not len(rows):
                continue
            r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            alpha = alpha[:, r0:r1, c0:c1]
            win = (slice(win[0].start + r0, win[0].start + r1), slice(win[1].start + c0, win[1].start + c1))
            if colour.shape[-1] > 1:
                colour = colour[:, :, r0:r1, c0:c1]
        region = img[:, :, win[0], win[1]]
        step = colour - region
        step *= alpha[:, None]
        region += step


def finish(img: np.ndarray, gain: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Light gradient, sensor noise, rounding: (B, 3, H, W) float32 -> (B, H, W, 3) uint8.

    Both are per-pixel and identical for a photo and its counterfactual, so a
    pixel whose painted colour is unchanged stays byte-identical.
    """
    out = img * gain[:, None]
    out += noise
    out += F32(0.5)  # round half up by truncation
    clamp(out, 0, 255.5)
    return np.ascontiguousarray(out.astype(np.uint8).transpose(0, 2, 3, 1))


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
    ia = (a + F32(65536)).astype(np.int32) & 255
    ib = (b + F32(65536)).astype(np.int32) & 255
    return tex[ia, ib]
