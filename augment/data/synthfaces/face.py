"""A batch of photos being drawn: stacked parameters, contour, normals, lighting.

``Face.i`` holds the identities' traits and ``Face.s`` the shots' nuisance as
(B, 1, 1) float32 arrays (colours (B, 3, 1, 1)), so drawing code reads like
the single-photo formulas and broadcasts over the batch. All functions take
face-unit coordinate arrays ``u`` (right) and ``v`` (down) of one window,
(B, h, w), and return float32 arrays of that shape.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from types import SimpleNamespace
from typing import Callable

import numpy as np

from augment.data.synthfaces.canvas import F32, Canvas, clamp
from augment.data.synthfaces.params import HAIR_STYLES, Identity, Shot

CHEEK_Y = 0.25  # where the face is widest; above it the skull, below it the jaw
SKULL_TOP = -1.85
COLOURS = ("skin", "iris", "lips", "hair", "beard", "frame")


@lru_cache(maxsize=4096)
def _contour_table(w: float, chin: float, p: float, n: int = 1024):
    """The face contour's half-width and slope sampled over its height.

    Above the cheekbones an ellipse (the skull); below, a superellipse
    ``(1 - t^p)^(1/p)`` whose exponent sets a pointed or square jaw.
    """
    v = np.linspace(SKULL_TOP, chin, n)
    top_h = CHEEK_Y - SKULL_TOP
    s = np.clip((CHEEK_Y - v) / top_h, 0.0, 0.9999)
    root = np.sqrt(1 - s * s)
    jaw_h = chin - CHEEK_Y
    t = np.clip((v - CHEEK_Y) / jaw_h, 0.0, 1.0)
    rest = np.maximum(1 - t**p, 1e-4)
    upper = v < CHEEK_Y
    hw = np.where(upper, w * root, w * rest ** (1 / p))
    dhw = np.where(upper, w / top_h * s / root, w / jaw_h * t ** (p - 1) * rest ** (1 / p - 1))
    return (n - 1) / (chin - SKULL_TOP), hw.astype(F32), dhw.astype(F32)


def _stack(values: list, shape=(1, 1)) -> np.ndarray:
    return np.asarray(values, F32).reshape(len(values), *shape)


class Face:
    """B photos (any mix of people) drawn together on one canvas size."""

    def __init__(self, idents: list[Identity], shots: list[Shot], height: int, width: int):
        self.idents, self.shots = idents, shots
        self.n = len(shots)
        self.canvas = Canvas(height, width, *(np.array([getattr(s, k) for s in shots], np.float64)
                                              for k in ("scale", "angle", "cx", "cy")))
        traits = {}
        for f in dataclasses.fields(Identity):
            vals = [getattr(x, f.name) for x in idents]
            if f.name in COLOURS:
                traits[f.name] = _stack(vals, (3, 1, 1))
            elif isinstance(vals[0], float):
                traits[f.name] = _stack(vals)
        for style in HAIR_STYLES:
            traits[style] = _stack([x.hair_style == style for x in idents])
        for style in ("full", "goatee", "stubble"):
            traits["beard_" + style] = _stack([x.beard_style == style for x in idents])
        self.i = SimpleNamespace(**traits)
        light = np.array([s.light for s in shots], F32)
        self.s = SimpleNamespace(
            lx=light[:, 0].reshape(-1, 1, 1), ly=light[:, 1].reshape(-1, 1, 1), lz=light[:, 2].reshape(-1, 1, 1),
            ambient=_stack([s.ambient for s in shots]), light_gain=_stack([s.light_gain for s in shots]),
            gx=_stack([s.gaze[0] for s in shots]), gy=_stack([s.gaze[1] for s in shots]),
            clothes=_stack([s.clothes for s in shots], (3, 1, 1)),
        )
        self._memo: dict = {}

    @property
    def px(self) -> np.ndarray:
        return self.canvas.px

    def memo(self, name: str, build: Callable):
        """Whole-image fields shared by several layers are computed once per batch."""
        if name not in self._memo:
            self._memo[name] = build()
        return self._memo[name]

    def attrs(self, shots_attrs: list[dict] | None = None) -> dict[str, np.ndarray]:
        """{attribute: (B, 1, 1) 0/1} for the shots' own attributes (or the given ones)."""
        rows = shots_attrs if shots_attrs is not None else [s.attrs for s in self.shots]
        return {a: _stack([r[a] for r in rows]) for a in rows[0]}

    def head_shade(self, win) -> np.ndarray:
        """The ellipsoid shading of ``shade`` over the whole images, cut to ``win``."""
        return self.memo("head_shade", lambda: self.shade(*self.canvas.coords))[:, win[0], win[1]]

    def contour(self, win) -> tuple[np.ndarray, np.ndarray]:
        """``contour_distance`` over the whole images, cut to ``win``."""
        d, hw = self.memo("contour", lambda: self.contour_distance(*self.canvas.coords))
        return d[:, win[0], win[1]], hw[:, win[0], win[1]]

    def halfwidth(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Half-width of the face contour at height ``v`` and its slope |d hw / d v|
        (looked up in a fine per-identity table: ~0.004 face units per step)."""

        def tables():
            rows = [_contour_table(x.face_w, x.chin_y, x.jaw_p) for x in self.idents]
            return (_stack([r[0] for r in rows]), np.stack([r[1] for r in rows]), np.stack([r[2] for r in rows]))

        inv_step, hw, dhw = self.memo("contour_tables", tables)
        idx = clamp((v - F32(SKULL_TOP)) * inv_step + F32(0.5), 0, hw.shape[1] - 1).astype(np.intp)
        idx += (np.arange(self.n) * hw.shape[1]).reshape(-1, 1, 1)
        return hw.ravel()[idx], dhw.ravel()[idx]

    def contour_distance(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Approximate signed distance to the face contour (negative inside), and
        the contour half-width at ``v``."""
        hw, dhw = self.halfwidth(v)
        # the slope is capped: near the chin tip it diverges, and dividing by it
        # would put every point level with the chin at distance ~0
        dhw = np.minimum(dhw, F32(4))
        d = (np.abs(u) - hw) / np.sqrt(F32(1) + dhw * dhw)
        dv = v - self.i.chin_y
        d = np.where(dv > 0, np.sqrt(u * u + dv * dv), d)  # below the chin: distance to its tip
        return np.maximum(d, F32(SKULL_TOP) - v), hw

    def shade(self, u: np.ndarray, v: np.ndarray, hw: np.ndarray | None = None) -> np.ndarray:
        """Lambert shading of the head, treated as an ellipsoid: ambient .. ~1.05.

        ``hw`` (the contour half-width at ``v``) bends the normal with the jaw;
        without it a plain ellipsoid is used (features inside the face).
        """
        w = self.i.face_w * F32(1.08)
        nx = clamp(u * (F32(0.92) / hw if hw is not None else F32(1) / w), -0.97, 0.97)
        ny = clamp((v - F32(0.3)) * F32(1 / 2.4), -0.9, 0.9)
        nz = np.sqrt(np.maximum(F32(1) - nx * nx - ny * ny, F32(0.02)))
        s = self.s
        lam = np.maximum(nx * s.lx + ny * s.ly + nz * s.lz, 0)
        return s.ambient + (F32(1.08) - s.ambient) * lam

    def key_light(self) -> np.ndarray:
        """(B, 1, 1) shading at the front of the face (for small features drawn flat)."""
        s = self.s
        return s.ambient + (F32(1.08) - s.ambient) * np.maximum(s.lz, 0)
