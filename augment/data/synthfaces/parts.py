"""The parts of a face that no rendered attribute changes.

Each function draws a batch of photos (see face.py) and returns a list of
layers ``(window, alpha, colour)`` (see canvas.py), drawn in the order listed
in render.py. Per-person choices (hair style, ...) are (B, 1, 1) 0/1 masks.
"""

from __future__ import annotations

from functools import lru_cache
from statistics import NormalDist

import numpy as np

from augment.data.synthfaces.canvas import (
    F32,
    bump,
    circle,
    clamp,
    cover,
    ellipse,
    gauss,
    smoothstep,
    texture,
    tint_rgb,
)
from augment.data.synthfaces.face import Face

BLACK = np.zeros(3, F32)
WHITE = np.full(3, 255, F32)
SCLERA = np.array([236, 230, 224], F32)
LASH = np.array([26, 19, 17], F32)
PUPIL = np.array([10, 8, 8], F32)

# How far each hair style falls (face units, y down).
HAIR_BOTTOM = {"buzz": 0.05, "short": 0.12, "medium": 1.15, "long": 2.6, "curly": 1.0}


def by_style(face: Face, table: dict) -> np.ndarray:
    """(B, 1, 1) the value of ``table`` for each photo's hair style."""
    return sum(getattr(face.i, k) * F32(v) for k, v in table.items())


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
    g = F32(1) + s.light_gain * F32(0.25) * (u * s.lx + v * s.ly)
    return clamp(g, 0.75, 1.25)


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
    codes = np.stack([np.random.default_rng(s.noise_seed).integers(0, 256, (3, c.height, c.width), dtype=np.uint8)
                      for s in face.shots])
    sigma = np.array([s.noise_sigma for s in face.shots], F32).reshape(-1, 1, 1, 1)
    return _gaussian_bytes()[codes] * sigma


# --------------------------------------------------------------------------- hair


def cap_distance(face: Face, u, v):
    """Signed distance to the hair's outer silhouette over the skull (an afro for curly hair)."""
    i = face.i
    vol, curly = i.hair_volume, i.curly
    d = ellipse(u, v, 0.0, F32(-0.55) + F32(0.1) * curly, i.face_w + F32(0.08) + F32(0.07) * curly + vol,
                F32(1.3) + (F32(0.6) + F32(0.1) * curly) * vol)
    d += (F32(0.01) - F32(0.01) * curly) * np.sin(u * F32(17) + v * F32(9))
    if curly.any():
        d += F32(0.045) * curly * np.sin(u * F32(14)) * np.sin(v * F32(12) + F32(1.3))
    return d


def forehead_distance(face: Face, win):
    """Signed distance to the bare skin the hair frames: an ellipse under the
    hairline above ``fc``, a vertical strip below it (whole images, cut to ``win``)."""

    def build():
        i = face.i
        u, v = face.canvas.coords
        fc, fw = F32(0.2), F32(0.87) * i.face_w
        return np.where(v < fc, ellipse(u, v, 0.0, fc, fw, fc - i.hairline_y), np.abs(u) - fw)

    return face.memo("forehead", build)[:, win[0], win[1]]


def _hair_fields(face: Face):
    """Whole-image hair fields: colour (B, 3, H, W), strand texture, cap distance (B, H, W).

    Colour: the head's shading, strands radiating from the parting, a sheen band.
    """
    i, s = face.i, face.s
    u, v = face.canvas.coords
    nx = clamp(u * (F32(1) / (i.face_w + F32(0.3))), -0.95, 0.95)
    ny = clamp((v + F32(0.6)) * F32(1 / 1.6), -0.95, 0.95)
    nz = np.sqrt(np.maximum(F32(1) - nx * nx - ny * ny, F32(0.03)))
    lam = np.maximum(nx * s.lx + ny * s.ly + nz * s.lz, 0)
    across = (u - i.part_x) * F32(60) / np.maximum(v + F32(2.5), F32(1.0))
    streak = texture("streak", across, v * F32(14))
    contrast = F32(0.12) - F32(0.06) * i.buzz
    k = (s.ambient + (F32(1.05) - s.ambient) * lam) * (F32(1) + contrast * streak)
    # a soft highlight band (sheen), brightest along some strands
    sheen = lam * bump((ny + F32(0.35)) * F32(4)) * (F32(14) + F32(8) * np.maximum(streak, 0))
    colour = tint_rgb(i.hair, k) + sheen[:, None]
    return colour, streak, cap_distance(face, u, v)


