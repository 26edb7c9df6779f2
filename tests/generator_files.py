"""A tiny random SaGAN generator saved as a checkpoint folder, as train_sagan exports one."""

from __future__ import annotations

from pathlib import Path

import torch

from augment import checkpoint as ckpt
from augment.sagan.model import SaGANGenerator
from augment.sagan.generators import GENERATOR_KIND
from tests.sagan_fixtures import TINY

ALIGN = {"template": "arcface", "size": 32}


def save_generator(folder: Path, align: dict | None = ALIGN, seed: int = 0, data: dict | None = None) -> Path:
    """A generator export at ``folder``; ``align`` None = made before the alignment was recorded;
    ``data``: what it learnt from (``{"sources": [...]}``), recorded when given."""
    torch.manual_seed(seed)
    G = SaGANGenerator(TINY)
    meta = {"kind": GENERATOR_KIND, "model_config": TINY.to_dict(), "preset": "fast", "attribute": "Eyeglasses",
            "step": 1, "seed": 0, "config_hash": "", "image_size": TINY.image_size}
    if align:
        meta["align"] = align
    if data:
        meta["data"] = data
    return ckpt.save(folder, {"G": G.state_dict()}, meta)
