"""A plain alignment script, the reference for ``benchmarks/align_command.py``.

``python benchmarks/align_plain.py PHOTOS_DIR N OUT_DIR``: for each of the
first N photos (sorted), decode, ``MTCNN.detect`` at full size, keep the
largest face with probability >= 0.9, warp it onto the same 128 px template
the ``align`` stage uses and write a PNG: one photo at a time, torch's default
threads, no manifest. Prints the number of photos with a face.
"""

import sys
from pathlib import Path

import cv2
import numpy as np
from facenet_pytorch import MTCNN
from PIL import Image, ImageOps

from augment.align.templates import template
from augment.align.warp import similarity, warp


def main() -> None:
    photos, n, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    model = MTCNN(device="cpu")
    dst = template("sagan", 128)
    found = 0
    for i, path in enumerate(sorted(photos.glob("*.jpg"))[:n]):
        with Image.open(path) as im:
            pixels = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
        boxes, probs, points = model.detect(pixels, landmarks=True)
        if boxes is None:
            continue
        keep = [k for k in range(len(boxes)) if probs[k] >= 0.9]
        if not keep:
            continue
        k = max(keep, key=lambda k: (boxes[k][2] - boxes[k][0]) * (boxes[k][3] - boxes[k][1]))
        crop = warp(pixels, similarity(np.asarray(points[k], float).reshape(5, 2), dst), 128)
        cv2.imwrite(str(out / f"{i:06d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        found += 1
    print(f"{found} photos with a face")


if __name__ == "__main__":
    main()