def hair_fields(face: Face, win):
    colour, streak, cap = face.memo("hair", lambda: _hair_fields(face))
    r, c = win
    return colour[:, :, r, c], streak[:, r, c], cap[:, r, c]


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
    colour, streak, cap = hair_fields(face, win)
    d = cap - F32(0.05)
    # straight hair: a curtain widening a little towards its ragged ends
    width = half + F32(0.06) * np.maximum(v, 0)
    ends = bottom + F32(0.03) * np.sin(u * F32(9)) + F32(0.03) * streak + F32(0.12) * (np.abs(u) / width) ** 2
    curtain = np.maximum(np.abs(u) - width, np.maximum(F32(-0.5) - v, v - ends))
    d = np.where(i.curly > 0, d, np.minimum(d, curtain))
    alpha = cover(d + F32(0.012) * streak, face.px, soft=1.8) * shown
    return [(win, alpha, colour * F32(0.7))]


def hair_front(face: Face) -> list:
    """Hair over the head: the cap above the hairline and the locks at the sides."""
    i = face.i
    bottom = by_style(face, HAIR_BOTTOM)
    half = i.face_w + i.hair_volume + F32(0.1)
    got = face.canvas.window(-half - 0.4, -2.4 - i.hair_volume, half + 0.4, bottom + 0.1)
    if got is None:
        return []
    win, u, v = got
    colour, streak, outer = hair_fields(face, win)
    locky = i.medium + i.long  # locks down the sides of the face
    if locky.any():
        ends = bottom + F32(0.03) * np.sin(u * F32(11)) + F32(0.03) * streak
        locks = np.maximum(np.abs(u) - half - F32(0.05) * np.maximum(v, 0), np.maximum(v - ends, F32(-0.3) - v))
        outer = np.where(locky > 0, np.minimum(outer, locks), outer)
    skin = forehead_distance(face, win)
    rough = F32(0.012) * streak
    d = np.maximum(np.maximum(outer, -skin), v - bottom) + rough
    alpha = cover(d, face.px, soft=1.8) * (F32(1) - F32(0.25) * i.buzz)
    return [(win, alpha, colour)]


# --------------------------------------------------------------------------- body and head


def body(face: Face) -> list:
    """Neck and shoulders in clothes with a round or V neckline."""
    i = face.i
    chin = i.chin_y
    got = face.canvas.window(-2.8, chin - 0.9, 2.8, chin + 3.5)
    if got is None:
        return []
    win, u, v = got
    shade = face.head_shade(win)
    nw = F32(0.52) * i.face_w
    neck = np.maximum(np.abs(u) - nw + F32(0.06) * smoothstep(chin - 0.4, chin + 0.5, v), F32(0.6) - v)
    neck_a = cover(neck, face.px)
    under_chin = F32(1) - F32(0.45) * np.exp(F32(-6) * np.maximum(v - (chin - F32(0.1)), 0))
    neck_c = tint_rgb(i.skin, shade * under_chin * F32(0.9))
    clothes = ellipse(u, v, 0.0, chin + 1.75, 2.3, 1.25)
    vee = (v - F32(chin + 0.3)) - (F32(0.55) - F32(1.1) * np.abs(u))
    cut = np.minimum(vee, np.abs(u) * F32(0.7) + (v - F32(chin + 0.62)))
    d_cl = np.maximum(clothes, -cut)
    fold = F32(1) - F32(0.1) * np.sin(u * F32(5) + v * F32(2)) ** 2
    cl_c = tint_rgb(face.s.clothes, shade * fold * F32(0.95))
    return [(win, neck_a, neck_c), (win, cover(d_cl, face.px), cl_c)]


def ears(face: Face) -> list:
    i = face.i
    out = []
    hw, _ = face.halfwidth(np.full((face.n, 1, 1), 0.28, F32))
    ex = hw * F32(0.97)
    for sgn in (-1, 1):
        got = face.canvas.window(sgn * ex - 0.2, -0.1, sgn * ex + 0.2, 0.62)
        if got is None:
            continue
        win, u, v = got
        d = ellipse(u, v, sgn * ex, 0.27, 0.13, 0.27)
        shade = face.head_shade(win)
        inner = gauss(u, v, sgn * (ex + 0.02), 0.3, 0.04, 0.11)
        colour = tint_rgb(i.skin, shade * (F32(0.9) - F32(0.3) * inner))
        out.append((win, cover(d, face.px), colour))
    return out


