"""Hair: the cap behind the head, the fringe in front, its colour and shape.

Like parts.py, each drawing function takes a batch of photos (face.py) and
returns layers ``(window, alpha, colour, ...)`` (canvas.py); attributes.py
reuses the hair's colour and the forehead line for Bangs.
"""

from __future__ import annotations

import numpy as np

from augment.data.synthfaces.canvas import (
    F32,
    INF,
    at_least,
    bump,
    clamp,
    cover,
    ellipse,
    select,
    sphere_z,
    texture,
    tint_rgb,
    trim,
)
from augment.data.synthfaces.face import Face
from augment.data.synthfaces.parts import by_style

# How far each hair style falls (face units, y down).
HAIR_BOTTOM = {"buzz": 0.05, "short": 0.12, "medium": 1.15, "long": 2.6, "curly": 1.0}


def cap_distance(face: Face, u, v):
    """Signed distance to the hair's outer silhouette over the skull (an afro for curly hair)."""
    i = face.i
    vol, curly = i.hair_volume, i.curly
    d = ellipse(u, v, 0.0, F32(-0.55) + F32(0.1) * curly, i.face_w + F32(0.08) + F32(0.07) * curly + vol,
                F32(1.3) + (F32(0.6) + F32(0.1) * curly) * vol)
    wave = u * F32(17)
    wave += v * F32(9)
    wave = np.sin(wave, out=wave)
    wave *= F32(0.01) - F32(0.01) * curly
    d += wave
    if curly.any():
        curls = np.sin(u * F32(14))
        curls *= F32(0.045) * curly
        rows = v * F32(12)
        rows += F32(1.3)
        curls *= np.sin(rows, out=rows)
        d += curls
    return d


def ragged_ends(u: np.ndarray, freq, bottom, streak: np.ndarray) -> np.ndarray:
    """Where hair ends, per pixel column: ``bottom`` waved by sin(freq * u) and
    by the strands (``streak``), 0.03 face units each (a new array)."""
    ends = u * freq
    ends = np.sin(ends, out=ends)
    ends *= F32(0.03)
    ends += bottom
    ends += streak * F32(0.03)
    return ends


def forehead_distance(face: Face, win):
    """Signed distance to the bare skin the hair frames: an ellipse under the
    hairline above ``fc``, a vertical strip below it (cut to ``win``)."""

    def build(region):
        i = face.i
        u, v = face.canvas.uv(region)
        fc, fw = F32(0.2), F32(0.87) * i.face_w
        d = ellipse(u, v, 0.0, fc, fw, fc - i.hairline_y)
        strip = v >= fc
        if strip.any():
            side = np.abs(u)
            side -= fw
            np.copyto(d, side, where=strip)
        return d

    return face.field("forehead", build, win)


def hair_shape(face: Face, win):
    """Strand texture and the cap's signed distance (B, h, w), cut to ``win``."""

    def build(region):
        i = face.i
        u, v = face.canvas.uv(region)
        across = u - i.part_x
        across *= F32(60)
        across /= clamp(v + F32(2.5), F32(1.0), INF)
        streak = texture("streak", across, v * F32(14))
        return streak, cap_distance(face, u, v)

    return face.field("hair_shape", build, win)


def hair_colour(face: Face, win) -> np.ndarray:
    """(B, 3, h, w) hair colour cut to ``win``: the head's shading, strands
    radiating from the parting, a sheen band."""

    def build(region):
        i, s = face.i, face.s
        u, v = face.canvas.uv(region)
        streak, _ = hair_shape(face, region)
        nx = clamp(u * (F32(1) / (i.face_w + F32(0.3))), F32(-0.95), F32(0.95))
        ny = v + F32(0.6)
        ny *= F32(1 / 1.6)
        clamp(ny, F32(-0.95), F32(0.95))
        nz = sphere_z(nx, ny, F32(0.03))
        lam = np.multiply(nx, s.lx, out=nx)
        lam += ny * s.ly
        lam += np.multiply(nz, s.lz, out=nz)
        clamp(lam, F32(0), INF)
        k = lam * (F32(1.05) - s.ambient)
        k += s.ambient
        strands = streak * (F32(0.12) - F32(0.06) * i.buzz)
        strands += F32(1)
        k *= strands
        # a soft highlight band (sheen), brightest along some strands
        ny += F32(0.35)
        ny *= F32(4)
        sheen = bump(ny)
        sheen *= lam
        bright = at_least(streak, F32(0))
        bright *= F32(8)
        bright += F32(14)
        sheen *= bright
        colour = tint_rgb(i.hair, k)
        colour += sheen[:, None]
        return colour

    return face.field("hair_colour", build, win)


def hair_back(face: Face) -> list:
    """Hair seen behind the head and neck (medium, long, curly styles)."""
    i = face.i
    shown = i.medium + i.long + i.curly
    if not shown.any():
        return []
    bottom = by_style(face, HAIR_BOTTOM) + F32(0.1)
    half = i.face_w + i.hair_volume + F32(0.18)
    got = face.canvas.window(-half - 0.5, -2.4 - i.hair_volume, half + 0.5, bottom + 0.15)
    if got is None:
        return []
    win, u, v = got
    streak, cap = hair_shape(face, win)
    d = cap - F32(0.05)
    straight = i.curly <= 0
    if straight.any():
        # straight hair: a curtain widening a little towards its ragged ends
        width = at_least(v, F32(0))
        width *= F32(0.06)
        width += half
        ends = ragged_ends(u, F32(9), bottom, streak)
        au = np.abs(u)
        flare = au / width
        flare *= flare
        flare *= F32(0.12)
        ends += flare
        au -= width
        curtain = np.maximum(F32(-0.5) - v, np.subtract(v, ends, out=ends))
        curtain = np.maximum(au, curtain, out=curtain)
        d = select(straight, np.minimum(d, curtain, out=curtain), d)
    rough = streak * F32(0.012)
    rough += d
    alpha = cover(rough, face.px, soft=1.8)
    alpha *= shown
    got = trim(win, alpha)
    if got is None:
        return []
    win, alpha, _ = got
    return [(win, alpha, hair_colour(face, win) * F32(0.7), True)]


def hair_front(face: Face) -> list:
    """Hair over the head: the cap above the hairline and the locks at the sides."""
    i = face.i
    bottom = by_style(face, HAIR_BOTTOM)
    half = i.face_w + i.hair_volume + F32(0.1)
    got = face.canvas.window(-half - 0.4, -2.4 - i.hair_volume, half + 0.4, bottom + 0.1)
    if got is None:
        return []
    win, u, v = got
    streak, outer = hair_shape(face, win)
    locky = i.medium + i.long > 0  # locks down the sides of the face
    if locky.any():
        ends = ragged_ends(u, F32(11), bottom, streak)
        side = np.abs(u)
        side -= half
        fall = at_least(v, F32(0))
        fall *= F32(0.05)
        side -= fall
        span = np.maximum(np.subtract(v, ends, out=ends), F32(-0.3) - v)
        locks = np.maximum(side, span, out=span)
        outer = select(locky, np.minimum(outer, locks, out=locks), outer)
    skin = forehead_distance(face, win)
    d = np.maximum(outer, -skin)
    np.maximum(d, v - bottom, out=d)
    d += streak * F32(0.012)
    alpha = cover(d, face.px, soft=1.8)
    alpha *= F32(1) - F32(0.25) * i.buzz
    got = trim(win, alpha)
    if got is None:
        return []
    win, alpha, _ = got
    return [(win, alpha, hair_colour(face, win), True)]
