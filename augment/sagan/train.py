"""SaGAN training: the resumable ``train`` loop of one attribute and the ``train_sagan`` stage.

One generator per attribute. Per generator step: ``n_critic`` critic steps,
each on a fresh balanced batch (half with the attribute, half without), then
one generator step on the last of those batches; the target of every image is
its flipped label. Adam (lr, beta1, beta2) for both networks.

Everything a run needs to continue exactly lives in its checkpoints (G, D,
both optimisers, the interpolation RNG); the data order is a pure function of
(seed, batch number), so resuming at step s gives the weights of an
uninterrupted run. Layout of one attribute's folder ``<run_dir>/<attribute>/``:

- ``checkpoints/step_XXXXXXX/``: full checkpoints (the last two are kept);
- ``generator/``: the final generator alone, what the edit stage loads (with
  ``g_ema`` > 0, beyond the paper, the moving average of G's weights, which is
  also kept in every checkpoint as ``G_ema``);
- ``metrics.jsonl``: one line per ``log_every`` steps with every loss term;

and sample grids in ``<run_dir>/samples/<attribute>/step_XXXXXXX.png``.

On CUDA the networks run channels_last under bf16 autocast. Under torchrun
(WORLD_SIZE > 1) G and D are wrapped in DistributedDataParallel (gloo on CPU):
rank r draws the global batches r, W + r, ... and rank 0 alone writes files.

The parts live beside this module: ``steps`` (one critic and one generator
update), ``schedule`` (lr, warm-ups, G_ema), ``trainstate`` (networks,
optimisers, RNGs, checkpoints), ``batches`` (the loader and each step's
batches), ``progress`` (metrics lines, bar, sample grids).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from augment import checkpoint as ckpt
from augment import distributed as dist
from augment import manifest as mf
from augment.align.dataset import alignment_of
from augment.config import ConfigError, PipelineConfig, TrainSaganConfig, section_hash
from augment.judges.regions import region_mask
from augment.runtime import resolve_device, torch_threads
from augment.sagan.batches import critic_batches, fixed_images, make_loader
from augment.sagan.data import ImageDataset, attribute_labels, attribute_rows
from augment.sagan.generators import export_generator
from augment.sagan.judged import locality_problem
from augment.sagan.model import SaganModelConfig
from augment.sagan.progress import MetricsLog, save_samples
from augment.sagan.schedule import apply_schedule, ema_decay, rec_weight_scale, update_ema
from augment.sagan.sizes import stage_model_config
from augment.sagan.smudge import manifest_blobs
from augment.sagan.steps import d_step, g_step, train_step  # noqa: F401 (d_step, g_step: re-exported, tests use them)
from augment.sagan.trainstate import build  # noqa: F401 (re-exported: tests build from here)
from augment.sagan.trainstate import (TrainState, checkpoint_meta, checkpoint_path, new_state, resume_latest,
                                      save_checkpoint)
from augment.stages import StageInputs, StageOutputs

log = logging.getLogger("augment.train_sagan")


# --------------------------------------------------------------------------- #
# The loop
# --------------------------------------------------------------------------- #


def _start(attribute: str, dataset: ImageDataset, mcfg: SaganModelConfig, sagan_cfg: TrainSaganConfig,
           out_dir: Path, seed: int, device: torch.device) -> TrainState:
    """The run's state: fresh, or resumed from the latest checkpoint under
    ``out_dir`` (dropping the metrics lines of the steps to be redone)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if dataset.size != mcfg.image_size:
        raise ValueError(f"dataset images are {dataset.size} px, the model wants {mcfg.image_size} px")
    state = new_state(attribute, mcfg, sagan_cfg, seed, device)
    if resume_latest(state, out_dir / "checkpoints", attribute, mcfg, device) is not None and dist.is_main():
        ckpt.drop_records(out_dir / "metrics.jsonl", lambda r: r.get("step", 0) > state.step)
    return state


def _one_step(state: TrainState, G_train, D_train, batches, sampler, sagan_cfg: TrainSaganConfig,
              device: torch.device, seed: int, attribute: str, blobs: list[np.ndarray] | None,
              metrics: MetricsLog, region: torch.Tensor | None = None) -> None:
    """Generator step ``state.step``: its schedule, ``n_critic`` critic updates and
    one generator update (``train_step``, looked up in this module, where a test
    can spy on it), the G_ema update; then ``state.step`` + 1."""
    apply_schedule(state.step, sagan_cfg, (state.opt_G, state.opt_D), state.generators)
    step_batches = critic_batches(batches, sampler, state.step, sagan_cfg, state.alpha_rng, device,
                                  seed=seed, attribute=attribute, blobs=blobs)
    parts = train_step(G_train, D_train, state.opt_G, state.opt_D, step_batches, sagan_cfg,
                       rec_weight_scale(state.step, sagan_cfg), state.aug_rng,
                       first_critic_step=state.step * sagan_cfg.n_critic, region=region)
    if state.G_ema is not None:
        update_ema(state.G_ema, state.G, ema_decay(state.step, sagan_cfg.g_ema))
    state.step += 1
    metrics.add(parts)


