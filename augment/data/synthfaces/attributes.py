"""The parts that the rendered attributes change, each confined to its own region.

- mouth (Smiling, Mouth_Slightly_Open): lips, teeth, the gap between the lips and
  the folds from the nose wings to the mouth corners;
- beard (No_Beard = -1): the lower face;
- bangs (Bangs): the forehead, down to just above the brows;
- glasses (Eyeglasses): frames, lenses and their shadow around the eyes, the
  arms running to the sides of the head.

Every layer has alpha exactly 0 outside that region, so toggling an attribute
changes no pixel elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from augment.data.synthfaces.canvas import (
    F32,
    INF,
    bump,
    clamp,
    cover,
    cover_implicit,
    ellipse,
    gauss,
    rounded_box,
    select,
    smoothstep,
    texture,
    tint_rgb,
    trim,
)
from augment.data.synthfaces.face import Face
from augment.data.synthfaces.hair import forehead_distance, hair_colour
from augment.data.synthfaces.parts import BLACK, WHITE

TEETH = np.array([234, 228, 214], F32)
MOUTH_INSIDE = np.array([52, 20, 26], F32)


def rgb(colour, k: np.ndarray | None = None) -> np.ndarray:
    """A (3,) colour as (1, 3, 1, 1), optionally times a per-photo (B, 1, 1) factor."""
    c = np.asarray(colour, F32).reshape(1, 3, 1, 1)
    return c if k is None else c * k[:, None]


@dataclass(frozen=True)
class MouthShape:
    """The mouth of each photo for given (smile, open) states; (B, 1, 1) face units."""

    half_w: np.ndarray
    y: np.ndarray  # height of the lip line at the centre
    lift: np.ndarray  # how far the corners rise above ``y``
    gap_up: np.ndarray  # the upper lip pulled up from the lip line (centre)
    gap_lo: np.ndarray  # the lower lip pulled down
    lip_up: np.ndarray
    lip_lo: np.ndarray
    smile: np.ndarray  # 0/1
    open: np.ndarray  # 0/1

    def corners(self) -> np.ndarray:
        """(B, 2, 2): the left and right mouth corners (the landmarks)."""
        w, y = self.half_w.reshape(-1), (self.y - self.lift).reshape(-1)
        return np.stack([np.stack([-w, y], 1), np.stack([w, y], 1)], 1).astype(np.float64)


def mouth_shape(face: Face, smile: np.ndarray, open_: np.ndarray) -> MouthShape:
    i = face.i
    s, o = smile, open_
    return MouthShape(
        half_w=i.mouth_w * (F32(1) + F32(0.14) * s + F32(0.03) * o),
        y=i.mouth_y + F32(0.015) * s + F32(0.012) * o,
        lift=F32(0.085) * s,
        gap_up=F32(0.014) * s + F32(0.018) * o + F32(0.01) * s * o,
        gap_lo=F32(0.03) * s + F32(0.05) * o + F32(0.02) * s * o,
        lip_up=i.lip_up * (F32(1) - F32(0.3) * s),
        lip_lo=i.lip_lo * (F32(1) - F32(0.2) * s),
        smile=s,
        open=o,
    )


def mouth_folds(face: Face, m: MouthShape) -> list:
    """The nasolabial folds: faint at rest, deep in a smile (drawn under a beard)."""
    i = face.i
    top, end = i.nose_y - F32(0.02), m.y + F32(0.06)
    a0, a1 = i.nose_w + F32(0.03), m.half_w + F32(0.07)
    got = face.canvas.window(-a1 - 0.08, top - 0.03, a1 + 0.08, end + 0.1)
    if got is None:
        return []
    win, u, v = got
    path = v - top
    path /= end - top
    path = np.power(clamp(path, F32(0), F32(1)), F32(0.75), out=path)
    path *= a1 - a0
    path += a0
    off = np.abs(u)
    off -= path
    off *= F32(1 / 0.017)
    alpha = bump(off)
    alpha *= F32(0.1) + F32(0.24) * m.smile
    env = smoothstep(end - 0.02, end + 0.08, v)
    np.subtract(F32(1), env, out=env)
    alpha *= np.multiply(smoothstep(top, top + 0.07, v), env, out=env)
    return [(win, alpha, i.skin * F32(0.42))]


def mouth(face: Face, m: MouthShape) -> list:
    """Lips, the dark gap between them (a thin line when closed) and teeth."""
    i = face.i
    lx, lz = face.s.lx, np.maximum(face.s.lz, 0)
    got = face.canvas.window(-m.half_w - 0.06, m.y - m.lift - m.gap_up - m.lip_up - 0.06,
                             m.half_w + 0.06, m.y + m.gap_lo + m.lip_lo + 0.06)
    if got is None:
        return []
    win, u, v = got
    x = u / m.half_w
    e = clamp(F32(1) - x * x, 0, 1)
    line = m.y - m.lift * x * x
    # Cupid's bow: a dip at the centre between two peaks
    bow = (F32(1) - F32(0.3) * np.exp(-((x * F32(1 / 0.12)) ** 2))
           + F32(0.12) * np.exp(-(((np.abs(x) - F32(0.26)) * F32(1 / 0.12)) ** 2)))
    in_up = line - m.gap_up * e ** F32(0.7) - F32(0.008)
    top_up = in_up - m.lip_up * np.sqrt(e) * bow
    in_lo = line + m.gap_lo * e ** F32(0.9) + F32(0.008)
    bot_lo = in_lo + m.lip_lo * e ** F32(0.6)
    side = np.abs(u) - m.half_w
    key = face.key_light()
    out = []
    gap = cover_implicit(np.maximum(np.maximum(in_up - v, v - in_lo), side + F32(0.01)))
    out.append((win, gap, rgb(MOUTH_INSIDE, key)))

    def teeth(alpha, k):
        """A teeth layer: its colour (gaps between teeth, darker to the sides) only
        where ``alpha`` reaches; ``k`` darkens it."""
        got = trim(win, alpha)
        if got is None:
            return []
        t_win, t_alpha, (rows, cols) = got
        gaps = np.sin(u[:, rows, cols] * F32(np.pi / 0.085))
        gaps = smoothstep(0.05, 0.3, np.abs(gaps, out=gaps))
        gaps *= F32(0.18)
        gaps += F32(0.82)
        tint = smoothstep(0.35, 0.95, np.abs(x[:, rows, cols]))
        tint *= F32(0.35)
        np.subtract(F32(1), tint, out=tint)
        tint *= gaps
        tint *= key
        if k is not None:
            tint *= k
        return [(t_win, t_alpha, tint_rgb(TEETH, tint), True)]

    parted = np.maximum(m.smile, m.open)
    if parted.any():
        teeth_len = F32(0.03) + F32(0.02) * m.smile
        d_teeth = np.maximum(np.maximum(v - (in_up + teeth_len), np.abs(u) - F32(0.74) * m.half_w),
                             in_up - F32(0.02) - v)
        alpha = parted * gap
        alpha *= cover_implicit(d_teeth)
        out += teeth(alpha, None)
        both = m.smile * m.open
        if both.any():
            d_low = np.maximum(np.maximum(in_lo - F32(0.025) - v, np.abs(u) - F32(0.6) * m.half_w), v - in_lo)
            alpha = F32(0.8) * both * gap
            alpha *= cover_implicit(d_low)
            out += teeth(alpha, F32(0.85))
    # lips: colour and sheen only where they are
    got = trim(win, cover_implicit(np.maximum(np.maximum(top_up - v, v - in_up), side)))
    if got is not None:
        up_win, upper, _ = got
        out.append((up_win, upper, tint_rgb(i.lips, face.head_shade(up_win) * F32(0.8)), True))
    got = trim(win, cover_implicit(np.maximum(np.maximum(in_lo - v, v - bot_lo), side)))
    if got is not None:
        lo_win, lower, (rows, cols) = got
        out.append((lo_win, lower, tint_rgb(i.lips, face.head_shade(lo_win)), True))
        sheen = gauss(u[:, rows, cols], v[:, rows, cols], 0.04 * lx, m.y + m.gap_lo + m.lip_lo * 0.5,
                      m.half_w * 0.35, 0.02)
        sheen *= F32(0.25) * lz
        out.append((lo_win, lower * sheen, WHITE))
    cy = m.y - m.lift
    corners = gauss(u, v, -m.half_w, cy, 0.03, 0.025) + gauss(u, v, m.half_w, cy, 0.03, 0.025)
    out.append((win, (F32(0.3) + F32(0.15) * m.smile) * corners, i.skin * F32(0.35)))
    return out


def beard(face: Face) -> list:
    """A beard in each identity's style (full, goatee and moustache, or stubble)."""
    i = face.i
    w = i.face_w
    got = face.canvas.window(-w - 0.12, 0.2, w + 0.12, i.chin_y + 0.15)
    if got is None:
        return []
    win, u, v = got
    d_face, _ = face.contour(win)
    hairs = texture("streak", u * F32(110), v * F32(20))
    hairs *= F32(0.4)
    grain = texture("grain", u * F32(70), v * F32(70))
    grain *= F32(0.6)
    hairs += grain
    goatee = i.beard_goatee > 0
    d = fade = None  # fade None: 1 everywhere
    if not goatee.all():
        # full beard and stubble: the lower face below a line from the sideburns to the moustache
        top = np.abs(u)
        top /= w
        top = np.power(top, F32(1.7), out=top)
        top *= i.nose_y + F32(0.11 - 0.3)
        top = np.subtract(i.nose_y + F32(0.11), top, out=top)
        d = d_face - (F32(0.01) + F32(0.035) * i.beard_full)
        np.maximum(d, top - v, out=d)
        rise = np.subtract(v, top, out=top)
        rise += hairs * F32(0.03)
        fade = smoothstep(0.0, 0.14, rise)
    if goatee.any():  # moustache and chin
        tash = ellipse(u, v, 0.0, i.mouth_y + 0.03, i.mouth_w + 0.12, i.mouth_y + 0.03 - i.nose_y - 0.09)
        chin = ellipse(u, v, 0.0, (i.mouth_y + i.chin_y) / 2 + 0.07, 0.28, (i.chin_y - i.mouth_y) / 2 + 0.1)
        d_goatee = np.minimum(tash, chin, out=tash)
        np.maximum(d_goatee, d_face - F32(0.035), out=d_goatee)
        d = d_goatee if d is None else select(goatee, d_goatee, d)
        fade = None if fade is None else select(goatee, np.ones_like(fade), fade)
    rough = hairs * F32(0.025)
    rough += d
    alpha = cover(rough, face.px, soft=2.5)
    alpha *= F32(0.95) - F32(0.45) * i.beard_stubble  # density
    if fade is not None:
        alpha *= fade
    got = trim(win, clamp(alpha, F32(0), F32(1)))
    if got is None:
        return []
    win, alpha, sub = got
    shade = hairs[:, sub[0], sub[1]] * F32(0.15)
    shade += F32(1)
    shade *= face.head_shade(win)
    return [(win, alpha, tint_rgb(i.beard, shade), True)]


