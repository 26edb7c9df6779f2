"""Training one recognizer: its data loader, lr schedule, optimiser steps,
per-epoch metrics and checkpoints, resume, and the final backbone.

Every model starts from the same initial weights (one seed for all) and sees
its images in a seeded order, so the comparison is paired and a rerun gives
the same weights. Per model folder ``models/<name>/``: ``checkpoints/step_*``
(kept for resume) and ``final/`` (the backbone only). Under torchrun each rank
trains on its share of every batch with DistributedDataParallel; rank 0 writes.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from augment import checkpoint as ckpt
from augment import distributed as dist
from augment.data.errors import DatasetError
from augment.runtime import derive_seed
from recognition.classifier import build_model, make_optimizer
from recognition.data import ManifestDataset
from recognition.embed import KIND
from recognition.specs import STAGE, ModelSpec

log = logging.getLogger("augment.train_recognition")


# --------------------------------------------------------------------------- #
# Steps
# --------------------------------------------------------------------------- #


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer) -> dict:
    """One optimiser step on ``x`` (N,3,S,S) in [-1,1] with identity labels ``y``
    (N,); returns the batch's loss and training accuracy (of the head's logits)."""
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


@dataclass
class Feed:
    """One model's training data: the dataset, this rank's sampler and loader, the step counts."""

    data: ManifestDataset
    sampler: DistributedSampler
    loader: DataLoader
    world: int  # processes sharing every batch
    steps_per_epoch: int
    total: int  # optimiser steps to train
    warmup: int  # lr warm-up steps


def _finished(final: Path) -> tuple[Path, dict] | None:
    """(final, its metadata) when ``final`` is complete, else None (train or resume)."""
    if (final / ckpt.META).is_file():
        try:
            return final, ckpt.read_meta(final)
        except ckpt.CheckpointError:
            pass  # incomplete: train (or resume) again
    return None


def make_feed(spec: ModelSpec, rec_cfg, labels: dict[int, int], transform, seed: int,
              total_steps: int | None) -> Feed:
    """The seeded data of ``spec`` (images (3,S,S) in [-1,1], identity labels);
    ``total_steps`` None = ``epochs`` passes over it."""
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
    return Feed(data, sampler, loader, world, steps_per_epoch, total, warmup)


def _resume(model: nn.Module, optimizer: torch.optim.Optimizer, out: Path, rec_cfg, spec: ModelSpec,
            labels: dict[int, int], metrics_file: Path | None) -> tuple[int, int]:
    """(epoch, step) of the latest checkpoint under ``out``, loaded into ``model``
    and ``optimizer``, or (0, 0); drops the metrics lines of the epochs to redo."""
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
    return epoch, step


def _train_epoch(ddp: nn.Module, optimizer: torch.optim.Optimizer, feed: Feed, spec: ModelSpec, rec_cfg,
                 seed: int, device: torch.device, epoch: int, step: int) -> tuple[int, dict]:
    """Epoch ``epoch`` from step ``step`` (stopping at ``feed.total``); returns
    (the step reached, its record for ``metrics.jsonl``)."""
    feed.sampler.set_epoch(epoch)
    feed.data.set_epoch(epoch)
    torch.manual_seed(derive_seed(seed, STAGE, spec.name, "epoch", epoch) % 2**63)  # dropout
    ddp.train()
    t0, n_img, sums = time.perf_counter(), 0, {"loss": 0.0, "accuracy": 0.0}
    n_steps = min(feed.steps_per_epoch, feed.total - step)
    from tqdm import tqdm

    bar = tqdm(total=n_steps, desc=f"{spec.name} epoch {epoch + 1}", unit="step", leave=False,
               disable=not dist.is_main())  # fmt: skip
    for x, y in feed.loader:
        if step >= feed.total:
            break
        set_lr(optimizer, lr_at(step, feed.total, rec_cfg.lr, feed.warmup))
        out_step = train_step(ddp, x.to(device), y.to(device), optimizer)
        if not math.isfinite(out_step["loss"]):
            raise FloatingPointError(
                f"model '{spec.name}': loss became {out_step['loss']} at step {step}; lower train_recognition.lr"
            )
        for k in sums:
            sums[k] += out_step[k]
        step += 1
        n_img += x.shape[0] * feed.world
        bar.update(1)
        bar.set_postfix(loss=f"{out_step['loss']:.3f}")
    bar.close()
    seconds = time.perf_counter() - t0
    done_steps = max(1, n_steps)
    record = {"model": spec.name, "epoch": epoch + 1, "step": step, "loss": sums["loss"] / done_steps,
              "accuracy": sums["accuracy"] / done_steps, "lr": optimizer.param_groups[0]["lr"],
              "images_per_s": n_img / max(seconds, 1e-9), "seconds": seconds}  # fmt: skip
    return step, record


def _end_epoch(record: dict, model: nn.Module, optimizer: torch.optim.Optimizer, feed: Feed, spec: ModelSpec,
               rec_cfg, labels: dict[int, int], out: Path, metrics_file: Path | None) -> None:
    """On rank 0: log the epoch's ``record``, append it to ``metrics_file``, warn
    when the finished model did not learn, and checkpoint (every
    ``checkpoint_every`` epochs and at the end, keeping ``keep_checkpoints``)."""
    epoch, step = record["epoch"], record["step"]
    log.info("%s epoch %d: loss %.4f, train accuracy %.3f, %.0f images/s", spec.name, epoch,
             record["loss"], record["accuracy"], record["images_per_s"])  # fmt: skip
    if metrics_file is not None:
        with open(metrics_file, "a") as fh:
            fh.write(json.dumps(record) + "\n")
    if step >= feed.total and record["accuracy"] < 0.05:
        log.warning("%s: training accuracy %.3f after %d steps (loss %.2f): the model did not learn its "
                    "identities; try train_recognition.head=softmax, a lower lr or more epochs",
                    spec.name, record["accuracy"], step, record["loss"])  # fmt: skip
    if step >= feed.total or epoch % max(1, rec_cfg.checkpoint_every) == 0:
        meta = checkpoint_meta(rec_cfg, spec, labels, epoch, step, feed.total)
        ckpt.save(out / "checkpoints" / f"step_{step:08d}",
                  {"model": model.state_dict(), "optimizer": optimizer.state_dict()}, meta)  # fmt: skip
        ckpt.prune(out / "checkpoints", keep=max(1, rec_cfg.keep_checkpoints))


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
    done = _finished(final)
    if done is not None:
        return done
    feed = make_feed(spec, rec_cfg, labels, transform, seed, total_steps)

    torch.manual_seed(derive_seed(seed, STAGE, "init") % 2**63)  # one initialisation for every model
    model = build_model(rec_cfg, len(labels)).to(device)
    optimizer = make_optimizer(model, rec_cfg)
    epoch, step = _resume(model, optimizer, out, rec_cfg, spec, labels, metrics_file)
    if rec_cfg.workers == 0:
        feed.data.preload(threads=2, progress=dist.is_main())
    ddp = dist.wrap_ddp(model, device)

    while step < feed.total:
        step, record = _train_epoch(ddp, optimizer, feed, spec, rec_cfg, seed, device, epoch, step)
        epoch += 1
        if dist.is_main():
            _end_epoch(record, model, optimizer, feed, spec, rec_cfg, labels, out, metrics_file)
        dist.barrier()
    meta = checkpoint_meta(rec_cfg, spec, labels, epoch, step, feed.total)
    meta["train_images"] = len(feed.data)
    if alignment:
        meta["alignment"] = alignment
    if dist.is_main():
        ckpt.save(final, {"backbone": model.backbone.state_dict()}, meta)
    dist.barrier()
    return final, ckpt.read_meta(final)
