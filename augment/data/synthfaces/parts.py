"""The parts of a face that no rendered attribute changes.

Each function draws a batch of photos (see face.py) and returns a list of
layers ``(window, alpha, colour)`` (see canvas.py), drawn in the order listed
in render.py. Per-person choices (hair style, ...) are (B, 1, 1) 0/1 masks.
Hair has a module of its own (hair.py), and so have the whole-photo fields
(photo.py: background, light gradient, sensor noise; re-exported here).
"""

from __future__ import annotations

import numpy as np

from augment.data.synthfaces.canvas import (
    F32,
    GAUSS_REACH,
    INF,
    at_least,
    at_most,
    circle,
    clamp,
    cover,
    ellipse,
    gauss,
    smoothstep,
    tint_rgb,
    trim,
)
from augment.data.synthfaces.face import Face
from augment.data.synthfaces.photo import background, light_gain, sensor_noise  # noqa: F401 (drawn through parts)

BLACK = np.zeros(3, F32)
WHITE = np.full(3, 255, F32)
SCLERA = np.array([236, 230, 224], F32)
LASH = np.array([26, 19, 17], F32)
PUPIL = np.array([10, 8, 8], F32)


# --------------------------------------------------------------------------- body and head


def body(face: Face) -> list:
    """Neck and shoulders in clothes with a round or V neckline."""
    i = face.i
    chin = i.chin_y
    got = face.canvas.window(-2.8, chin - 0.9, 2.8, chin + 3.5)
    if got is None:
        return []
    win, u, v = got
    au = np.abs(u)
    out = []
    neck = au - F32(0.52) * i.face_w
    taper = smoothstep(chin - 0.4, chin + 0.5, v)
    taper *= F32(0.06)
    neck += taper
    np.maximum(neck, F32(0.6) - v, out=neck)
    got = trim(win, cover(neck, face.px))
    if got is not None:  # colour only where the neck is
        neck_win, neck_a, _ = got
        _, nv = face.canvas.uv(neck_win)
        under_chin = nv - (chin - F32(0.1))
        clamp(under_chin, F32(0), INF)
        under_chin *= F32(-6)
        np.exp(under_chin, out=under_chin)
        under_chin *= F32(0.45)
        np.subtract(F32(1), under_chin, out=under_chin)
        k = face.head_shade(neck_win) * under_chin
        k *= F32(0.9)
        out.append((neck_win, neck_a, tint_rgb(i.skin, k), True))
    clothes = ellipse(u, v, 0.0, chin + 1.75, 2.3, 1.25)
    vee = v - F32(chin + 0.3)
    vee -= np.subtract(F32(0.55), au * F32(1.1))
    cut = au * F32(0.7)
    cut += v - F32(chin + 0.62)
    cut = np.minimum(vee, cut, out=cut)
    d_cl = np.maximum(clothes, np.negative(cut, out=cut), out=clothes)
    got = trim(win, cover(d_cl, face.px))
    if got is not None:
        cl_win, cl_a, _ = got
        cu, cv = face.canvas.uv(cl_win)
        fold = cu * F32(5)
        fold += cv * F32(2)
        fold = np.sin(fold, out=fold)
        fold *= fold
        fold *= F32(0.1)
        np.subtract(F32(1), fold, out=fold)
        k = face.head_shade(cl_win) * fold
        k *= F32(0.95)
        out.append((cl_win, cl_a, tint_rgb(face.s.clothes, k), True))
    return out


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
        inner = gauss(u, v, sgn * (ex + 0.02), 0.3, 0.04, 0.11)
        inner *= F32(0.3)
        np.subtract(F32(0.9), inner, out=inner)
        inner *= face.head_shade(win)
        out.append((win, cover(ellipse(u, v, sgn * ex, 0.27, 0.13, 0.27), face.px), tint_rgb(i.skin, inner)))
    return out


def skin(face: Face) -> list:
    """The face itself, shaded as a lit ellipsoid whose sides follow the jaw."""
    i = face.i
    got = face.canvas.window(-i.face_w - 0.05, -1.9, i.face_w + 0.05, i.chin_y + 0.05)
    if got is None:
        return []
    got = trim(got[0], cover(face.contour(got[0])[0], face.px))
    if got is None:
        return []
    win, alpha, _ = got
    _, hw = face.contour(win)
    shade = face.shade(*face.canvas.uv(win), at_least(hw, F32(0.05)))
    colour = tint_rgb(i.skin, shade)
    # warmer, more saturated shadows (light scattered under the skin): green and
    # blue times 1 - k (1 - lit), k = 0.1 and 0.14 (red unchanged)
    dark = np.subtract(F32(1), at_most(shade, F32(1)))
    for c, k in ((1, F32(0.1)), (2, F32(0.14))):
        t = dark * k
        colour[:, c] *= np.subtract(F32(1), t, out=t)
    return [(win, alpha, colour, True)]