def skin(face: Face) -> list:
    """The face itself, shaded as a lit ellipsoid whose sides follow the jaw."""
    i = face.i
    got = face.canvas.window(-i.face_w - 0.05, -1.9, i.face_w + 0.05, i.chin_y + 0.05)
    if got is None:
        return []
    win, u, v = got
    d, hw = face.contour(win)
    shade = face.shade(u, v, np.maximum(hw, F32(0.05)))
    # warmer, more saturated shadows (light scattered under the skin)
    lit = np.minimum(shade, 1)
    colour = tint_rgb(i.skin, shade) * (F32(1) - tint_rgb(np.array([0.0, 0.1, 0.14], F32), F32(1) - lit))
    return [(win, cover(d, face.px), colour)]


def _blob_layer(face: Face, box, colour, blobs) -> list:
    """One layer summing Gaussian blobs ``(strength, cx, cy, sx, sy)`` in a box."""
    got = face.canvas.window(*box)
    if got is None:
        return []
    win, u, v = got
    a = np.zeros_like(u)
    for k, cx, cy, sx, sy in blobs:
        a += F32(k) * gauss(u, v, cx, cy, sx, sy)
    return [(win, np.minimum(a, 1), colour)]


def skin_relief(face: Face) -> list:
    """Shadows and highlights that give the face depth: eye sockets, cheeks, nose, chin."""
    i = face.i
    lx, lz = face.s.lx, np.maximum(face.s.lz, 0)
    dark = i.skin * F32(0.35)
    ex, ny, nw, my = i.eye_dx, i.nose_y, i.nose_w, i.mouth_y
    out = []
    out += _blob_layer(face, (-ex - 0.4, -0.4, ex + 0.4, 0.2), dark,
                       [(0.22, -ex + 0.05, -0.1, 0.22, 0.12), (0.22, ex - 0.05, -0.1, 0.22, 0.12)])
    blush = i.skin * np.array([1.0, 0.75, 0.75], F32).reshape(1, 3, 1, 1)
    out += _blob_layer(face, (-i.face_w, 0.2, i.face_w, 1.05), blush,
                       [(0.13, -0.58, 0.62, 0.22, 0.16), (0.13, 0.58, 0.62, 0.22, 0.16)])
    # nose: the side away from the light, the wings, the shadow under the tip
    kl, kr = 0.1 + 0.25 * np.maximum(lx, 0), 0.1 + 0.25 * np.maximum(-lx, 0)
    out += _blob_layer(face, (-0.4, -0.1, 0.4, ny + 0.16), dark, [
        (kl, -0.11, ny * 0.55, 0.045, ny * 0.32), (kr, 0.11, ny * 0.55, 0.045, ny * 0.32),
        (0.3, -nw * 0.85, ny - 0.01, 0.04, 0.06), (0.3, nw * 0.85, ny - 0.01, 0.04, 0.06),
        (0.42, 0.0, ny + 0.075, 0.14, 0.03),
    ])
    out += _blob_layer(face, (-0.2, 0.0, 0.2, ny + 0.05), WHITE[None, :, None, None] * F32(0.95) + i.skin * F32(0.05), [
        (0.1 * lz, 0.03 * lx, ny * 0.5, 0.03, ny * 0.25),
        (0.2 * lz, 0.02 * lx, ny - 0.06, 0.055, 0.045),
    ])
    out += _blob_layer(face, (-0.3, my, 0.3, i.chin_y), dark, [(0.22, 0.0, my + 0.2, 0.16, 0.04)])
    # nostrils
    got = face.canvas.window(-nw - 0.05, ny - 0.06, nw + 0.05, ny + 0.09)
    if got is not None:
        win, u, v = got
        d = np.minimum(ellipse(u, v, -0.085, ny + 0.02, 0.052, 0.024), ellipse(u, v, 0.085, ny + 0.02, 0.052, 0.024))
        out.append((win, F32(0.8) * cover(d, face.px, soft=1.8), i.skin * F32(0.3)))
    return out


# --------------------------------------------------------------------------- eyes and brows


def eye_frame(face: Face, u, v, sgn: int):
    """Eye-local coordinates: ``a`` outwards from the eye centre, ``b`` down, sheared by the tilt."""
    i = face.i
    a = (u - F32(sgn * i.eye_dx)) * F32(sgn)
    b = v + F32(i.eye_tilt) * a
    return a, b


def eye_lids(face: Face, a, b):
    """Signed distances to the upper and lower lid arcs (circles through the corners)."""
    i = face.i
    r1 = (i.eye_w**2 + i.eye_up**2) / (2 * i.eye_up)
    r2 = (i.eye_w**2 + i.eye_lo**2) / (2 * i.eye_lo)
    d_up = circle(a, b, 0.0, -i.eye_up + r1, r1)
    d_lo = circle(a, b, 0.0, i.eye_lo - r2, r2)
    return d_up, d_lo


