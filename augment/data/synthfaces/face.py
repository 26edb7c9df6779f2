"""A batch of photos being drawn: stacked parameters, contour, normals, lighting.

``Face.i`` holds the identities' traits and ``Face.s`` the shots' nuisance as
(B, 1, 1) float32 arrays (colours (B, 3, 1, 1)), so drawing code reads like
the single-photo formulas and broadcasts over the batch. All functions take
face-unit coordinate arrays ``u`` (right) and ``v`` (down) of one window,
(B, h, w), and return float32 arrays of that shape.
"""

from __future__ import annotations

import dataclasses
import operator
from functools import lru_cache
from types import SimpleNamespace
from typing import Callable

import numpy as np

from augment.data.synthfaces.canvas import F32, INF, Canvas, clamp, sphere_z
from augment.data.synthfaces.params import BEARD_STYLES, HAIR_STYLES, Identity, Shot

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


@lru_cache(maxsize=1)
def _float_trait_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(Identity) if f.name not in COLOURS)


def _float_traits(ident: Identity) -> tuple[str, ...]:
    """The names of the identity's numeric traits (the per-photo (B, 1, 1) arrays)."""
    return tuple(n for n in _float_trait_names() if isinstance(getattr(ident, n), float))


def _stack(values: list, shape=(1, 1)) -> np.ndarray:
    return np.asarray(values, F32).reshape(len(values), *shape)