def _blob_layer(face: Face, colour, blobs) -> list:
    """One layer summing Gaussian blobs ``(strength, cx, cy, sx, sy)``.

    Its window holds every blob's whole support, so that no blob is cut off
    where a window happens to end (windows are unions over a batch: a cut
    would make a photo depend on the others drawn with it).
    """
    boxes = [(cx - GAUSS_REACH * sx, cy - GAUSS_REACH * sy, cx + GAUSS_REACH * sx, cy + GAUSS_REACH * sy)
             for _, cx, cy, sx, sy in blobs]
    bounds = boxes[0]
    for box in boxes[1:]:
        bounds = (np.minimum(bounds[0], box[0]), np.minimum(bounds[1], box[1]),
                  np.maximum(bounds[2], box[2]), np.maximum(bounds[3], box[3]))
    win = face.canvas.pixels(*bounds)
    if win is None:
        return []
    a = np.zeros((face.n, win[0].stop - win[0].start, win[1].stop - win[1].start), F32)
    for (k, cx, cy, sx, sy), box in zip(blobs, boxes):  # each blob over its own support only
        own = face.canvas.pixels(*box)
        if own is None:
            continue
        u, v = face.canvas.uv(own)
        g = gauss(u, v, cx, cy, sx, sy)
        g *= F32(k)
        a[:, own[0].start - win[0].start:own[0].stop - win[0].start,
          own[1].start - win[1].start:own[1].stop - win[1].start] += g
    return [(win, clamp(a, -INF, F32(1)), colour)]


def skin_relief(face: Face) -> list:
    """Shadows and highlights that give the face depth: eye sockets, cheeks, nose, chin."""
    i = face.i
    lx, lz = face.s.lx, np.maximum(face.s.lz, 0)
    dark = i.skin * F32(0.35)
    ex, ny, nw, my = i.eye_dx, i.nose_y, i.nose_w, i.mouth_y
    out = []
    out += _blob_layer(face, dark, [(0.22, -ex + 0.05, -0.1, 0.22, 0.12), (0.22, ex - 0.05, -0.1, 0.22, 0.12)])
    blush = i.skin * np.array([1.0, 0.75, 0.75], F32).reshape(1, 3, 1, 1)
    out += _blob_layer(face, blush, [(0.13, -0.58, 0.62, 0.22, 0.16), (0.13, 0.58, 0.62, 0.22, 0.16)])
    # nose: the side away from the light, the wings, the shadow under the tip
    kl, kr = 0.1 + 0.25 * np.maximum(lx, 0), 0.1 + 0.25 * np.maximum(-lx, 0)
    out += _blob_layer(face, dark, [
        (kl, -0.11, ny * 0.55, 0.045, ny * 0.32), (kr, 0.11, ny * 0.55, 0.045, ny * 0.32),
        (0.3, -nw * 0.85, ny - 0.01, 0.04, 0.06), (0.3, nw * 0.85, ny - 0.01, 0.04, 0.06),
        (0.42, 0.0, ny + 0.075, 0.14, 0.03),
    ])
    out += _blob_layer(face, WHITE[None, :, None, None] * F32(0.95) + i.skin * F32(0.05), [
        (0.1 * lz, 0.03 * lx, ny * 0.5, 0.03, ny * 0.25),
        (0.2 * lz, 0.02 * lx, ny - 0.06, 0.055, 0.045),
    ])
    out += _blob_layer(face, dark, [(0.22, 0.0, my + 0.2, 0.16, 0.04)])
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
        opened = trim(win, cover(np.maximum(d_up, d_lo), face.px))
        if opened is not None:  # sclera, iris, pupil and catch-light: inside the opening only
            ow, opening, (rows, cols) = opened
            u_o, v_o, d_up_o, a_o = u[:, rows, cols], v[:, rows, cols], d_up[:, rows, cols], a[:, rows, cols]
            lid_shadow = smoothstep(0.0, 0.07, -d_up_o)
            lid_shadow *= F32(0.45)
            lid_shadow += F32(0.55)
            lid_shadow = np.multiply(key, lid_shadow, out=lid_shadow)  # key * lid shadow
            corner = np.abs(a_o)
            corner *= F32(1 / i.eye_w)
            corner = smoothstep(0.55, 1.0, corner)
            corner *= F32(0.25)
            np.subtract(F32(1), corner, out=corner)
            out.append((ow, opening, tint_rgb(SCLERA, lid_shadow * corner), True))
            icx, icy = sgn * i.eye_dx + gx, gy
            r = (u_o - F32(icx)) ** 2
            r += (v_o - F32(icy)) ** 2
            r = np.sqrt(r, out=r)
            rr = r * F32(1 / i.iris_r)
            ring = smoothstep(0.7, 1.0, rr)
            ring *= F32(0.75)
            np.subtract(F32(1.2), ring, out=ring)
            fleck = smoothstep(0.6, 0.3, rr)
            fleck *= F32(0.3)
            ring -= fleck
            lid_shadow *= ring
            out.append((ow, opening * cover(r - F32(i.iris_r), face.px), tint_rgb(i.iris, lid_shadow)))
            out.append((ow, opening * cover(r - F32(0.42 * i.iris_r), face.px), PUPIL))
            hx, hy = icx + 0.4 * i.iris_r * (0.5 + 0.5 * lx), icy - 0.4 * i.iris_r
            glint = cover(circle(u_o, v_o, hx, hy, 0.024), face.px)
            glint *= opening
            glint *= F32(0.85)
            out.append((ow, glint, WHITE))
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
