"""Colour and compositing: tints, noise textures, layers painted over the
images and the final conversion to bytes (layers: see canvas.py).
"""

from __future__ import annotations

import cv2
import numpy as np

from augment.data.synthfaces.shapes import F32, clamp


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
