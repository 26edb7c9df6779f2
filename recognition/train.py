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
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from augment import checkpoint as ckpt
from augment import distributed as dist
from augment import manifest as mf
from augment.align.dataset import alignment_of
from augment.config import PipelineConfig
from augment.data.errors import DatasetError
from augment.stages import StageInputs, StageOutputs
from augment.runtime import derive_seed, resolve_device
from recognition.backbones import BackboneConfig, build_backbone, load_pretrained
from recognition.data import ManifestDataset, label_map
from recognition.embed import KIND
from recognition.heads import build_head

log = logging.getLogger("augment.train_recognition")

STAGE = "train_recognition"
AUGMENTATION_FILE = "augmentation.json"


# --------------------------------------------------------------------------- #
# What to train
# --------------------------------------------------------------------------- #


@dataclass
class ModelSpec:
    """One recognizer: its name (``baseline``, ``+Eyeglasses``, ``+all``), folder and data."""

    name: str
    folder: str
    attributes: tuple[str, ...]
    manifests: list[mf.Manifest]
    repeat: int = 0  # which of ``train_recognition.repeats`` (0 = the run seed itself)

    @property
    def images(self) -> int:
        return sum(len(m) for m in self.manifests)


def model_specs(aligned: mf.Manifest, edits: mf.Manifest | None, models: str, splits: Sequence[str],
                oracle: mf.Manifest | None = None) -> list[ModelSpec]:
    """The baseline plus the augmented models ``models`` asks for; with ``oracle``
    (perfect edits of the same rows), each augmented model is followed by its
    ``:oracle`` twin trained on those instead of the SaGAN edits."""
    specs = _model_specs(aligned, edits, models, splits)
    if oracle is None or len(oracle) == 0:
        return specs
    twins = {s.name: s for s in _model_specs(aligned, oracle, models, splits)}
    out = []
    for s in specs:
        out.append(s)
        twin = twins.get(s.name)
        if s.name != "baseline" and twin is not None:
            out.append(ModelSpec(f"{s.name}:oracle", f"{s.folder}_oracle", s.attributes, twin.manifests))
    return out


def _model_specs(aligned: mf.Manifest, edits: mf.Manifest | None, models: str, splits: Sequence[str]) -> list[ModelSpec]:
    train = _rows(aligned, aligned.df["split"].isin(splits))
    if len(train) == 0:
        raise DatasetError(f"{aligned.file or aligned.root}: no aligned images in split(s) {list(splits)}")
    specs = [ModelSpec("baseline", "baseline", (), [train])]
    if edits is None or len(edits) == 0:
        return specs
    e = edits.df[edits.df["split"].isin(splits)]
    if e["attribute"].isna().any():
        raise DatasetError(f"{edits.file or edits.root}: {int(e['attribute'].isna().sum())} edit row(s) have no attribute")
    attrs = sorted(e["attribute"].unique())
    if models in ("per_attribute", "both"):
        for a in attrs:
            specs.append(ModelSpec(f"+{a}", a, (a,), [train, _rows(edits, edits.df.index.isin(e.index[e["attribute"] == a]))]))
    if models in ("all", "both") and attrs:
        specs.append(ModelSpec("+all", "all", tuple(attrs), [train, _rows(edits, edits.df.index.isin(e.index))]))
    return specs


def repeated(specs: list[ModelSpec], repeats: int) -> list[ModelSpec]:
    """``specs`` (repeat 0, named as before) followed by ``repeats - 1`` more
    copies of each, named ``<name>@<k>``: the same data, another seed."""
    out = list(specs)
    for k in range(1, repeats):
        out += [ModelSpec(f"{s.name}@{k}", f"{s.folder}@{k}", s.attributes, s.manifests, k) for s in specs]
    return out


def repeat_seed(seed: int, repeat: int) -> int:
    """The training seed of repeat ``repeat``: the run seed for 0, so one repeat
    trains exactly what it trained before repeats existed."""
    return seed if repeat == 0 else derive_seed(seed, STAGE, "repeat", repeat) % 2**62


def _rows(m: mf.Manifest, mask) -> mf.Manifest:
    return mf.Manifest(m.kind, m.df[np.asarray(mask)].reset_index(drop=True), m.root, m.meta, m.file)


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


# --------------------------------------------------------------------------- #
# Model and steps
# --------------------------------------------------------------------------- #


