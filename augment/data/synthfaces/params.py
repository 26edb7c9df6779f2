"""Random parameters of SynthFaces: who a person is, and how one photo of them was taken.

Every draw comes from a numpy Generator seeded by ``derive_seed(seed, "synth",
part, key, ...)``, so one person's or one image's parameters never depend on
how many others were drawn before, or in which process.

Geometry is in *face units*: the origin is the midpoint between the eyes, x to
the image right, y down, and one unit is the nominal distance between the eyes.
Colours are sRGB in [0, 255] (float).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from augment.runtime import derive_seed

# The rendered attributes, in CelebA's names. ``No_Beard`` is 1 without a beard.
ATTRIBUTES: tuple[str, ...] = ("Eyeglasses", "Smiling", "Mouth_Slightly_Open", "No_Beard", "Bangs")
# P(an identity's habitual value is 1), per attribute.
HABIT_PRIOR = {"Eyeglasses": 0.3, "Smiling": 0.5, "Mouth_Slightly_Open": 0.4, "No_Beard": 0.7, "Bangs": 0.3}

HAIR_STYLES = ("buzz", "short", "medium", "long", "curly")
HAIR_STYLE_P = (0.12, 0.33, 0.2, 0.25, 0.1)
BEARD_STYLES = ("full", "goatee", "stubble")

_SKIN = np.array(
    [(247, 219, 199), (234, 192, 163), (212, 160, 124), (178, 124, 88), (132, 88, 60), (92, 60, 42)], np.float32
)
_HAIR = {  # colour, weight
    "black": ((24, 20, 19), 0.26),
    "dark_brown": ((52, 36, 27), 0.24),
    "brown": ((96, 66, 44), 0.16),
    "auburn": ((122, 58, 32), 0.07),
    "blond": ((176, 138, 84), 0.1),
    "light_blond": ((212, 182, 128), 0.07),
    "gray": ((150, 146, 140), 0.1),
}
# brown, dark brown, hazel, green, blue, grey
_EYES = np.array([(82, 52, 30), (48, 31, 20), (118, 92, 50), (78, 110, 70), (70, 112, 160), (106, 126, 140)],
                 np.float32)
# black, brown, tortoise, gold, silver, red
_FRAMES = np.array([(18, 18, 20), (58, 34, 22), (110, 70, 40), (182, 150, 80), (170, 172, 178), (120, 30, 40)],
                   np.float32)


@dataclass(frozen=True)
class Identity:
    """Traits that stay fixed across a person's photos (face units, sRGB)."""

    face_w: float  # half-width of the face at the cheekbones
    chin_y: float  # chin tip
    jaw_p: float  # superellipse exponent of the jaw: 1.7 pointed .. 2.8 square
    skin: np.ndarray  # (3,)
    eye_dx: float  # half the distance between the eye centres
    eye_w: float  # half-width of the eye opening
    eye_up: float  # height of the upper lid arc above the eye centre
    eye_lo: float  # depth of the lower lid arc
    eye_tilt: float  # canthal tilt, radians (outer corner up)
    iris_r: float
    iris: np.ndarray  # (3,)
    brow_y: float  # brow centre line at the inner end
    brow_arch: float
    brow_th: float  # thickness at the inner end
    brow_slope: float  # outer end lower (+) or higher (-)
    nose_y: float  # nose tip
    nose_w: float  # half-width of the nostril wings
    mouth_y: float
    mouth_w: float  # half-width of the closed mouth
    lip_up: float  # upper lip thickness
    lip_lo: float  # lower lip thickness
    lips: np.ndarray  # (3,)
    hair_style: str
    hair: np.ndarray  # (3,)
    hair_volume: float
    hairline_y: float  # top of the forehead
    part_x: float  # where strands part
    bangs_y: float  # lower edge of bangs, when worn
    bangs_slant: float
    beard_style: str
    beard: np.ndarray  # (3,)
    glasses_w: float  # lens half-width
    glasses_h: float  # lens half-height
    glasses_r: float  # lens corner radius (= half-height: oval lenses)
    glasses_th: float  # frame thickness
    frame: np.ndarray  # (3,)
    lens_tint: float  # 0 clear .. 0.8 sunglasses
    habits: dict  # {attribute: 0 | 1}, the identity's habitual value


