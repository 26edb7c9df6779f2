"""The identity judge: dlib's pretrained face recognizer on aligned crops.

dlib's ``dlib_face_recognition_resnet_model_v1`` (a 128-d ResNet; dlib reports
99.38 % on LFW) owes nothing to this project's models or data, so it can say
whether an edit kept the person. Two photos of one person lie closer than
``THRESHOLD`` (0.6, dlib's own) in its descriptor space; different people
farther.

No detector runs: the crop is already aligned, so the face's rectangle
follows from the alignment template's five points. The crop is upscaled to
``CHIP`` px (dlib's input size), dlib's 5-point shape predictor places its own
landmarks inside that rectangle, and the recognizer makes its 150 px chip from
them. Measured on real LFW pairs (folds 1-2 of View 2, 1,200 pairs): 98.6 % at
0.6 on the photos, 99.0 % on faces downscaled to 64 px first.

Optional: the ``judges`` extra installs ``dlib-bin`` and
``face_recognition_models`` (whose sdist carries the model files). The files
are located with ``importlib.util.find_spec``; ``face_recognition_models`` is
never imported (it imports the deprecated ``pkg_resources``). ``missing()``
says in one line what the extra would add when it is absent.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from augment.align.templates import template as template_points

THRESHOLD = 0.6  # dlib's verification distance: below it, one person
CHIP = 150  # dlib's recognizer input, px
SHIFT_PX = 2  # the noise floor: the same crop moved by this many px
MODELS = "face_recognition_models"
RECOGNIZER_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_FILE = "shape_predictor_5_face_landmarks.dat"
INSTALL = ("the pretrained identity judge (dlib's face recognizer, 99.38 % on LFW) needs the 'judges' extra: "
           "pip install 'augment[judges]'")


def model_dir() -> Path | None:
    """The folder of dlib's model files, or None when the package is not installed."""
    spec = importlib.util.find_spec(MODELS)
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "models"
    return folder if (folder / RECOGNIZER_FILE).is_file() and (folder / SHAPE_FILE).is_file() else None


def missing() -> str | None:
    """None when the judge can run; otherwise the one line that says what installs it."""
    if importlib.util.find_spec("dlib") is None or model_dir() is None:
        return INSTALL
    return None


class JudgeUnavailable(RuntimeError):
    """The identity judge was asked for, and the ``judges`` extra is not installed."""


def face_box(points: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the face around five template points (eyes, nose,
    mouth corners), placed as dlib's detector places its boxes (the box its 5-point
    shape predictor was trained on): 2.18 eye distances wide, from 0.63 above the
    eyes to 0.50 below the mouth (the median of dlib's detections on LFW faces
    aligned onto the sagan template, where that box is square)."""
    eyes, mouth = points[:2].mean(axis=0), points[3:].mean(axis=0)
    d = float(np.linalg.norm(points[1] - points[0]))
    cx = (eyes[0] + mouth[0]) / 2
    top, bottom = eyes[1] - 0.63 * d, mouth[1] + 0.50 * d
    half = 1.09 * d
    return int(round(cx - half)), int(round(top)), int(round(cx + half)), int(round(bottom))


class IdentityJudge:
    """Aligned crops (N,S,S,3) uint8 of one template -> (N,128) float32 dlib descriptors."""

    def __init__(self, template: str) -> None:
        problem = missing()
        if problem:
            raise JudgeUnavailable(problem)
        import dlib

        folder = model_dir()
        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(folder / SHAPE_FILE))
        self._recognizer = dlib.face_recognition_model_v1(str(folder / RECOGNIZER_FILE))
        self.template = template
        self._box = dlib.rectangle(*face_box(template_points(template, CHIP)))

    def descriptors(self, crops: np.ndarray) -> np.ndarray:
        """(N,S,S,3) uint8 RGB aligned crops (any S) -> (N,128) float32."""
        import cv2

        out = np.empty((len(crops), 128), dtype=np.float32)
        for i, crop in enumerate(crops):
            img = np.ascontiguousarray(crop if crop.shape[0] == CHIP else
                                       cv2.resize(crop, (CHIP, CHIP), interpolation=cv2.INTER_CUBIC))
            shape = self._shape(img, self._box)
            out[i] = np.asarray(self._recognizer.compute_face_descriptor(img, shape), dtype=np.float32)
        return out


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean distances of two (N,128) descriptor sets -> (N,)."""
    return np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=1)


def shifted(crops: np.ndarray, px: int = SHIFT_PX) -> np.ndarray:
    """(N,S,S,3) crops moved ``px`` px right and down (edge pixels repeated): the
    same photo, so its distance to the original is the judge's noise floor."""
    pad = np.pad(crops, ((0, 0), (px, 0), (px, 0), (0, 0)), mode="edge")
    return np.ascontiguousarray(pad[:, : crops.shape[1], : crops.shape[2]])