class FaceClassifier(nn.Module):
    """Backbone + training head: ``(x (N,3,S,S) in [-1,1], labels (N,)) -> logits (N,C)``."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x), labels)


def backbone_config(rec_cfg) -> BackboneConfig:
    return BackboneConfig(rec_cfg.backbone, rec_cfg.embedding_size, rec_cfg.image_size, rec_cfg.width, rec_cfg.dropout)


def build_model(rec_cfg, num_classes: int) -> FaceClassifier:
    backbone = build_backbone(backbone_config(rec_cfg))
    if rec_cfg.pretrained:
        load_pretrained(backbone, rec_cfg.pretrained)
    kw = {}
    if rec_cfg.head != "softmax":
        kw = {"s": rec_cfg.scale} | ({"m": rec_cfg.margin} if rec_cfg.margin >= 0 else {})
    return FaceClassifier(backbone, build_head(rec_cfg.head, rec_cfg.embedding_size, num_classes, **kw))


def make_optimizer(model: nn.Module, rec_cfg) -> torch.optim.Optimizer:
    """SGD (momentum 0.9) or AdamW; no weight decay on BN/PReLU/bias parameters."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": rec_cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if rec_cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=rec_cfg.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=rec_cfg.lr)


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer) -> dict:
    """One optimiser step; returns the batch's loss and training accuracy (of the head's logits)."""
    logits = model(x, y)
    loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        acc = (logits.argmax(1) == y).float().mean()
    return {"loss": float(loss.detach()), "accuracy": float(acc)}


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr


# --------------------------------------------------------------------------- #
# One model
# --------------------------------------------------------------------------- #


def checkpoint_meta(rec_cfg, spec: ModelSpec, labels: dict[int, int], epoch: int, step: int, total: int) -> dict:
    return {
        "kind": KIND,
        "name": spec.name,
        "attributes": list(spec.attributes),
        "backbone": rec_cfg.backbone,
        "embedding_size": rec_cfg.embedding_size,
        "image_size": rec_cfg.image_size,
        "width": rec_cfg.width,
        "dropout": rec_cfg.dropout,
        "head": rec_cfg.head,
        "classes": len(labels),
        "identities": sorted(labels),
        "epoch": epoch,
        "step": step,
        "total_steps": total,
    }


