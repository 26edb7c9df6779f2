"""The whole-photo fields: the background, the light gradient and the sensor noise.

Drawn for a batch of photos (see face.py); render.py paints the background
first and applies the light gradient and noise last (``finish``, compositing.py).
"""

from __future__ import annotations

from functools import lru_cache
from statistics import NormalDist

import cv2
import numpy as np

from augment.data.synthfaces.canvas import F32, clamp
from augment.data.synthfaces.face import Face


@lru_cache(maxsize=8)
def _smooth_upsampling(n: int, k: int = 4) -> np.ndarray:
    """(n, k) weights that spread k control values smoothly over n pixels (a
    quadratic B-spline basis on a k-point grid)."""
    x = (np.arange(n) + 0.5) / n * (k - 1)
    d = np.abs(x[:, None] - np.arange(k)[None, :])
    w = np.where(d < 0.5, 0.75 - d**2, np.where(d < 1.5, 0.5 * (1.5 - d) ** 2, 0.0))
    return (w / w.sum(1, keepdims=True)).astype(F32)


def background(face: Face) -> np.ndarray:
    """(B, 3, H, W) float32: a colour, a smooth random variation and a vertical gradient."""
    c = face.canvas
    ry, rx = _smooth_upsampling(c.height), _smooth_upsampling(c.width)
    grid = np.stack([s.background[None, None, :] + s.bg_grid for s in face.shots]).transpose(0, 3, 1, 2)
    ry = ry * np.linspace(1.08, 0.9, c.height, dtype=F32)[:, None]  # darker towards the bottom
    img = ry @ grid.astype(F32) @ rx.T  # (B, 3, H, W)
    return clamp(img, 0, 255)


def light_gain(face: Face) -> np.ndarray:
    """(B, H, W) float32 multiplicative light gradient across each whole photo."""
    _, u, v = face.canvas.full()
    s = face.s
    g = u * s.lx
    g += v * s.ly
    g *= s.light_gain * F32(0.25)
    g += F32(1)
    return clamp(g, F32(0.75), F32(1.25))


@lru_cache(maxsize=1)
def _gaussian_bytes() -> np.ndarray:
    """256 quantiles of the standard normal: maps a uniform byte to a Gaussian value."""
    nd = NormalDist()
    return np.array([nd.inv_cdf((k + 0.5) / 256) for k in range(256)], F32)


def sensor_noise(face: Face) -> np.ndarray:
    """(B, 3, H, W) float32 zero-mean Gaussian noise of std ``noise_sigma`` (about;
    quantised to 256 levels, which makes it cheap to draw: one byte per value).
    Each photo draws from its own seed."""
    c = face.canvas
    rows = 3 * c.height
    noise = np.empty((face.n, 3, c.height, c.width), F32)
    for k, s in enumerate(face.shots):
        # the bytes of default_rng(seed).integers(0, 256, n, dtype=np.uint8), which come
        # from PCG64's 64-bit outputs in little-endian order; random_raw is ~2x faster
        n = rows * c.width
        codes = np.random.PCG64(s.noise_seed).random_raw(-(-n // 8)).astype("<u8", copy=False).view(np.uint8)[:n]
        # a table lookup (cv2.LUT: ~4x NumPy's fancy indexing) of the photo's scaled quantiles
        into = noise[k].reshape(rows, c.width)
        got = cv2.LUT(codes.reshape(rows, c.width), _gaussian_bytes() * F32(s.noise_sigma), dst=into)
        if not np.shares_memory(got, into):  # OpenCV allocated its own output
            into[...] = got
    return noise