@dataclass(frozen=True)
class Shot:
    """One photo's nuisance and the attributes it shows."""

    angle: float  # in-plane rotation, radians
    scale: float  # pixels per face unit
    cx: float  # pixel position of the eye midpoint
    cy: float
    light: np.ndarray  # (3,) unit direction towards the light (x right, y down, z to the camera)
    light_gain: float  # strength of the light gradient across the image
    ambient: float
    background: np.ndarray  # (3,)
    bg_grid: np.ndarray  # (4, 4, 3) low-frequency background variation
    clothes: np.ndarray  # (3,)
    gaze: tuple[float, float]
    noise_sigma: float  # sensor noise, 0-255 units
    noise_seed: int
    attrs: dict  # {attribute: 0 | 1}


def _pick(rng: np.random.Generator, table: dict) -> tuple[str, np.ndarray]:
    names = list(table)
    w = np.array([table[n][1] for n in names])
    name = names[int(rng.choice(len(names), p=w / w.sum()))]
    return name, np.array(table[name][0], np.float32)


def _jitter(rng: np.random.Generator, colour: np.ndarray, amount: float) -> np.ndarray:
    """Vary brightness by up to ``amount`` and each channel by a third of it (hue stays close)."""
    k = rng.uniform(1 - amount, 1 + amount) * rng.uniform(1 - amount / 3, 1 + amount / 3, 3)
    return np.clip(colour * k, 0, 255).astype(np.float32)


def sample_identity(seed: int, part: str, index: int, prior: dict | None = None) -> Identity:
    """The traits of person ``index`` of ``part`` ("celeba" or "lfw").

    ``prior``: {attribute: P(the habitual value is 1)} overriding HABIT_PRIOR
    for the named attributes (the draws are the same; only the cut moves)."""
    rng = np.random.default_rng(derive_seed(seed, "synth", part, "identity", index))
    u = rng.uniform
    tone = u(0, 1) ** 1.2 * (len(_SKIN) - 1)
    i = min(int(tone), len(_SKIN) - 2)
    skin = _jitter(rng, _SKIN[i] + (tone - i) * (_SKIN[i + 1] - _SKIN[i]), 0.05)
    dark = tone / (len(_SKIN) - 1)
    hair_name, hair = _pick(rng, _HAIR)
    if dark > 0.5 and hair_name in ("blond", "light_blond", "auburn"):
        hair_name, hair = "black", np.array(_HAIR["black"][0], np.float32)
    hair = _jitter(rng, hair, 0.12)
    eye_p = np.array([3, 3, 1.5, 1, 1.5, 1]) * np.array([1, 1 + 3 * dark, 1, 1 - dark, 1 - dark, 1 - dark])
    iris = _jitter(rng, _EYES[int(rng.choice(len(_EYES), p=eye_p / eye_p.sum()))], 0.1)
    lips = np.clip(skin * np.array([0.82, 0.55, 0.56]) + np.array([22, 0, 6]), 0, 255).astype(np.float32)
    style = HAIR_STYLES[int(rng.choice(len(HAIR_STYLES), p=HAIR_STYLE_P))]
    beard = hair if hair_name != "light_blond" else hair * 0.8
    if rng.uniform() < 0.1:
        beard = np.array([140, 136, 130], np.float32)  # greying beard
    frame = _jitter(rng, _FRAMES[int(rng.integers(len(_FRAMES)))], 0.1)
    face_w = u(0.98, 1.14)
    glasses_h = u(0.13, 0.19)
    priors = HABIT_PRIOR if not prior else {**HABIT_PRIOR, **prior}
    habits = {a: int(rng.uniform() < priors[a]) for a in ATTRIBUTES}
    return Identity(
        face_w=face_w,
        chin_y=u(1.78, 1.98),
        jaw_p=u(1.7, 2.8),
        skin=skin,
        eye_dx=u(0.47, 0.53),
        eye_w=u(0.2, 0.235),
        eye_up=u(0.075, 0.1),
        eye_lo=u(0.042, 0.058),
        eye_tilt=u(-0.06, 0.14),
        iris_r=u(0.085, 0.098),
        iris=iris,
        brow_y=u(-0.42, -0.32),
        brow_arch=u(0.02, 0.09),
        brow_th=u(0.045, 0.085),
        brow_slope=u(-0.05, 0.06),
        nose_y=u(0.72, 0.84),
        nose_w=u(0.17, 0.23),
        mouth_y=u(1.2, 1.3),
        mouth_w=u(0.36, 0.45),
        lip_up=u(0.06, 0.09),
        lip_lo=u(0.08, 0.12),
        lips=_jitter(rng, lips, 0.04),
        hair_style=style,
        hair=hair,
        hair_volume=u(0.05, 0.2) if style != "curly" else u(0.25, 0.4),
        hairline_y=u(-1.25, -1.0) if style != "buzz" else u(-1.35, -1.15),
        part_x=u(-0.45, 0.45),
        bangs_y=u(-0.56, -0.44),
        bangs_slant=u(-0.12, 0.12),
        beard_style=BEARD_STYLES[int(rng.choice(3, p=(0.5, 0.25, 0.25)))],
        beard=beard.astype(np.float32),
        glasses_w=u(0.2, 0.25),
        glasses_h=glasses_h,
        glasses_r=glasses_h * u(0.35, 1.0),
        glasses_th=u(0.018, 0.04),
        frame=frame,
        lens_tint=u(0.6, 0.8) if rng.uniform() < 0.12 else u(0.0, 0.08),
        habits=habits,
    )