def train_model(
    spec: ModelSpec,
    rec_cfg,
    out: Path,
    labels: dict[int, int],
    transform,
    seed: int,
    device: torch.device,
    total_steps: int | None = None,
    metrics_file: Path | None = None,
    alignment: dict | None = None,
) -> tuple[Path, dict]:
    """Train one recognizer (resuming from its latest checkpoint) and write ``out/final``.

    ``total_steps`` None = ``epochs`` passes over this model's data. ``alignment``
    ({template, size} of the training faces) goes into the final checkpoint's
    metadata, so that ``augment evaluate`` can align raw photos the same way.
    Returns (final checkpoint folder, its metadata).
    """
    final = out / "final"
    if (final / ckpt.META).is_file():
        try:
            return final, ckpt.read_meta(final)
        except ckpt.CheckpointError:
            pass  # incomplete: train (or resume) again
    world, rank = (dist.world_size(), dist.rank()) if dist.enabled() else (1, 0)
    if rec_cfg.batch_size % world:
        raise DatasetError(f"train_recognition.batch_size {rec_cfg.batch_size} must divide by the {world} processes")
    data = ManifestDataset(spec.manifests, transform=transform, image_size=rec_cfg.image_size, labels=labels,
                           seed=derive_seed(seed, STAGE, spec.name, "augment") % 2**32, cache=True)  # fmt: skip
    per_rank = rec_cfg.batch_size // world
    if len(data) < rec_cfg.batch_size:
        raise DatasetError(f"model '{spec.name}': {len(data)} training images, fewer than batch_size "
                           f"{rec_cfg.batch_size}")
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True,
                                 seed=derive_seed(seed, STAGE, spec.name, "order") % 2**31, drop_last=True)  # fmt: skip
    loader = DataLoader(data, batch_size=per_rank, sampler=sampler, drop_last=True, num_workers=rec_cfg.workers,
                        persistent_workers=False)  # fmt: skip
    steps_per_epoch = len(loader)
    total = total_steps or rec_cfg.epochs * steps_per_epoch
    warmup = min(total // 2, int(round(rec_cfg.warmup_epochs * steps_per_epoch)))

    torch.manual_seed(derive_seed(seed, STAGE, "init") % 2**63)  # one initialisation for every model
    model = build_model(rec_cfg, len(labels)).to(device)
    optimizer = make_optimizer(model, rec_cfg)
    epoch = step = 0
    latest = ckpt.latest(out / "checkpoints")
    if latest is not None:
        states, meta = ckpt.load(latest, expect={"kind": KIND, "backbone": rec_cfg.backbone, "classes": len(labels)})
        model.load_state_dict(states["model"])
        optimizer.load_state_dict(states["optimizer"])
        epoch, step = int(meta["epoch"]), int(meta["step"])
        log.info("%s: resuming from %s (epoch %d, step %d)", spec.name, latest.name, epoch, step)
    if metrics_file is not None and dist.is_main():
        # epochs redone after an interrupt
        ckpt.drop_records(metrics_file, lambda r: r["model"] == spec.name and r["epoch"] > epoch)
    if rec_cfg.workers == 0:
        data.preload(threads=2, progress=dist.is_main())
    ddp = dist.wrap_ddp(model, device)

    while step < total:
        sampler.set_epoch(epoch)
        data.set_epoch(epoch)
        torch.manual_seed(derive_seed(seed, STAGE, spec.name, "epoch", epoch) % 2**63)  # dropout
        ddp.train()
        t0, n_img, sums = time.perf_counter(), 0, {"loss": 0.0, "accuracy": 0.0}
        n_steps = min(steps_per_epoch, total - step)
        from tqdm import tqdm

        bar = tqdm(total=n_steps, desc=f"{spec.name} epoch {epoch + 1}", unit="step", leave=False,
                   disable=not dist.is_main())  # fmt: skip
        for x, y in loader:
            if step >= total:
                break
            set_lr(optimizer, lr_at(step, total, rec_cfg.lr, warmup))
            out_step = train_step(ddp, x.to(device), y.to(device), optimizer)
            if not math.isfinite(out_step["loss"]):
                raise FloatingPointError(
                    f"model '{spec.name}': loss became {out_step['loss']} at step {step}; lower train_recognition.lr"
                )
            for k in sums:
                sums[k] += out_step[k]
            step += 1
            n_img += x.shape[0] * world
            bar.update(1)
            bar.set_postfix(loss=f"{out_step['loss']:.3f}")
        bar.close()
        epoch += 1
        seconds = time.perf_counter() - t0
        done_steps = max(1, n_steps)
        record = {"model": spec.name, "epoch": epoch, "step": step, "loss": sums["loss"] / done_steps,
                  "accuracy": sums["accuracy"] / done_steps, "lr": optimizer.param_groups[0]["lr"],
                  "images_per_s": n_img / max(seconds, 1e-9), "seconds": seconds}  # fmt: skip
        if dist.is_main():
            log.info("%s epoch %d: loss %.4f, train accuracy %.3f, %.0f images/s", spec.name, epoch,
                     record["loss"], record["accuracy"], record["images_per_s"])  # fmt: skip
            if metrics_file is not None:
                with open(metrics_file, "a") as fh:
                    fh.write(json.dumps(record) + "\n")
            if step >= total and record["accuracy"] < 0.05:
                log.warning("%s: training accuracy %.3f after %d steps (loss %.2f): the model did not learn its "
                            "identities; try train_recognition.head=softmax, a lower lr or more epochs",
                            spec.name, record["accuracy"], step, record["loss"])  # fmt: skip
            if step >= total or epoch % max(1, rec_cfg.checkpoint_every) == 0:
                meta = checkpoint_meta(rec_cfg, spec, labels, epoch, step, total)
                ckpt.save(out / "checkpoints" / f"step_{step:08d}",
                          {"model": model.state_dict(), "optimizer": optimizer.state_dict()}, meta)  # fmt: skip
                ckpt.prune(out / "checkpoints", keep=max(1, rec_cfg.keep_checkpoints))
        dist.barrier()
    meta = checkpoint_meta(rec_cfg, spec, labels, epoch, step, total)
    meta["train_images"] = len(data)
    if alignment:
        meta["alignment"] = alignment
    if dist.is_main():
        ckpt.save(final, {"backbone": model.backbone.state_dict()}, meta)
    dist.barrier()
    return final, ckpt.read_meta(final)


# --------------------------------------------------------------------------- #
# The stage
# --------------------------------------------------------------------------- #


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
    transform = _load_augmentation(run_dir / AUGMENTATION_FILE)
    log.info("train_recognition: %d identities; models: %s", len(labels),
             ", ".join(f"{s.name} ({s.images} images)" for s in specs))  # fmt: skip

    base_steps = None
    if rec_cfg.budget == "equal_steps":
        per_epoch = (specs[0].images // rec_cfg.batch_size)
        base_steps = rec_cfg.epochs * per_epoch
    alignment = alignment_of(aligned)
    rows = []
    for spec in specs:
        final, meta = train_model(spec, rec_cfg, run_dir / "models" / spec.folder, labels, transform,
                                  repeat_seed(cfg.seed, spec.repeat),
                                  device, base_steps, run_dir / "metrics.jsonl", alignment)  # fmt: skip
        rows.append({
            "name": spec.name,
            "path": final.relative_to(run_dir).as_posix(),
            "backbone": rec_cfg.backbone,
            "head": rec_cfg.head,
            "embedding_size": rec_cfg.embedding_size,
            "image_size": rec_cfg.image_size,
            "attributes": list(spec.attributes),
            "train_images": int(meta["train_images"]),
            "identities": len(labels),
            "epochs": int(meta["epoch"]),
            "steps": int(meta["step"]),
            "weights_sha256": mf.file_digest(final / ckpt.WEIGHTS),
        })  # fmt: skip
    return {"recognizers": mf.Manifest("recognizers", mf.frame("recognizers", rows), run_dir)}


def _load_augmentation(path: Path):
    import albumentations as A

    return A.load(str(path), data_format="json")
