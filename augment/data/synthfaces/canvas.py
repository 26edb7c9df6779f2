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

This module holds the surface (``Canvas``); the per-pixel primitives live in
shapes.py (clipping, coverage, signed distances, soft profiles) and
compositing.py (colours, textures, layers, bytes), and are re-exported here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import sys
from dataclasses import dataclass
from functools import cached_property

import numpy as np

# The primitives, re-exported here: the drawing modules import them from canvas.
from augment.data.synthfaces.compositing import composite, finish, texture, tint_rgb, trim  # noqa: F401
from augment.data.synthfaces.shapes import (  # noqa: F401
    F32,
    GAUSS_REACH,
    INF,
    at_least,
    at_most,
    bump,
    circle,
    clamp,
    cover,
    cover_implicit,
    ellipse,
    gauss,
    rounded_box,
    select,
    smoothstep,
    sphere_z,
)

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
