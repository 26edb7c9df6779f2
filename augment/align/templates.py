"""Five-point alignment templates: where the eyes, nose tip and mouth corners go.

Points are (x, y) in output pixels, pixel centres at integer coordinates (the
convention of ``cv2.warpAffine``), ordered left eye, right eye, nose, left mouth
corner, right mouth corner ("left" = the image's left), as in CelebA's landmark
files and MTCNN's output.
"""

from __future__ import annotations

import numpy as np

# The standard ArcFace / insightface template for 112x112 crops.
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)

# SaGAN's input: CelebA's aligned images (178x218), centre-cropped to 170x170
# and resized to 128. The mean landmarks of CelebA's aligned images (in their
# 178x218 frame) are about:
CELEBA_ALIGNED_SIZE = (178, 218)  # width, height
CELEBA_ALIGNED_MEAN = np.array(
    [[69, 111], [108, 111], [88, 135], [72, 152], [105, 152]], dtype=np.float64
)
SAGAN_CROP = 170  # the centre square SaGAN keeps before resizing


def _sagan(size: int) -> np.ndarray:
    """CelebA's mean aligned landmarks seen through SaGAN's centre crop and resize.

    The crop's top-left corner is ((178-170)/2, (218-170)/2) = (4, 24); the resize
    maps pixel centres as x' = (x + 0.5) * size / 170 - 0.5. At 128 this puts the
    eyes at y = 65, 29 px apart, and the mouth at y = 96: a loose crop that keeps
    the forehead, hair and glasses, as SaGAN's training images do.
    """
    w, h = CELEBA_ALIGNED_SIZE
    corner = np.array([(w - SAGAN_CROP) / 2, (h - SAGAN_CROP) / 2])
    return (CELEBA_ALIGNED_MEAN - corner + 0.5) * (size / SAGAN_CROP) - 0.5


def prealigned_points(width: int, height: int) -> np.ndarray:
    """(5, 2) float64: where a CelebA-style aligned crop of ``width`` x ``height`` has its face.

    CelebA's mean aligned landmarks (in the official 178x218 frame) scaled to the
    image, pixel centres kept (x' = (x + 0.5) * width / 178 - 0.5): a copy
    downscaled to 89x109 has its eyes where the original has them, at half the
    coordinates. Warping these points onto the ``sagan`` template reproduces
    SaGAN's crop at any size (the centre 170/178 of the width, 24/218 from the
    top); onto ``arcface`` a crop as tight as ArcFace's. For aligned crops
    without a landmark row (``missing_landmarks: prealigned``).
    """
    w0, h0 = CELEBA_ALIGNED_SIZE
    return (CELEBA_ALIGNED_MEAN + 0.5) * [width / w0, height / h0] - 0.5


def scale_landmarks(points: np.ndarray, frame: tuple[int, int], width: int, height: int) -> np.ndarray:
    """Landmarks given in a ``frame`` = (width, height) image, moved to a copy of
    that image resized to ``width`` x ``height`` (pixel centres kept)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return (p + 0.5) * [width / frame[0], height / frame[1]] - 0.5


def _arcface(size: int) -> np.ndarray:
    """The 112 template scaled to ``size`` (pixel-centre exact; identical at 112)."""
    return (ARCFACE_112 + 0.5) * (size / 112) - 0.5


TEMPLATES = {"sagan": _sagan, "arcface": _arcface}


def template(name: str, size: int) -> np.ndarray:
    """(5, 2) float64 target points of template ``name`` for a ``size`` x ``size`` crop."""
    if name not in TEMPLATES:
        raise ValueError(f"unknown alignment template {name!r}; known: {', '.join(TEMPLATES)}")
    if size < 16:
        raise ValueError(f"alignment size must be at least 16 px, got {size}")
    return TEMPLATES[name](size)