def train(
    attribute: str,
    dataset: ImageDataset,
    mcfg: SaganModelConfig,
    sagan_cfg: TrainSaganConfig,
    out_dir: Path,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    train_sagan_hash: str = "",
    samples_dir: Path | None = None,
    steps: int | None = None,
    blobs: list[np.ndarray] | None = None,
    region: np.ndarray | None = None,
    bar_position: int | None = None,
) -> Path:
    """Train (or resume) one attribute's SaGAN; returns the checkpoint folder of the last step.

    ``dataset`` yields (image (3,S,S) in [-1,1], label in {0,1}); S must be
    ``mcfg.image_size``. ``steps`` (default ``sagan_cfg.steps``) lets a caller stop
    early; a later call with more steps continues from the latest checkpoint.
    ``blobs[i]`` (B,4): where image i may be smudged for D_cls (``d_smudge_fraction``).
    ``region`` (S,S) in {0,1}: the attribute's template region (``lambda_region``).
    ``bar_position``: the progress bar's line when several trainings share a terminal.
    """
    device = torch.device(device)
    steps = sagan_cfg.steps if steps is None else steps
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    state = _start(attribute, dataset, mcfg, sagan_cfg, out_dir, seed, device)
    if state.step >= steps:
        return checkpoint_path(ckpt_dir, state.step)

    G_train, D_train = dist.wrap_ddp(state.G, device), dist.wrap_ddp(state.D, device)
    if sagan_cfg.compile:
        G_train = torch.compile(G_train)
    sampler, loader = make_loader(dataset, sagan_cfg, seed, attribute, state.step, device)
    batches = iter(loader)
    x_fixed = fixed_images(dataset, sagan_cfg, device)
    region_t = None if region is None else torch.from_numpy(region).float()[None, None].to(device)

    metrics = MetricsLog(out_dir / "metrics.jsonl", attribute, state.step, steps, sagan_cfg, bar_position)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    if sagan_cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    try:
        while state.step < steps:
            _one_step(state, G_train, D_train, batches, sampler, sagan_cfg, device, seed, attribute, blobs, metrics,
                      region_t)
            step = state.step
            if step % sagan_cfg.log_every == 0 or step == steps:
                metrics.write(step)
            if samples_dir is not None and dist.is_main() and (step % sagan_cfg.sample_every == 0 or step == steps):
                save_samples(state.sample_generator, x_fixed, samples_dir, step)
            if step % sagan_cfg.checkpoint_every == 0 or step == steps:
                save_checkpoint(state, ckpt_dir,
                                checkpoint_meta(mcfg, attribute, step, seed, train_sagan_hash, sagan_cfg.preset))
    finally:
        metrics.close()
        torch.use_deterministic_algorithms(deterministic_before)
    return checkpoint_path(ckpt_dir, state.step)


# --------------------------------------------------------------------------- #
# The stage
# --------------------------------------------------------------------------- #


def _smudge_blobs(aligned: mf.Manifest, attribute: str, image_size: int) -> list[np.ndarray]:
    """Per training image of ``attribute`` (the rows of its dataset, in order):
    where D_cls may see it smudged, (B,4) in the aligned image's pixels."""
    df = aligned.df[aligned.df["split"] == "train"].reset_index(drop=True)
    df = df[attribute_labels(df, attribute) >= 0]  # the rows of ``dataset``, in order
    return manifest_blobs(aligned, df, [attribute], image_size)


def _mask_region(aligned: mf.Manifest, attribute: str, lambda_region: float, image_size: int) -> np.ndarray | None:
    """(S,S) in {0,1}: ``attribute``'s template region on the aligned crops at the
    generator's size, for ``train_sagan.lambda_region``; None when that is 0."""
    if not lambda_region:
        return None
    template = (alignment_of(aligned) or {}).get("template")
    why = locality_problem(attribute, template)
    if why is not None:
        raise ConfigError(f"key 'train_sagan.lambda_region' needs {attribute}'s template region on "
                          f"{aligned.file or aligned.root}: {why}")
    return region_mask(attribute, template, image_size)


