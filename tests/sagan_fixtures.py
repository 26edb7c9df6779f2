"""Tiny on-the-fly datasets for the SaGAN tests: a SynthFaces-like tree with ground truth,
and ``TINY``, the smallest SaGAN model config.

Faces are flat grey squares with a little noise; "Eyeglasses" is a dark bar
across the upper half. The source tree mimics the synth output
(``<root>/celeba/img_align_celeba/NNNNNN.png``); the aligned images are the
sources warped by a known 2x3 transform (a shift), as the align stage would.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import torch

from augment import manifest as mf
from augment.data.celeba import CELEBA_ATTRIBUTES, attribute_index
from augment.sagan.model import SaganModelConfig, SaGANGenerator

# The smallest SaGAN the tests build: 16 px, 4 channels wide.
TINY = SaganModelConfig(image_size=16, g_width=4, g_downsample=2, g_res_blocks=1, d_width=4, d_layers=3)

SRC = 40  # source image size
ALIGNED = 32  # aligned image size
SHIFT = (-4.0, -2.0)  # source -> aligned translation
BAR = (slice(12, 18), slice(8, 32))  # the "glasses" rows/cols in source pixels


def _face(rng: np.random.Generator, glasses: bool) -> np.ndarray:
    img = np.full((SRC, SRC, 3), 150, np.float32) + rng.normal(0, 6, (SRC, SRC, 3))
    if glasses:
        img[BAR] = 30
    return img.clip(0, 255).astype(np.uint8)


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img)


def make_dataset(tmp: Path, n: int = 24, unknown: int = 2, seed: int = 0) -> tuple[mf.Manifest, mf.Manifest]:
    """(aligned ``images`` manifest, ``groundtruth`` manifest) over ``n`` faces.

    Splits cycle train,train,train,val,test,train; faces 0,1 wear glasses, 2,3 do not, and so on; the
    last ``unknown`` faces have no attribute labels. Ground truth covers the
    test faces.
    """
    rng = np.random.default_rng(seed)
    synth, align = tmp / "synth", tmp / "align"
    transform = np.array([[1, 0, SHIFT[0]], [0, 1, SHIFT[1]]], np.float32)
    rows, gt_rows = [], []
    splits = ["train", "train", "train", "val", "test", "train"]
    for i in range(n):
        glasses = (i // 2) % 2 == 0
        rel = f"img_align_celeba/{i:06d}.png"
        src = _face(rng, glasses)
        _write(synth / "celeba" / rel, src)
        aligned = cv2.warpAffine(src, transform.astype(np.float64), (ALIGNED, ALIGNED), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
        _write(align / f"{i:06d}.png", aligned)
        attrs = None
        if i < n - unknown:
            attrs = -np.ones(len(CELEBA_ATTRIBUTES), np.int8)
            attrs[attribute_index("Eyeglasses")] = 1 if glasses else -1
        split = splits[i % len(splits)]
        rows.append({
            "sample_id": mf.sample_id("synthfaces", rel), "path": f"{i:06d}.png", "identity": i // 2,
            "split": split, "source": "synthfaces", "attributes": attrs, "transform": transform.reshape(-1),
            "width": ALIGNED, "height": ALIGNED,
        })
        if split == "test":
            cf = src.copy()
            cf[BAR] = _face(np.random.default_rng(seed + i), not glasses)[BAR]
            mask = np.zeros((SRC, SRC), np.uint8)
            mask[BAR] = 255
            _write(synth / "gt" / f"{i:06d}_cf.png", cf)
            _write(synth / "gt" / f"{i:06d}_mask.png", mask)
            gt_rows.append({"image": f"celeba/{rel}", "attribute": "Eyeglasses",
                            "counterfactual": f"gt/{i:06d}_cf.png", "mask": f"gt/{i:06d}_mask.png"})
    aligned_m = mf.Manifest("images", mf.frame("images", rows), align)
    gt_m = mf.Manifest("groundtruth", mf.frame("groundtruth", gt_rows), synth)
    return aligned_m, gt_m


def hard_mask_twin(G):
    """(G with a mask of some contrast, the same weights with ``mask_scale: hard``).
    At init the mask is ~0.5 everywhere, so its hard twin would be all 1s."""
    with torch.no_grad():
        G.san.net[-1].weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(0))
    G_hard = SaGANGenerator(dataclasses.replace(G.cfg, mask_scale="hard"))
    G_hard.load_state_dict(G.state_dict())
    return G, G_hard


class PaintingGenerator:
    """A stand-in SaGAN generator for ``edit_batch`` and eval_sagan: the mask is
    ``where(size)`` (S,S) in [0,1], F_m paints white (c = 1) or black (c = 0), so
    pixels where the mask is 0 stay exactly the input's."""

    def __init__(self, where):
        self.where = where

    def attention(self, x, change=None):
        m = torch.as_tensor(self.where(x.shape[-1])).to(x.dtype)
        return m.expand(x.shape[0], 1, *m.shape).clone()

    @staticmethod
    def manipulate(x, c):
        return (2 * c - 1).view(-1, 1, 1, 1).expand_as(x).clone()

    @staticmethod
    def blend(x, x_a, mask):
        return x_a * mask + x * (1 - mask)

    def __call__(self, x, c, with_manipulation=False, c_src=None):
        mask, x_a = self.attention(x), self.manipulate(x, c)
        out = (self.blend(x, x_a, mask), mask)
        return (*out, x_a) if with_manipulation else out
