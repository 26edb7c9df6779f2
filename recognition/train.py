"""The ``train_recognition`` stage: a baseline and augmented face recognizers.

Like the paper, the baseline trains on the original (aligned) training images
and each augmented model on the originals plus the SaGAN edits of one
attribute (``models: per_attribute``); ``all`` adds one model with every
attribute's edits, ``both`` does both. An edit keeps its parent's identity, so
every model classifies the same identities.

Every model starts from the same initial weights (one seed for all) and sees
its images in a seeded order, so the comparison is paired and a rerun gives
the same weights. ``budget: epochs`` trains every model ``epochs`` passes over
its own training set; ``equal_steps`` gives every model the baseline's number
of optimiser steps (so gains cannot come from extra updates).

Per model folder ``models/<name>/``: ``checkpoints/step_*`` (kept for resume),
``final/`` (the backbone only; what ``recognizers.parquet`` points at). The
stage folder also holds ``augmentation.json`` (the classical augmentation, an
albumentations pipeline) and ``metrics.jsonl``.

Under torchrun (WORLD_SIZE > 1) each rank trains on its share of every batch
with DistributedDataParallel (gloo on CPU, nccl on GPU); rank 0 writes.

The parts live beside this module: ``specs`` (which models, their data and
seeds), ``augmentation`` (the classical augmentation), ``classifier`` (the
network and its optimiser), ``fit`` (training one model).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from augment import checkpoint as ckpt
from augment import distributed as dist
from augment import manifest as mf
from augment.align.dataset import alignment_of
from augment.config import PipelineConfig
from augment.runtime import resolve_device
from augment.stages import StageInputs, StageOutputs
from recognition.augmentation import AUGMENTATION_FILE, augmentation, load_augmentation, save_augmentation
from recognition.classifier import build_model  # noqa: F401 (re-exported: tests build recognizers from here)
from recognition.data import label_map
from recognition.embed import KIND  # noqa: F401 (re-exported: tests read the checkpoint kind from here)
from recognition.fit import train_model
from recognition.specs import ModelSpec, model_specs, repeat_seed, repeated

log = logging.getLogger("augment.train_recognition")


def _equal_steps(specs: list[ModelSpec], rec_cfg) -> int | None:
    """With ``budget: equal_steps``, the baseline's optimiser steps (every model's
    budget); None with ``budget: epochs``."""
    if rec_cfg.budget != "equal_steps":
        return None
    per_epoch = (specs[0].images // rec_cfg.batch_size)
    return rec_cfg.epochs * per_epoch


def _row(spec: ModelSpec, rec_cfg, final: Path, meta: dict, identities: int, run_dir: Path) -> dict:
    """The ``recognizers`` manifest row of one trained model."""
    return {
        "name": spec.name,
        "path": final.relative_to(run_dir).as_posix(),
        "backbone": rec_cfg.backbone,
        "head": rec_cfg.head,
        "embedding_size": rec_cfg.embedding_size,
        "image_size": rec_cfg.image_size,
        "attributes": list(spec.attributes),
        "train_images": int(meta["train_images"]),
        "identities": identities,
        "epochs": int(meta["epoch"]),
        "steps": int(meta["step"]),
        "weights_sha256": mf.file_digest(final / ckpt.WEIGHTS),
    }  # fmt: skip


def run_stage(cfg: PipelineConfig, inputs: StageInputs, run_dir: Path) -> StageOutputs:
    """Train the baseline and the augmented recognizers; output ``recognizers``."""
    rec_cfg = cfg.train_recognition
    aligned = inputs["aligned"]  # a declared input: the runner checked it is there
    device = resolve_device(cfg.device)  # cuda:LOCAL_RANK under torchrun (distributed.decide)
    specs = repeated(model_specs(aligned, inputs.get("edits"), rec_cfg.models, rec_cfg.splits,
                                 inputs.get("oracle_edits")), rec_cfg.repeats)
    identities = pd.concat([m.df["identity"] for s in specs for m in s.manifests])
    labels = label_map(identities)
    if dist.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        save_augmentation(augmentation(rec_cfg), run_dir / AUGMENTATION_FILE)
    dist.barrier()
    transform = load_augmentation(run_dir / AUGMENTATION_FILE)
    log.info("train_recognition: %d identities; models: %s", len(labels),
             ", ".join(f"{s.name} ({s.images} images)" for s in specs))  # fmt: skip

    base_steps = _equal_steps(specs, rec_cfg)
    alignment = alignment_of(aligned)
    rows = []
    for spec in specs:
        final, meta = train_model(spec, rec_cfg, run_dir / "models" / spec.folder, labels, transform,
                                  repeat_seed(cfg.seed, spec.repeat),
                                  device, base_steps, run_dir / "metrics.jsonl", alignment)  # fmt: skip
        rows.append(_row(spec, rec_cfg, final, meta, len(labels), run_dir))
    return {"recognizers": mf.Manifest("recognizers", mf.frame("recognizers", rows), run_dir)}
