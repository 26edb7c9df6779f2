"""The ``read`` stage: the pipeline's datasets (train, eval, sagan) as source
manifests, through the readers of ``augment/data/read.py``."""

from __future__ import annotations

import logging
from pathlib import Path

from augment import manifest as mf
from augment.config import PipelineConfig
from augment.data.read import load_dataset, split_counts
from augment.stages import StageInputs, StageOutputs

log = logging.getLogger("augment.read")


def run_stage(cfg: PipelineConfig, inputs: StageInputs, run_dir: Path) -> StageOutputs:
    synth_root = inputs["groundtruth"].root if "groundtruth" in inputs else None
    out: dict[str, mf.Manifest] = {}
    source, _ = load_dataset(cfg.data.train, "train", synth_root)
    out["source"] = source
    log.info("read train: %d images, %d identities", len(source), source.df["identity"].nunique())
    if cfg.data.sagan is not None:
        sagan, _ = load_dataset(cfg.data.sagan, "sagan", synth_root)
        out["sagan_source"] = sagan
        log.info("read sagan (train_classifier, train_sagan, eval_sagan): %d images, %d identities (%s)",
                 len(sagan), sagan.df["identity"].nunique(), split_counts(sagan.df))
    if cfg.data.eval is not None:
        ev, pairs = load_dataset(cfg.data.eval, "eval", synth_root)
        out["eval_source"] = ev
        if pairs is not None:
            out["pairs"] = pairs
        log.info("read eval: %d images, %d pairs", len(ev), 0 if pairs is None else len(pairs))
    return out