def sample_shot(seed: int, part: str, identity: Identity, key: object, index: int, size: tuple[int, int],
                habit_strength: float | dict) -> Shot:
    """Nuisance and attributes of photo ``index`` of the identity ``key``.

    ``size`` is (height, width) of the image. The CelebA part is an aligned
    square crop (eyes at 0.38 of the height, 0.3 of the width between them);
    the LFW part a 250x250 deep-funneled-like frame (about 46 px between the
    eyes, the face centred with background around).
    """
    rng = np.random.default_rng(derive_seed(seed, "synth", part, "shot", key, index))
    # The 23 uniform draws before the background grid come in one call, in the
    # order read below; ``u`` maps them as Generator.uniform does
    # (low + (high - low) * next double), so the values are those of 23
    # separate rng.uniform calls, at a tenth of the call overhead.
    draws = iter(rng.random(23).tolist())

    def u(lo: float, hi: float) -> float:
        return lo + (hi - lo) * next(draws)

    h, w = size
    attrs = {}
    for a in ATTRIBUTES:
        strength = habit_strength[a] if isinstance(habit_strength, dict) else habit_strength
        keep = u(0.0, 1.0) < strength
        attrs[a] = identity.habits[a] if keep else 1 - identity.habits[a]
    if part == "lfw":
        scale = 46.0 * u(0.92, 1.08)
        cx, cy = (w - 1) / 2 + u(-4, 4), 0.45 * h + u(-4, 4)
    else:
        scale = 0.3 * w * u(0.94, 1.06)
        cx, cy = (w - 1) / 2 + u(-0.03, 0.03) * w, 0.38 * h + u(-0.03, 0.03) * h
    az, el = u(-1.0, 1.0), u(-0.7, 0.3)
    light = np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)], np.float32)
    hue = [u(0.2, 1.0) for _ in range(3)]
    bg_level, bg_sat = u(45, 215), u(0.05, 0.45)
    cl = [u(0.1, 1.0) for _ in range(3)]
    cl_level, cl_sat = u(20, 210), u(0.1, 0.7)
    angle = math.radians(u(-10, 10))
    light_gain, ambient = u(0.0, 0.25), u(0.45, 0.65)
    return Shot(
        angle=angle,
        scale=float(scale),
        cx=float(cx),
        cy=float(cy),
        light=light / np.sqrt(light.dot(light)),
        light_gain=light_gain,
        ambient=ambient,
        background=_saturated(bg_level, bg_sat, hue),
        bg_grid=(rng.normal(0, 20, (4, 4, 1)) + rng.normal(0, 6, (4, 4, 3))).astype(np.float32),
        clothes=_saturated(cl_level, cl_sat, cl),
        gaze=(rng.uniform(-0.025, 0.025), rng.uniform(-0.012, 0.012)),
        noise_sigma=rng.uniform(0.8, 3.5),
        noise_seed=int(rng.integers(2**63 - 1)),
        attrs=attrs,
    )


def _saturated(level: float, saturation: float, hue: list[float]) -> np.ndarray:
    """(3,) float32 colour ``level * (1 + saturation * (hue / mean(hue) - 1))`` in [0, 255]."""
    mean = (hue[0] + hue[1] + hue[2]) / 3
    return np.array([min(max(level * (1 + saturation * (x / mean - 1)), 0.0), 255.0) for x in hue], np.float32)


def toggled(shot: Shot, attribute: str) -> Shot:
    """The same photo with one attribute flipped (the counterfactual)."""
    attrs = dict(shot.attrs)
    attrs[attribute] = 1 - attrs[attribute]
    return replace(shot, attrs=attrs)
