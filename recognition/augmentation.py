"""The classical augmentation of recognition training: an albumentations pipeline.

``train_recognition`` writes it to ``<run_dir>/augmentation.json`` and trains
with the pipeline as loaded back from that file, so the file is exactly what
every model saw. Images go in as (S,S,3) uint8 RGB.
"""

from __future__ import annotations

from pathlib import Path

AUGMENTATION_FILE = "augmentation.json"


def augmentation(rec_cfg) -> "object":
    """The classical augmentation (albumentations): horizontal flip, optional small
    shift/scale/rotation, and a small colour jitter."""
    import albumentations as A

    ops = []
    if rec_cfg.flip > 0:
        ops.append(A.HorizontalFlip(p=rec_cfg.flip))
    if rec_cfg.max_shift > 0 or rec_cfg.max_rotate > 0:
        s = rec_cfg.max_shift
        ops.append(A.Affine(scale=(1 - s, 1 + s), translate_percent=(-s, s), rotate=(-rec_cfg.max_rotate, rec_cfg.max_rotate),
                            border_mode=cv2_border_reflect(), p=0.8))  # fmt: skip
    if rec_cfg.color_jitter > 0:
        j = rec_cfg.color_jitter
        ops.append(A.ColorJitter(brightness=j, contrast=j, saturation=j, hue=min(0.5, j / 5), p=0.8))
    return A.Compose(ops)


def cv2_border_reflect() -> int:
    import cv2

    return cv2.BORDER_REFLECT_101


def save_augmentation(transform, path: Path):
    """Write the pipeline with ``A.save`` and return it as loaded back (what training uses)."""
    import albumentations as A

    A.save(transform, str(path), data_format="json")
    return A.load(str(path), data_format="json")


def load_augmentation(path: Path):
    """The pipeline ``save_augmentation`` wrote to ``path``."""
    import albumentations as A

    return A.load(str(path), data_format="json")
