"""SynthFaces' exact counterfactuals, joined to aligned rows and brought to a model's size.

The synth stage writes, per source image and attribute, the same face rendered
with the attribute flipped (``counterfactual``) and the region that changed
(``mask``). These helpers find the ground-truth row of an aligned image and
warp both images the way the align stage warped the source, so they line up
with the aligned crop pixel for pixel. Used by the judge's training (smudges on
the true region), eval_sagan (metrics against the truth) and the oracle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from augment import manifest as mf
from augment.align.warp import warp as align_warp
from augment.data.errors import DatasetError
from augment.io import read_mask, read_rgb, resize_square


def groundtruth_index(gt: mf.Manifest, attribute: str, sources: set[str]) -> dict[str, pd.Series]:
    """sample_id of the source image -> its ground-truth row for ``attribute``.

    The ground truth names source images relative to the synth root, source
    manifests relative to a dataset root below it (``celeba/``), so every
    suffix of the path is tried with every source name; sample ids are hashes
    of (source, relative path), so the right one matches and others do not.
    """
    rows = gt.df[gt.df["attribute"] == attribute]
    out: dict[str, pd.Series] = {}
    for _, row in rows.iterrows():
        parts = Path(row["image"]).parts
        for i in range(len(parts)):
            rel = Path(*parts[i:]).as_posix()
            for src in sources:
                out.setdefault(mf.sample_id(src, rel), row)
    return out


def to_model_size(img: np.ndarray, transform, aligned_size: int, size: int) -> np.ndarray:
    """Source-resolution image -> aligned (the align stage's own warp, by the row's 2x3
    ``transform``, ``aligned_size`` px) -> the model's ``size`` px by area averaging, as
    the aligned input itself was reduced (``read_rgb``)."""
    out = align_warp(img, np.asarray(transform, dtype=np.float64).reshape(2, 3), aligned_size)
    return resize_square(out, size)


def aligned_truth(row: pd.Series, gt_root: Path, transform, aligned_size: int,
                  size: int) -> tuple[np.ndarray, np.ndarray]:
    """(counterfactual (S,S,3) uint8, coverage of the changed region (S,S) float in [0,1]),
    both aligned like the source row (its 2x3 ``transform``) and at ``size`` px."""
    if transform is None or len(transform) != 6:
        raise DatasetError(f"aligned row of {row['image']} has no 2x3 transform; cannot align its ground truth")
    cf = to_model_size(read_rgb(gt_root / row["counterfactual"]), transform, aligned_size, size)
    cov = to_model_size(read_mask(gt_root / row["mask"]), transform, aligned_size, size)
    return cf, np.clip(cov, 0.0, 1.0)


def truth_for(row: pd.Series, gt_root: Path, transform, aligned_size: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(counterfactual (S,S,3) float32 in [0,1], coverage of the changed region (S,S) in [0,1])."""
    cf, cov = aligned_truth(row, gt_root, transform, aligned_size, size)
    return cf.astype(np.float32) / 255, cov


def perfect_edit(parent: pd.Series, aligned_root: Path, truth: pd.Series | None, gt_root: Path, value: int,
                 current: int) -> tuple[np.ndarray, float]:
    """(the perfect edit (H,W,3) uint8 at the aligned image's size, true changed area in [0,1]):
    the aligned image itself when it already shows ``value``."""
    if value == current:
        return read_rgb(aligned_root / parent["path"]), 0.0
    if truth is None:
        raise DatasetError(f"no exact counterfactual for {parent['path']}")  # checked before; a guard
    size = int(parent["width"])
    cf, region = aligned_truth(truth, gt_root, parent["transform"], size, size)
    return cf, float(region.mean())
