"""The ``align`` stage: the pipeline's datasets through ``align_dataset``
(``augment/align/dataset.py``), their rejects in one manifest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from augment import manifest as mf
from augment.align.dataset import align_dataset
from augment.config import PipelineConfig
from augment.stages import StageInputs, StageOutputs


def run_stage(cfg: PipelineConfig, inputs: StageInputs, run_dir: Path) -> StageOutputs:
    """``source`` (and ``eval_source``, ``sagan_source``) -> ``aligned`` (and
    ``eval_aligned``, ``sagan_aligned``) + ``rejects``.

    Rejects of all sets go into one manifest rooted at the training set's root;
    the other sets' rows carry absolute paths (their own roots differ).
    """
    from augment.runtime import resolve_device, workers

    device = resolve_device(cfg.device).type
    n_workers = workers(cfg.align.workers)
    train = align_dataset(inputs["source"], cfg.align, cfg.data.train.align, run_dir, prefix="train",
                          role="train", device=device, workers=n_workers,
                          missing_landmarks=cfg.data.train.missing_landmarks)
    out: dict[str, mf.Manifest] = {"aligned": train.aligned}
    rejects = [train.rejects.df]
    counts = {"train": train.stats["rejects"], "eval": {}}

    def other(key: str, ds, prefix: str, role: str) -> None:
        """Another dataset (eval, sagan): its aligned manifest, and its rejects with absolute paths."""
        res = align_dataset(inputs[key], cfg.align, ds.align, run_dir, prefix=prefix, role=role, device=device,
                            workers=n_workers, missing_landmarks=ds.missing_landmarks)
        out[f"{prefix}_aligned"] = res.aligned
        rejects.append(res.rejects.df.assign(path=[str(res.rejects.abspath(p).resolve())
                                                   for p in res.rejects.df["path"]]))
        counts[prefix] = res.stats["rejects"]

    if "eval_source" in inputs and cfg.data.eval is not None:
        other("eval_source", cfg.data.eval, "eval", "eval")
    if "sagan_source" in inputs and cfg.data.sagan is not None:
        other("sagan_source", cfg.data.sagan, "sagan", "train")  # training images: no centre-crop fallback
    rej = pd.concat(rejects, ignore_index=True) if len(rejects) > 1 else rejects[0]
    out["rejects"] = mf.Manifest("rejects", rej, train.rejects.root, {"extra": counts})
    return out