def eyes(face: Face) -> list:
    """Sclera, iris, pupil, catch-light, lash line, lower lid and crease, per eye."""
    i = face.i
    gx, gy = face.s.gx, face.s.gy
    key = face.key_light()
    lx = face.s.lx
    out = []
    for sgn in (-1, 1):
        got = face.canvas.window(sgn * i.eye_dx - 0.33, -0.26, sgn * i.eye_dx + 0.33, 0.16)
        if got is None:
            continue
        win, u, v = got
        a, b = eye_frame(face, u, v, sgn)
        d_up, d_lo = eye_lids(face, a, b)
        opening = cover(np.maximum(d_up, d_lo), face.px)
        lid_shadow = F32(0.55) + F32(0.45) * smoothstep(0.0, 0.07, -d_up)
        corner = F32(1) - F32(0.25) * smoothstep(0.55, 1.0, np.abs(a) * F32(1 / i.eye_w))
        sclera = tint_rgb(SCLERA, key * lid_shadow * corner)
        out.append((win, opening, sclera))
        icx, icy = sgn * i.eye_dx + gx, gy
        r = np.sqrt((u - F32(icx)) ** 2 + (v - F32(icy)) ** 2)
        rr = r * F32(1 / i.iris_r)
        ring = F32(1.2) - F32(0.75) * smoothstep(0.7, 1.0, rr) - F32(0.3) * smoothstep(0.6, 0.3, rr)
        iris = tint_rgb(i.iris, key * lid_shadow * ring)
        out.append((win, opening * cover(r - F32(i.iris_r), face.px), iris))
        out.append((win, opening * cover(r - F32(0.42 * i.iris_r), face.px), PUPIL))
        hx, hy = icx + 0.4 * i.iris_r * (0.5 + 0.5 * lx), icy - 0.4 * i.iris_r
        glint = cover(circle(u, v, hx, hy, 0.024), face.px) * opening * F32(0.85)
        out.append((win, glint, WHITE))
        th = F32(0.02) + F32(0.02) * clamp(a * F32(1 / i.eye_w), 0, 1)
        lash = np.maximum(np.maximum(np.abs(d_up - th * F32(0.5)) - th * F32(0.5), d_lo - F32(0.02)),
                          np.abs(a) - F32(i.eye_w * 1.05))
        out.append((win, F32(0.92) * cover(lash, face.px), LASH))
        lower = np.maximum(np.abs(d_lo - F32(0.006)) - F32(0.006), d_up - F32(0.01))
        out.append((win, F32(0.35) * cover(lower, face.px, soft=1.5), i.skin * F32(0.5)))
        crease = np.maximum(np.abs(d_up - F32(0.075)) - F32(0.01), np.abs(a) - F32(i.eye_w * 0.85))
        crease = np.maximum(crease, b)
        out.append((win, F32(0.35) * cover(crease, face.px, soft=2.0), i.skin * F32(0.55)))
    return out


def brows(face: Face) -> list:
    i = face.i
    colour = np.minimum(i.hair * F32(0.85), np.array([90, 65, 45], F32).reshape(1, 3, 1, 1) + i.hair * F32(0.2))
    out = []
    a_in, a_out = i.eye_dx - F32(0.27), i.eye_dx + F32(0.31)
    for sgn in (-1, 1):
        ends = (sgn * (a_in - 0.03), sgn * (a_out + 0.03))
        x0, x1 = np.minimum(*ends), np.maximum(*ends)
        got = face.canvas.window(x0, i.brow_y - i.brow_arch - 0.1, x1, i.brow_y + np.maximum(i.brow_slope, 0) + 0.1)
        if got is None:
            continue
        win, u, v = got
        a = u * F32(sgn)
        t = clamp((a - F32(a_in)) * F32(1 / (a_out - a_in)), 0, 1)
        centre = F32(i.brow_y) - F32(i.brow_arch) * np.sin(F32(np.pi) * t ** F32(0.75)) + F32(i.brow_slope) * t
        th = F32(i.brow_th) * (F32(1) - F32(0.55) * t)
        d = np.maximum(np.abs(v - centre) - th * F32(0.5),
                       np.abs(a - (a_in + a_out) * F32(0.5)) - (a_out - a_in) * F32(0.5))
        hairs = F32(0.78) + F32(0.22) * np.sin(a * F32(170) + v * F32(70))
        shade = face.head_shade(win)
        out.append((win, F32(0.92) * cover(d, face.px, soft=1.4) * hairs, tint_rgb(colour, shade)))
    return out
