"""Similarity transforms and the warp that applies them.

A transform is a 2x3 float64 matrix ``M`` mapping source pixel (x, y, 1) to
aligned pixel coordinates, pixel centres at integer coordinates, exactly what
``cv2.warpAffine(src, M, (size, size))`` expects.

Border: ``BORDER_REPLICATE``. A loose crop (the ``sagan`` template) often
reaches past the edge of a tight photo; replicating the edge pixels keeps the
outside smooth, where a constant black wedge would put a hard artificial edge
into the images that the GAN's attention mask and the recognizer would then
have to learn to ignore.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

BORDER = cv2.BORDER_REPLICATE


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection)
    taking ``src`` points onto ``dst`` points (Umeyama 1991).

    src, dst: (N, 2) with N >= 2. Returns the 2x3 float64 matrix. Unlike
    ``cv2.estimateAffinePartial2D`` (RANSAC by default) it uses every point, so
    five landmarks pull the face to the template together and the result is
    deterministic.
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c**2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("landmarks coincide; no similarity transform exists")
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1  # the best fit would mirror the face: take the best proper rotation
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def scale_of(m: np.ndarray) -> float:
    """Output pixels per source pixel of a similarity (or the geometric mean for an affine)."""
    return math.sqrt(abs(np.linalg.det(np.asarray(m, dtype=np.float64)[:, :2])))


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 2x3 transform ``a after b`` (apply b, then a)."""
    a3 = np.vstack([a, [0, 0, 1]])
    b3 = np.vstack([b, [0, 0, 1]])
    return (a3 @ b3)[:2]


def rescale(sx: float, sy: float) -> np.ndarray:
    """2x3 map from a resized image's pixels to the original's, where one resized
    pixel spans (sx, sy) original pixels: x = (x' + 0.5) * sx - 0.5 (as cv2.resize samples)."""
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points through the 2x3 transform ``m``."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return p @ np.asarray(m, dtype=np.float64)[:, :2].T + np.asarray(m, dtype=np.float64)[:, 2]


def centre_square(width: int, height: int, size: int) -> np.ndarray:
    """The transform that takes the centred square of side min(w, h) to ``size`` x ``size``."""
    side = min(width, height)
    x0, y0 = (width - side) / 2, (height - side) / 2
    k = size / side
    return np.array([[k, 0.0, (0.5 - x0) * k - 0.5], [0.0, k, (0.5 - y0) * k - 0.5]])


def warp(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Warp (H, W, C) uint8 ``image`` by the 2x3 ``m`` into a ``size`` x ``size`` crop.

    When the warp shrinks by more than 2x (a large face in a big photo), bilinear
    sampling alone would alias; the part of the image the crop sees is first
    reduced by area averaging to the output's scale, and the rest of the warp
    (rotation, sub-pixel shift) is done at about 1:1.
    """
    m = np.asarray(m, dtype=np.float64)
    k = scale_of(m)
    if k < 0.5:
        h, w = image.shape[:2]
        corners = apply(cv2.invertAffineTransform(m), [[-1, -1], [size, -1], [-1, size], [size, size]])
        margin = 2.0 / k  # bilinear support of the final warp, in source pixels
        x0 = int(max(0, math.floor(corners[:, 0].min() - margin)))
        y0 = int(max(0, math.floor(corners[:, 1].min() - margin)))
        x1 = int(min(w, math.ceil(corners[:, 0].max() + margin)))
        y1 = int(min(h, math.ceil(corners[:, 1].max() + margin)))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            crop = image[y0:y1, x0:x1]
            cw, ch = max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k))
            small = cv2.resize(crop, (cw, ch), interpolation=cv2.INTER_AREA)
            # small pixel -> crop pixel -> source pixel -> aligned pixel
            to_src = compose(np.array([[1.0, 0, x0], [0, 1.0, y0]]), rescale((x1 - x0) / cw, (y1 - y0) / ch))
            return cv2.warpAffine(small, compose(m, to_src), (size, size), flags=cv2.INTER_LINEAR, borderMode=BORDER)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=BORDER)
