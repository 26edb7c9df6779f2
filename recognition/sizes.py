"""Which face sizes each recognition backbone takes (torch-free, so config
validation can ask before any network is built)."""

from __future__ import annotations


def backbone_size_problem(backbone: str, image_size: int) -> str | None:
    """Why ``backbone`` (recognition/backbones.py) cannot take ``image_size`` px faces, or None."""
    if backbone == "inception_resnet_v1":
        return None if image_size >= 80 else f"image_size must be at least 80, got {image_size}"
    return None if image_size >= 16 and image_size % 16 == 0 else \
        f"image_size must be a multiple of 16, got {image_size}"