def _die_with_parent(parent: int) -> None:
    """Worker initializer: end this process when the stage's process is gone (a
    kill -9 of ``augment run`` would otherwise leave workers training into a
    folder that the next run starts afresh)."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _train_job(job: dict) -> Path:
    """One attribute's ``train`` with its own thread count: the body of a worker
    process when ``train_sagan.parallel`` > 1 (arguments picklable: spawn). The
    dataset is made here, so its image cache lives as long as this training only."""
    threads, paths, labels = job.pop("threads"), job.pop("paths"), job.pop("labels")
    dataset = ImageDataset(paths, job["mcfg"].image_size, labels)
    with torch_threads(threads):
        return train(dataset=dataset, **job)


def _train_all(jobs: list[dict], parallel: int) -> list[Path]:
    """Every job's last checkpoint folder, in order: one after the other, or
    ``parallel`` at once in spawned processes (a fresh interpreter each: OpenMP
    does not survive a fork). A failure in one raises here once the others stop."""
    if parallel == 1 or len(jobs) == 1:
        return [_train_job(dict(job)) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(parallel, len(jobs)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
        return list(pool.map(_train_job, jobs))


def threads_per_process(threads: int, parallel: int) -> int:
    """``train_sagan.threads`` for each of ``parallel`` processes: as asked, or with
    0 the cores shared out (at least one each); 0 alone leaves torch's default."""
    if threads > 0 or parallel == 1:
        return threads
    return max(1, (os.cpu_count() or 1) // parallel)


def run_stage(cfg: PipelineConfig, inputs: StageInputs, run_dir: Path) -> StageOutputs:
    """train_sagan: one generator per ``train_sagan.attributes`` on the aligned
    ``train`` split -> the ``generators`` manifest (root = run_dir).

    With ``train_sagan.parallel`` > 1 that many attributes train at once, each in
    a process of its own (not under torchrun, whose ranks share one generator)."""
    sagan_cfg = cfg.train_sagan
    aligned: mf.Manifest = inputs.get("sagan_aligned", inputs["aligned"])  # data.sagan, else data.train
    device = resolve_device(cfg.device)
    mcfg = stage_model_config(sagan_cfg)
    train_sagan_hash = section_hash(cfg, ["train_sagan"])
    parallel = sagan_cfg.parallel
    if parallel > 1 and dist.world_size() > 1:
        raise ConfigError("key 'train_sagan.parallel' must be 1 under torchrun (--nproc): its ranks train one "
                          f"generator together; got {parallel}")
    threads = threads_per_process(sagan_cfg.threads, parallel)
    jobs = []
    for i, attribute in enumerate(sagan_cfg.attributes):
        own_cfg = sagan_cfg.for_attribute(attribute)  # train_sagan.per_attribute's keys in place
        paths, labels = attribute_rows(aligned, attribute, ["train"])
        n_pos = int(labels.sum())
        log.info("[train_sagan] %s: %d training images with a known label (%d with, %d without)",
                 attribute, len(labels), n_pos, len(labels) - n_pos)
        blobs = None
        if own_cfg.d_smudge_fraction > 0:
            blobs = _smudge_blobs(aligned, attribute, mcfg.image_size)
            log.info("[train_sagan] %s: D_cls sees %.0f%% of each batch smudged (%d of %d images have landmarks)",
                     attribute, 100 * own_cfg.d_smudge_fraction, sum(len(b) > 0 for b in blobs), len(blobs))
        jobs.append({"attribute": attribute, "paths": paths, "labels": labels, "mcfg": mcfg,
                     "sagan_cfg": own_cfg, "out_dir": run_dir / attribute, "seed": cfg.seed,
                     "device": str(device), "train_sagan_hash": train_sagan_hash,
                     "samples_dir": run_dir / "samples" / attribute, "blobs": blobs, "threads": threads,
                     "region": _mask_region(aligned, attribute, own_cfg.lambda_region, mcfg.image_size),
                     # each process its own progress line
                     "bar_position": i % parallel if parallel > 1 else None})
    if parallel > 1:
        log.info("[train_sagan] %d attribute(s) at a time, %d thread(s) each", min(parallel, len(jobs)), threads)
    lasts = _train_all(jobs, parallel)
    rows = []
    for job, last in zip(jobs, lasts):
        attribute, gen_dir = job["attribute"], job["out_dir"] / "generator"
        n_images, n_pos = len(job["labels"]), int(job["labels"].sum())
        if dist.is_main():
            sources = sorted(str(v) for v in aligned.df["source"].dropna().unique())
            export_generator(last, gen_dir, alignment_of(aligned), {"sources": sources, "images": n_images})
            rows.append({
                "attribute": attribute,
                "path": gen_dir.relative_to(run_dir).as_posix(),
                "generator_id": ckpt.weights_id(gen_dir),
                "step": job["sagan_cfg"].steps,
                "preset": sagan_cfg.preset,
                "image_size": mcfg.image_size,
                "train_images": n_images,
                "train_positive": n_pos,
            })
        dist.barrier()
    extra = {"align": alignment_of(aligned)}
    return {"generators": mf.Manifest("generators", mf.frame("generators", rows), run_dir, {"extra": extra})}
