"""Face detection with facenet-pytorch's MTCNN, batched, and the choice of face.

MTCNN's weights ship inside the facenet-pytorch wheel; nothing is downloaded.
Photos are reduced so their longer side is at most ``max_side`` before
detection (the cost of MTCNN's image pyramid grows with the pixel count, and a
face that matters for alignment is far larger than MTCNN's 20 px minimum), and
boxes and landmarks are mapped back to the full image. Images whose reduced
sizes are equal are detected together in one batch, as MTCNN accepts a batch
of equal-sized images.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from augment.align.warp import apply, rescale

log = logging.getLogger("augment.align")

MTCNN_MIN_FACE = 20  # px at detection resolution: MTCNN's usual smallest face
MTCNN_SMALLEST = 12  # px: PNet's window; the pyramid cannot start below it


@dataclass(frozen=True)
class Face:
    """One detection in some image's pixel coordinates.

    box: (4,) x1, y1, x2, y2; points: (5, 2) eyes, nose, mouth corners; prob in [0, 1].
    """

    box: np.ndarray
    points: np.ndarray
    prob: float

    @property
    def side(self) -> float:
        """Shorter side of the box, px."""
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    def mapped(self, m: np.ndarray) -> "Face":
        """The same face through the 2x3 axis-aligned map ``m`` (a rescale)."""
        corners = apply(m, self.box.reshape(2, 2)).reshape(4)
        return Face(corners, apply(m, self.points), self.prob)


_MODELS: dict[str, object] = {}


def mtcnn(device: str = "cpu"):
    """One MTCNN per process and device (a worker process builds its own once)."""
    if device not in _MODELS:
        import torch
        from facenet_pytorch import MTCNN

        _MODELS[device] = MTCNN(keep_all=True, select_largest=False, device=torch.device(device))
    return _MODELS[device]


def detection_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) at which an image is detected: reduced to ``max_side`` on its longer side, never enlarged."""
    if max_side <= 0 or max(width, height) <= max_side:
        return width, height
    k = max_side / max(width, height)
    return max(1, round(width * k)), max(1, round(height * k))


def _run(model, batch: np.ndarray, min_face: int) -> list[list[Face]]:
    """MTCNN on a (N, H, W, 3) uint8 batch -> faces per image, in batch coordinates."""
    import torch

    model.min_face_size = min_face
    with torch.inference_mode():
        boxes, probs, points = model.detect(batch, landmarks=True)
    out = []
    for b, p, pts in zip(boxes, probs, points):
        if b is None:
            out.append([])
            continue
        out.append([Face(np.asarray(bi, np.float64), np.asarray(pi, np.float64).reshape(5, 2), float(qi))
                    for bi, qi, pi in zip(b, p, pts)])
    return out


def detect(
    images: Sequence[np.ndarray], *, min_face: int = MTCNN_MIN_FACE, max_side: int = 640,
    batch_size: int = 16, device: str = "cpu",
) -> list[list[Face] | Exception]:
    """All faces in each (H, W, 3) uint8 RGB image, in that image's pixel coordinates.

    ``min_face`` is the smallest face sought, in the given images' pixels
    (at least MTCNN's 12 px window). A photo reduced by ``k`` for detection is
    searched for faces of ``max(20, min_face * k)`` detection px, i.e. it loses
    only faces of under ``20 / k`` px, too small to give a sharp crop. An image whose
    detection fails comes back as the exception (the caller rejects it), so one
    bad image never costs the batch.
    """
    model = mtcnn(device)
    results: list[list[Face] | Exception] = [[] for _ in images]
    groups: dict[tuple[int, int, int], list[int]] = {}
    small: list[np.ndarray | None] = []
    for i, img in enumerate(images):
        h, w = img.shape[:2]
        dw, dh = detection_size(w, h, max_side)
        k = dw / w
        det_min = max(MTCNN_SMALLEST, round(min_face * k)) if k == 1 else max(MTCNN_MIN_FACE, round(min_face * k))
        if min(dw, dh) < det_min:  # too small to hold a face of that size (and MTCNN would fail)
            small.append(None)
            continue
        small.append(img if (dw, dh) == (w, h) else cv2.resize(img, (dw, dh), interpolation=cv2.INTER_AREA))
        groups.setdefault((dh, dw, det_min), []).append(i)
    for (dh, dw, det_min), idx in groups.items():
        for s in range(0, len(idx), batch_size):
            part = idx[s : s + batch_size]
            try:
                found = _run(model, np.stack([small[i] for i in part]), det_min)
            except Exception:  # retry one by one so a single bad image is isolated
                found = []
                for i in part:
                    try:
                        found.extend(_run(model, small[i][None], det_min))
                    except Exception as e:
                        log.debug("detection failed on image %d: %s", i, e)
                        found.append(e)
            for i, faces in zip(part, found):
                if isinstance(faces, Exception):
                    results[i] = faces
                    continue
                h, w = images[i].shape[:2]
                back = rescale(w / dw, h / dh)
                results[i] = [f.mapped(back) for f in faces]
    return results


@dataclass(frozen=True)
class Choice:
    """The face(s) kept for one image, or why none was: reason in
    no_face | low_probability | too_small (empty ``faces``)."""

    faces: list[Face]
    reason: str = ""
    detail: str = ""


def choose(
    faces: list[Face], width: int, height: int, *, select: str = "largest", min_prob: float = 0.9,
    min_face: float = 20, keep_all: bool = False,
) -> Choice:
    """Keep the faces with ``prob >= min_prob`` and a box side ``>= min_face`` px,
    ordered by ``select`` (largest box area, nearest the image centre, or most
    probable); the first one, or all with ``keep_all``. Coordinates and sizes are
    those of the (full) source image."""
    if not faces:
        return Choice([], "no_face", "no face detected")
    ok = [f for f in faces if f.prob >= min_prob and f.side >= min_face]
    if not ok:
        probable = [f for f in faces if f.prob >= min_prob]
        if probable:
            biggest = max(f.side for f in probable)
            return Choice([], "too_small", f"largest face {biggest:.0f} px < min_face {min_face:g} px")
        best = max(f.prob for f in faces)
        return Choice([], "low_probability", f"best detection probability {best:.3f} < min_prob {min_prob:g}")
    cx, cy = (width - 1) / 2, (height - 1) / 2

    def key(f: Face) -> float:
        if select == "largest":
            return -float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        if select == "central":
            return float(np.hypot((f.box[0] + f.box[2]) / 2 - cx, (f.box[1] + f.box[3]) / 2 - cy))
        if select == "probable":
            return -f.prob
        raise ValueError(f"unknown face selection {select!r}; known: largest, central, probable")

    ranked = sorted(ok, key=key)  # stable: ties keep MTCNN's order
    return Choice(ranked if keep_all else ranked[:1])