class Face:
    """B photos (any mix of people) drawn together on one canvas size."""

    def __init__(self, idents: list[Identity], shots: list[Shot], height: int, width: int,
                 canvas: Canvas | None = None):
        self.idents, self.shots = idents, shots
        self.n = len(shots)
        self.canvas = canvas or Canvas(height, width, *(np.array([getattr(s, k) for s in shots], np.float64)
                                                        for k in ("scale", "angle", "cx", "cy")))
        # one table per kind of trait (a few NumPy calls rather than one per trait)
        b = self.n
        floats = _float_traits(idents[0])
        table = np.array([operator.attrgetter(*floats)(x) for x in idents], F32)  # (B, traits)
        traits = dict(zip(floats, table.T.reshape(len(floats), b, 1, 1)))
        colours = np.concatenate([c for x in idents for c in operator.attrgetter(*COLOURS)(x)]).astype(F32)
        traits.update(zip(COLOURS, colours.reshape(b, len(COLOURS), 3).transpose(1, 0, 2).reshape(-1, b, 3, 1, 1)))
        styles = [*HAIR_STYLES, *("beard_" + s for s in BEARD_STYLES)]
        flags = np.array([[s in (x.hair_style, "beard_" + x.beard_style) for s in styles] for x in idents], F32)
        traits.update(zip(styles, flags.T.reshape(len(styles), b, 1, 1)))
        self.i = SimpleNamespace(**traits)
        light = np.array([s.light for s in shots], F32)
        self.s = SimpleNamespace(
            lx=light[:, 0].reshape(-1, 1, 1), ly=light[:, 1].reshape(-1, 1, 1), lz=light[:, 2].reshape(-1, 1, 1),
            ambient=_stack([s.ambient for s in shots]), light_gain=_stack([s.light_gain for s in shots]),
            gx=_stack([s.gaze[0] for s in shots]), gy=_stack([s.gaze[1] for s in shots]),
            clothes=_stack([s.clothes for s in shots], (3, 1, 1)),
        )
        self._memo: dict = {}
        self._fields: dict = {}

    @property
    def px(self) -> np.ndarray:
        return self.canvas.px

    def subset(self, photos) -> "Face":
        """The same drawing for some of the photos (indices into this batch)."""
        return Face([self.idents[k] for k in photos], [self.shots[k] for k in photos],
                    self.canvas.height, self.canvas.width, self.canvas.subset(photos))

    def memo(self, name: str, build: Callable):
        """Values shared by several layers are computed once per batch."""
        if name not in self._memo:
            self._memo[name] = build()
        return self._memo[name]

    def field(self, name: str, build: Callable, win, region=None):
        """A per-pixel field shared by several layers, cut to ``win``.

        ``build(window)`` computes it over a window, pixel by pixel from the
        face coordinates (an array or a tuple of arrays, (B, ..., h, w)), so a
        part of the image gets the same values as the whole. It is computed
        once, over ``region`` (a window covering every use) or else the first
        window asked for, and again over the union when a window reaches
        outside.
        """
        have = self._fields.get(name)
        rows, cols = win
        if have is not None:
            (r0, r1, c0, c1), value = have
            if r0 <= rows.start and rows.stop <= r1 and c0 <= cols.start and cols.stop <= c1:
                return _cut(value, slice(rows.start - r0, rows.stop - r0), slice(cols.start - c0, cols.stop - c0))
            region = (slice(min(r0, rows.start), max(r1, rows.stop)), slice(min(c0, cols.start), max(c1, cols.stop)))
        elif region is None:
            region = win
        else:
            region = (slice(min(region[0].start, rows.start), max(region[0].stop, rows.stop)),
                      slice(min(region[1].start, cols.start), max(region[1].stop, cols.stop)))
        value = build(region)
        box = (region[0].start, region[0].stop, region[1].start, region[1].stop)
        self._fields[name] = (box, value)
        return self.field(name, build, win)

    def attrs(self, shots_attrs: list[dict] | None = None) -> dict[str, np.ndarray]:
        """{attribute: (B, 1, 1) 0/1} for the shots' own attributes (or the given ones)."""
        rows = shots_attrs if shots_attrs is not None else [s.attrs for s in self.shots]
        return {a: _stack([r[a] for r in rows]) for a in rows[0]}

    def head_shade(self, win) -> np.ndarray:
        """The ellipsoid shading of ``shade``, cut to ``win`` (computed once, from
        the brows down: brows, ears, mouth, beard, neck and clothes use it)."""
        i = self.i
        region = self.memo("shade_region", lambda: self.canvas.pixels(-2.8, i.brow_y - i.brow_arch - 0.1,
                                                                       2.8, i.chin_y + 3.5))
        return self.field("head_shade", lambda r: self.shade(*self.canvas.uv(r)), win, region)

    def contour(self, win) -> tuple[np.ndarray, np.ndarray]:
        """``contour_distance``, cut to ``win`` (computed once over the face and
        beard windows)."""
        i = self.i
        region = self.memo("contour_region", lambda: self.canvas.pixels(-i.face_w - 0.12, -1.9, i.face_w + 0.12,
                                                                         i.chin_y + 0.15))
        return self.field("contour", lambda r: self.contour_distance(*self.canvas.uv(r)), win, region)

    def _contour_tables(self):
        """(B, 1, 1) steps per face unit and (B, n) tables of the contour's half-width,
        slope |d hw / d v| and ``sqrt(1 + min(slope, 4)^2)`` (see ``contour_distance``)."""

        def tables():
            rows = [_contour_table(x.face_w, x.chin_y, x.jaw_p) for x in self.idents]
            dhw = np.stack([r[2] for r in rows])
            # the slope is capped: near the chin tip it diverges, and dividing by it
            # would put every point level with the chin at distance ~0
            stretch = clamp(dhw.copy(), -INF, F32(4))
            stretch *= stretch
            stretch += F32(1)
            return _stack([r[0] for r in rows]), np.stack([r[1] for r in rows]), dhw, np.sqrt(stretch, out=stretch)

        return self.memo("contour_tables", tables)

    def _contour_rows(self, v: np.ndarray) -> np.ndarray:
        """Flat indices into the (B, n) contour tables for heights ``v`` (B, h, w)."""
        inv_step, hw, _, _ = self._contour_tables()
        t = v - F32(SKULL_TOP)
        t *= inv_step
        t += F32(0.5)
        idx = clamp(t, F32(0), F32(hw.shape[1] - 1)).astype(np.int32)
        idx += (np.arange(self.n, dtype=np.int32) * hw.shape[1]).reshape(-1, 1, 1)
        return idx

    def halfwidth(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Half-width of the face contour at height ``v`` and its slope |d hw / d v|
        (looked up in a fine per-identity table: ~0.004 face units per step)."""
        _, hw, dhw, _ = self._contour_tables()
        idx = self._contour_rows(v)
        return hw.reshape(-1).take(idx), dhw.reshape(-1).take(idx)

    def contour_distance(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Approximate signed distance to the face contour (negative inside), and
        the contour half-width at ``v``: (|u| - hw) / sqrt(1 + min(slope, 4)^2)."""
        _, hw_table, _, stretch = self._contour_tables()
        idx = self._contour_rows(v)
        hw = hw_table.reshape(-1).take(idx)
        d = np.abs(u)
        d -= hw
        d /= stretch.reshape(-1).take(idx)
        dv = v - self.i.chin_y
        below = dv > 0
        if below.any():  # below the chin: distance to its tip
            dv *= dv
            tip = u * u
            tip += dv
            np.copyto(d, np.sqrt(tip, out=tip), where=below)
        np.maximum(d, F32(SKULL_TOP) - v, out=d)
        return d, hw

    def shade(self, u: np.ndarray, v: np.ndarray, hw: np.ndarray | None = None) -> np.ndarray:
        """Lambert shading of the head, treated as an ellipsoid: ambient .. ~1.05.

        ``hw`` (the contour half-width at ``v``) bends the normal with the jaw;
        without it a plain ellipsoid is used (features inside the face).
        """
        w = self.i.face_w * F32(1.08)
        nx = clamp(u * (F32(0.92) / hw if hw is not None else F32(1) / w), F32(-0.97), F32(0.97))
        ny = v - F32(0.3)
        ny *= F32(1 / 2.4)
        clamp(ny, F32(-0.9), F32(0.9))
        nz = sphere_z(nx, ny, F32(0.02))
        s = self.s
        lam = np.multiply(nx, s.lx, out=nx)
        lam += np.multiply(ny, s.ly, out=ny)
        lam += np.multiply(nz, s.lz, out=nz)
        clamp(lam, F32(0), INF)
        lam *= F32(1.08) - s.ambient
        lam += s.ambient
        return lam

    def key_light(self) -> np.ndarray:
        """(B, 1, 1) shading at the front of the face (for small features drawn flat)."""
        s = self.s
        return s.ambient + (F32(1.08) - s.ambient) * np.maximum(s.lz, 0)


def _cut(value, rows: slice, cols: slice):
    """A field (an array or a tuple of arrays, (B, ..., h, w)) cut to rows x cols."""
    if isinstance(value, tuple):
        return tuple(x[..., rows, cols] for x in value)
    return value[..., rows, cols]