def bangs(face: Face) -> list:
    """A fringe over the forehead, in clumps ending just above the brows, and its shadow."""
    i = face.i
    w = i.face_w
    fw = F32(0.87) * w
    got = face.canvas.window(-w - 0.1, i.hairline_y - 0.2, w + 0.1, i.bangs_y + 0.4)
    if got is None:
        return []
    win, u, v = got
    skin = forehead_distance(face, win)
    phase = i.part_x * F32(10)
    clumps = u * F32(np.pi / 0.13)
    clumps += phase
    clumps = np.abs(np.sin(clumps, out=clumps), out=clumps)
    clumps = np.power(clumps, F32(0.7), out=clumps)
    fringe = u * i.bangs_slant
    fringe += i.bangs_y
    temples = np.abs(u)
    temples /= fw
    temples = np.power(temples, F32(4), out=temples)
    temples *= F32(0.3)
    fringe += temples
    clumps *= F32(0.045)
    fringe -= clumps
    tips = u * F32(53)
    tips += phase
    tips = np.sin(tips, out=tips)
    tips *= F32(0.015)
    fringe += tips
    clamp(fringe, -INF, F32(-0.3))  # never below the brows, even at the temples
    below = np.subtract(v, fringe, out=fringe)
    inside = skin - F32(0.07)
    np.maximum(inside, below, out=inside)
    alpha = cover_implicit(inside, soft=1.3)
    shadow = below * F32(1 / 0.035)
    shadow = bump(shadow)
    shadow *= F32(0.4)
    shadow *= below > 0
    shadow *= cover(skin, face.px)
    out = [(win, shadow, BLACK)]
    got = trim(win, alpha)
    if got is not None:
        hair_win, alpha, sub = got
        k = smoothstep(-0.1, 0.0, below[:, sub[0], sub[1]])
        k *= F32(0.2)
        np.subtract(F32(1), k, out=k)
        out.append((hair_win, alpha, hair_colour(face, hair_win) * k[:, None], True))
    return out


def glasses(face: Face) -> list:
    """Frames, tinted lenses with a glare, and the frames' faint shadow on the skin."""
    i = face.i
    w = i.face_w
    got = face.canvas.window(-w - 0.1, -0.4, w + 0.1, 0.35)
    if got is None:
        return []
    win, u, v = got
    lx, ly = face.s.lx, face.s.ly
    th = i.glasses_th
    yc = F32(-0.01)
    inner = i.eye_dx - i.glasses_w  # inner edge of each lens

    def frame_distance(du, dv):
        uu, vv = u + du, v + dv
        lens = np.minimum(rounded_box(uu - i.eye_dx, vv - yc, i.glasses_w, i.glasses_h, i.glasses_r),
                          rounded_box(uu + i.eye_dx, vv - yc, i.glasses_w, i.glasses_h, i.glasses_r))
        rim = np.abs(lens) - th / 2
        arch = (yc - F32(0.045)) - F32(0.03) * (F32(1) - (uu / np.maximum(inner, F32(0.05))) ** 2)
        bridge = np.maximum(np.abs(vv - arch) - th * F32(0.45), np.abs(uu) - (inner + th))
        arm = np.maximum(np.maximum(np.abs(vv - (yc - F32(0.06))) - th * F32(0.4), np.abs(uu) - (w + F32(0.05))),
                         (i.eye_dx + i.glasses_w - th) - np.abs(uu))
        return lens, np.minimum(np.minimum(rim, bridge), arm)

    _, shadow_d = frame_distance(F32(-0.04) * lx, F32(-0.05) - F32(0.03) * np.maximum(ly, 0))
    lens, frame_d = frame_distance(F32(0), F32(0))
    in_lens = cover(lens, face.px)
    key = face.key_light()
    glare_axis = (u * np.where(lx >= 0, F32(1), F32(-1)) + v * F32(0.8)) - F32(0.05)
    glare = F32(0.16) * bump((((np.abs(u) - i.eye_dx) * F32(0.6) + glare_axis * F32(0.5)) * F32(1 / 0.035)))
    tint = np.array([28, 30, 34], F32)
    return [
        (win, F32(0.2) * cover(shadow_d, face.px, soft=3.0), BLACK),
        (win, (F32(0.05) + i.lens_tint) * in_lens, tint),
        (win, glare * in_lens, WHITE),
        (win, cover(frame_d, face.px), i.frame * key[:, None]),
    ]
