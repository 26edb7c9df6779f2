"""SaGAN training: small step functions, a resumable ``train`` loop, the ``train_sagan`` stage.

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
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from augment import checkpoint as ckpt
from augment import distributed as dist
from augment import manifest as mf
from augment.config import PipelineConfig, TrainSaganConfig, section_hash
from augment.io import save_png, tile, to_uint8
from augment.runtime import derive_seed, resolve_device, torch_threads
from augment.align.dataset import alignment_of
from augment.sagan.data import BalancedBatchSampler, ImageDataset, attribute_labels, attribute_rows
from augment.sagan.generators import CHECKPOINT_KIND, export_generator
from augment.sagan import diffaug
from augment.sagan.losses import d_loss, g_forward, g_loss
from augment.sagan.model import SaganModelConfig, SaGANDiscriminator, SaGANGenerator
from augment.sagan.sizes import stage_model_config
from augment.sagan.smudge import aligned_blobs, smudge_batch
from augment.stages import StageInputs, StageOutputs

log = logging.getLogger("augment.train_sagan")

KEEP_CHECKPOINTS = 2


# --------------------------------------------------------------------------- #
# Steps
# --------------------------------------------------------------------------- #


def _autocast(device: torch.device):
    """bf16 autocast on CUDA; nothing on CPU (bf16 convs are slow there)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _seen_by(D, sagan_cfg: TrainSaganConfig, aug_rng: torch.Generator | None):
    """D, or D behind ``sagan_cfg.diffaugment`` (beyond the paper) when it is set."""
    policies = diffaug.parse(sagan_cfg.diffaugment)
    if policies and aug_rng is None:
        raise ValueError("train_sagan.diffaugment is set: the step needs its aug_rng")
    return diffaug.augmented(D, policies, aug_rng)


def d_step(G, D, opt_D: torch.optim.Optimizer, x_real: torch.Tensor, c_org: torch.Tensor,
           alpha: torch.Tensor, sagan_cfg: TrainSaganConfig,
           smudged: tuple[torch.Tensor, torch.Tensor] | None = None,
           x_fake: torch.Tensor | None = None,
           aug_rng: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """One critic update. ``x_real`` (N,3,H,W) in [-1,1], ``c_org`` (N,) in {0,1},
    ``alpha`` (N,) in [0,1]; ``smudged`` optional (images (M,3,H,W), labels (M,)):
    real images smudged for D_cls (``d_smudge_fraction``). ``x_fake``: the edits
    G(x_real, 1 - c_org) if the caller has them (``train_step``), else ``G``
    makes them without gradients. ``D`` may be DDP-wrapped; with
    ``sagan_cfg.diffaugment`` it sees every image through the augmentation, drawn
    from ``aug_rng``. Returns detached 0-dim loss terms."""
    device = x_real.device
    if x_fake is None:
        with torch.no_grad(), _autocast(device):
            x_fake, _ = dist.unwrap(G)(x_real, 1 - c_org)
    with _autocast(device):
        loss, parts = d_loss(_seen_by(D, sagan_cfg, aug_rng), x_real, x_fake.detach().to(x_real.dtype), c_org, alpha,
                             lambda_gp=sagan_cfg.lambda_gp, lambda_cls=sagan_cfg.lambda_cls,
                             x_smudge=None if smudged is None else smudged[0],
                             c_smudge=None if smudged is None else smudged[1])
    opt_D.zero_grad(set_to_none=True)
    loss.backward()
    opt_D.step()
    return parts


def g_step(G, D, opt_G: torch.optim.Optimizer, x_real: torch.Tensor, c_org: torch.Tensor,
           sagan_cfg: TrainSaganConfig, rec_scale: float = 1.0,
           forward: tuple[torch.Tensor, ...] | None = None,
           aug_rng: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """One generator update towards the flipped labels. ``G`` may be DDP-wrapped;
    ``D`` is used bare and frozen (its gradients are not needed). ``rec_scale``
    multiplies lambda1 and lambda2 (the warm-up, ``rec_weight_scale``).
    ``forward``: ``g_forward(G, x_real, c_org, 1 - c_org)`` if already run.
    ``aug_rng``: as in ``d_step``."""
    D = dist.unwrap(D)
    D.requires_grad_(False)
    try:
        with _autocast(x_real.device):
            loss, parts = g_loss(G, _seen_by(D, sagan_cfg, aug_rng), x_real, c_org, 1 - c_org, lambda_cls=sagan_cfg.lambda_cls,
                                 lambda1=sagan_cfg.lambda1 * rec_scale, lambda2=sagan_cfg.lambda2 * rec_scale,
                                 lambda_mask=sagan_cfg.lambda_mask, detach_mask_identity=sagan_cfg.detach_mask_identity,
                                 lambda_area=sagan_cfg.lambda_area, mask_area=(sagan_cfg.mask_area_min, sagan_cfg.mask_area_max),
                                 lambda_tv=sagan_cfg.lambda_tv, lambda_bin=sagan_cfg.lambda_bin,
                                 identity_through_mask=sagan_cfg.mask_scale == "hard", forward=forward)
        opt_G.zero_grad(set_to_none=True)
        loss.backward()
        opt_G.step()
    finally:
        D.requires_grad_(True)
    return parts


def train_step(G, D, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer,
               batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]],
               sagan_cfg: TrainSaganConfig, rec_scale: float = 1.0,
               aug_rng: torch.Generator | None = None) -> list[dict[str, torch.Tensor]]:
    """One generator step: a critic update per batch of ``batches``
    ((x_real, c_org, alpha, smudged), as ``d_step`` takes them), then the
    generator update on the last batch. Returns every update's loss terms.

    The last critic update's fakes are the generator update's edits: G does not
    change between them, so G(I, c) runs once, with gradients, and its detached
    output feeds the critic (the same values a separate no-grad pass gives, one
    generator forward fewer per step; on one process only, see below).
    """
    # Under DDP the generator's forward stays right before its backward: a DDP
    # forward held open across the critic's DDP update made the 2-process test
    # abort at shutdown in 1 of 3 runs (never with the forward in place).
    reuse = not isinstance(getattr(G, "_orig_mod", G), torch.nn.parallel.DistributedDataParallel)
    parts, forward = [], None
    for k, (x_real, c_org, alpha, smudged) in enumerate(batches):
        x_fake = None
        if reuse and k == len(batches) - 1:
            with _autocast(x_real.device):
                forward = g_forward(G, x_real, c_org, 1 - c_org)
            x_fake = forward[0][: len(x_real)]
        parts.append(d_step(G, D, opt_D, x_real, c_org, alpha, sagan_cfg, smudged, x_fake=x_fake, aug_rng=aug_rng))
    parts.append(g_step(G, D, opt_G, x_real, c_org, sagan_cfg, rec_scale, forward=forward, aug_rng=aug_rng))
    return parts


def rec_weight_scale(step: int, sagan_cfg: TrainSaganConfig) -> float:
    """Factor on lambda1 and lambda2 at generator step ``step`` (0-based): a linear
    ramp from 1/rec_warmup to 1 over the first ``rec_warmup`` steps (beyond the
    paper: the edit can appear before reconstruction pins G to the identity); 1 without."""
    if sagan_cfg.rec_warmup <= 0:
        return 1.0
    return min(1.0, (step + 1) / sagan_cfg.rec_warmup)


def ema_decay(step: int, decay: float) -> float:
    """Weight of the old average after generator step ``step`` (0-based): ``decay``,
    ramped in as (1 + step) / (10 + step) so the first steps are not averaged
    with the random init for hundreds of steps (StyleGAN's and StarGAN v2's
    practice; beyond the paper). A function of the step only, so resumes are exact."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, decay: float) -> None:
    """G_ema <- decay * G_ema + (1 - decay) * G, parameter by parameter (the
    networks have no buffers: InstanceNorm keeps no running statistics)."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.lerp_(p, 1.0 - decay)


def learning_rate(step: int, sagan_cfg: TrainSaganConfig) -> float:
    """lr at generator step ``step`` (0-based): constant (the paper), or with
    ``lr_decay_from`` < 1 falling linearly to 0 over the last part of ``sagan_cfg.steps``
    (as StarGAN does; beyond the paper). A function of the step only, so resumes are exact."""
    start = sagan_cfg.lr_decay_from * sagan_cfg.steps
    if sagan_cfg.lr_decay_from >= 1.0 or step < start:
        return sagan_cfg.lr
    return sagan_cfg.lr * max(0.0, (sagan_cfg.steps - step) / max(sagan_cfg.steps - start, 1.0))


# --------------------------------------------------------------------------- #
# Checkpoints
# --------------------------------------------------------------------------- #


def build(mcfg: SaganModelConfig, sagan_cfg: TrainSaganConfig, seed: int, device: torch.device):
    """(G, D, opt_G, opt_D), initialised from ``seed`` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G, D = SaGANGenerator(mcfg), SaGANDiscriminator(mcfg)
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    G = G.to(device, memory_format=memory_format)
    D = D.to(device, memory_format=memory_format)
    betas = (sagan_cfg.beta1, sagan_cfg.beta2)
    opt_G = torch.optim.Adam(G.parameters(), lr=sagan_cfg.lr, betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=sagan_cfg.lr, betas=betas)
    return G, D, opt_G, opt_D


def checkpoint_meta(mcfg: SaganModelConfig, attribute: str, step: int, seed: int, train_sagan_hash: str,
                    preset: str, kind: str = CHECKPOINT_KIND) -> dict[str, Any]:
    return {
        "kind": kind,
        "model_config": mcfg.to_dict(),
        "preset": preset,
        "attribute": attribute,
        "step": step,
        "seed": seed,
        # the train_sagan section's hash (augment.config.section_hash); the key keeps
        # its name so that checkpoints written before still load
        "config_hash": train_sagan_hash,
        "image_size": mcfg.image_size,
    }


def _check_model(meta: dict, mcfg: SaganModelConfig, path: Path) -> None:
    if meta.get("model_config") != mcfg.to_dict():
        raise ckpt.CheckpointError(
            f"{path}: checkpoint has model_config={meta.get('model_config')}, "
            f"but model_config={mcfg.to_dict()} is configured"
        )


# --------------------------------------------------------------------------- #
# Samples and metrics
# --------------------------------------------------------------------------- #


@torch.no_grad()
def sample_grid(G: SaGANGenerator, x: torch.Tensor) -> np.ndarray:
    """One row per image: input | edit to 1 | edit to 0 | mask; (H*N, W*4, 3) uint8."""
    mask = G.attention(x)
    ones, zeros = torch.ones(len(x), device=x.device), torch.zeros(len(x), device=x.device)
    to1 = G.blend(x, G.manipulate(x, ones), mask)
    to0 = G.blend(x, G.manipulate(x, zeros), mask)
    cols = [x, to1, to0, mask.expand(-1, 3, -1, -1) * 2 - 1]
    imgs = [to_uint8(c.float()) for c in cols]  # each (N,H,W,3)
    return tile(zip(*imgs))


# --------------------------------------------------------------------------- #
# The loop
# --------------------------------------------------------------------------- #


def fixed_batch(labels: np.ndarray, n: int) -> list[int]:
    """Indices of the sample-grid images: the first n/2 with and n - n/2 without the attribute."""
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    return [int(i) for i in pos[: n // 2]] + [int(i) for i in neg[: n - len(pos[: n // 2])]]


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
) -> Path:
    """Train (or resume) one attribute's SaGAN; returns the checkpoint folder of the last step.

    ``dataset`` yields (image (3,S,S) in [-1,1], label in {0,1}); S must be
    ``mcfg.image_size``. ``steps`` (default ``sagan_cfg.steps``) lets a caller stop
    early; a later call with more steps continues from the latest checkpoint.
    ``blobs[i]`` (B,4): where image i may be smudged for D_cls (``d_smudge_fraction``).
    """
    device = torch.device(device)
    steps = sagan_cfg.steps if steps is None else steps
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    metrics_path = out_dir / "metrics.jsonl"
    main = dist.is_main()
    out_dir.mkdir(parents=True, exist_ok=True)
    if dataset.size != mcfg.image_size:
        raise ValueError(f"dataset images are {dataset.size} px, the model wants {mcfg.image_size} px")

    G, D, opt_G, opt_D = build(mcfg, sagan_cfg, derive_seed(seed, "train_sagan", attribute, "init"), device)
    G_ema = copy.deepcopy(G).requires_grad_(False) if sagan_cfg.g_ema > 0 else None
    generators = [G] if G_ema is None else [G, G_ema]  # every copy whose mask follows the soft warm-up
    alpha_rng = torch.Generator(device="cpu").manual_seed(
        derive_seed(seed, "train_sagan", attribute, "alpha", dist.rank()))
    aug_rng = torch.Generator(device="cpu").manual_seed(
        derive_seed(seed, "train_sagan", attribute, "diffaugment", dist.rank()))
    step = 0
    last = ckpt.latest(ckpt_dir)
    if last is not None:
        states, meta = ckpt.load(last, device=str(device), expect={"kind": CHECKPOINT_KIND, "attribute": attribute})
        _check_model(meta, mcfg, last)
        G.load_state_dict(states["G"])
        D.load_state_dict(states["D"])
        opt_G.load_state_dict(states["opt_G"])
        opt_D.load_state_dict(states["opt_D"])
        if G_ema is not None:
            # a checkpoint written without g_ema starts the average at its G
            G_ema.load_state_dict(states["G_ema"] if "G_ema" in states else states["G"])
        alpha_rng.set_state(states["rng"][f"alpha_{dist.rank()}"]
                            if f"alpha_{dist.rank()}" in states["rng"] else states["rng"]["alpha_0"])
        if f"diffaugment_{dist.rank()}" in states["rng"]:
            aug_rng.set_state(states["rng"][f"diffaugment_{dist.rank()}"])
        step = int(meta["step"])
        log.info("[train_sagan] %s: resuming from %s (step %d)", attribute, last, step)
        if main:
            ckpt.drop_records(metrics_path, lambda r: r.get("step", 0) > step)

    def save(at: int) -> Path:
        # Every rank's interpolation RNG, so a resumed multi-process run is exact too.
        rngs = dist.all_gather_object(alpha_rng.get_state())
        aug_rngs = dist.all_gather_object(aug_rng.get_state())
        path = ckpt_dir / f"step_{at:07d}"
        if main:
            ckpt.save(
                path,
                {"G": dist.unwrap(G).state_dict(), "D": dist.unwrap(D).state_dict(),
                 **({"G_ema": G_ema.state_dict()} if G_ema is not None else {}),
                 "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
                 "rng": {**{f"alpha_{r}": s for r, s in enumerate(rngs)},
                         **{f"diffaugment_{r}": s for r, s in enumerate(aug_rngs)}}},
                checkpoint_meta(mcfg, attribute, at, seed, train_sagan_hash, sagan_cfg.preset),
            )
            ckpt.prune(ckpt_dir, KEEP_CHECKPOINTS)
        dist.barrier()
        return path

    if step >= steps:
        return ckpt_dir / f"step_{step:07d}"

    G_train, D_train = dist.wrap_ddp(G, device), dist.wrap_ddp(D, device)
    if sagan_cfg.compile:
        G_train = torch.compile(G_train)
    sampler = BalancedBatchSampler(dataset.labels, sagan_cfg.batch_size, derive_seed(seed, "train_sagan", attribute, "data"),
                                   start=step * sagan_cfg.n_critic, rank=dist.rank(), world_size=dist.world_size())
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=sagan_cfg.workers,
                        pin_memory=device.type == "cuda", persistent_workers=sagan_cfg.workers > 0)
    batches = iter(loader)
    fixed = fixed_batch(dataset.labels, sagan_cfg.sample_images)
    x_fixed = torch.stack([dataset[i][0] for i in fixed]).to(device)
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format

    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    t_log = time.perf_counter()
    steps_since_log = 0
    bar = tqdm(total=steps, initial=step, desc=f"train_sagan {attribute}", unit="step", disable=not main,
               dynamic_ncols=True)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    if sagan_cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    try:
        while step < steps:
            lr = learning_rate(step, sagan_cfg)
            for opt in (opt_G, opt_D):
                for group in opt.param_groups:
                    group["lr"] = lr
            for net in generators:  # the paper's soft mask until the hard threshold has something to threshold
                net.san.soft = step < sagan_cfg.mask_soft_steps
            step_batches = []
            for k in range(sagan_cfg.n_critic):
                x_real, c_org = next(batches)
                smudged = None
                if sagan_cfg.d_smudge_fraction > 0 and blobs is not None:
                    b = (step * sagan_cfg.n_critic + k) * dist.world_size() + dist.rank()  # this batch's number
                    # evenly spread over the batch, so both classes (positives come first) get some
                    sel = np.unique(np.round(np.linspace(0, len(x_real) - 1,
                                                         max(1, round(sagan_cfg.d_smudge_fraction * len(x_real))))))
                    sel = torch.from_numpy(sel.astype(np.int64))
                    idx = sampler.batch(b)
                    x_s = smudge_batch(x_real[sel], [blobs[idx[i]] for i in sel.tolist()], 1.0,
                                       derive_seed(seed, "train_sagan", attribute, "smudge", b),
                                       kind=sagan_cfg.d_smudge_kind)
                    smudged = (x_s.to(device, memory_format=memory_format), c_org[sel].to(device))
                x_real = x_real.to(device, non_blocking=True, memory_format=memory_format)
                c_org = c_org.to(device, non_blocking=True)
                alpha = torch.rand(len(x_real), generator=alpha_rng).to(device)
                step_batches.append((x_real, c_org, alpha, smudged))
            for parts in train_step(G_train, D_train, opt_G, opt_D, step_batches, sagan_cfg,
                                    rec_weight_scale(step, sagan_cfg), aug_rng):
                for name, v in parts.items():
                    # summed on the device; read back once per log line
                    sums[name] = sums[name] + v if name in sums else v
                    counts[name] = counts.get(name, 0) + 1
            if G_ema is not None:
                update_ema(G_ema, G, ema_decay(step, sagan_cfg.g_ema))
            step += 1
            steps_since_log += 1
            bar.update(1)
            if step % sagan_cfg.log_every == 0 or step == steps:
                elapsed = time.perf_counter() - t_log
                record = {"step": step, **{k: float(sums[k]) / counts[k] for k in sums},
                          "step_time_s": elapsed / steps_since_log,
                          "images_per_s": steps_since_log * sagan_cfg.n_critic * sagan_cfg.batch_size
                          * dist.world_size() / elapsed}
                if main:
                    with open(metrics_path, "a") as fh:
                        fh.write(json.dumps(record) + "\n")
                bar.set_postfix(W=f"{record['wasserstein']:.2f}", id=f"{record['g_rec_id']:.3f}",
                                mask=f"{record['mask_mean']:.2f}", acc=f"{record['d_acc_real']:.2f}")
                sums, counts, steps_since_log, t_log = {}, {}, 0, time.perf_counter()
            if samples_dir is not None and main and (step % sagan_cfg.sample_every == 0 or step == steps):
                save_png(sample_grid(G_ema if G_ema is not None else dist.unwrap(G), x_fixed),
                         Path(samples_dir) / f"step_{step:07d}.png")
            if step % sagan_cfg.checkpoint_every == 0 or step == steps:
                save(step)
    finally:
        bar.close()
        torch.use_deterministic_algorithms(deterministic_before)
    return ckpt_dir / f"step_{step:07d}"


# --------------------------------------------------------------------------- #
# The stage
# --------------------------------------------------------------------------- #


def run_stage(cfg: PipelineConfig, inputs: StageInputs, run_dir: Path) -> StageOutputs:
    """train_sagan: one generator per ``train_sagan.attributes`` on the aligned
    ``train`` split -> the ``generators`` manifest (root = run_dir)."""
    sagan_cfg = cfg.train_sagan
    aligned: mf.Manifest = inputs.get("sagan_aligned", inputs["aligned"])  # data.sagan, else data.train
    device = resolve_device(cfg.device)
    mcfg = stage_model_config(sagan_cfg)
    train_sagan_hash = section_hash(cfg, ["train_sagan"])
    rows = []
    for attribute in sagan_cfg.attributes:
        paths, labels = attribute_rows(aligned, attribute, ["train"])
        n_pos = int(labels.sum())
        log.info("[train_sagan] %s: %d training images with a known label (%d with, %d without)",
                 attribute, len(labels), n_pos, len(labels) - n_pos)
        dataset = ImageDataset(paths, mcfg.image_size, labels)
        blobs = None
        if sagan_cfg.d_smudge_fraction > 0:
            df = aligned.df[aligned.df["split"] == "train"].reset_index(drop=True)
            df = df[attribute_labels(df, attribute) >= 0]  # the rows of ``dataset``, in order
            blobs = [aligned_blobs(row, [attribute], mcfg.image_size) for _, row in df.iterrows()]
            log.info("[train_sagan] %s: D_cls sees %.0f%% of each batch smudged (%d of %d images have landmarks)",
                     attribute, 100 * sagan_cfg.d_smudge_fraction, sum(len(b) > 0 for b in blobs), len(blobs))
        out_dir = run_dir / attribute
        with torch_threads(sagan_cfg.threads):
            last = train(attribute, dataset, mcfg, sagan_cfg, out_dir, seed=cfg.seed, device=device,
                         train_sagan_hash=train_sagan_hash, samples_dir=run_dir / "samples" / attribute, blobs=blobs)
        gen_dir = out_dir / "generator"
        if dist.is_main():
            export_generator(last, gen_dir, alignment_of(aligned))
            rows.append({
                "attribute": attribute,
                "path": gen_dir.relative_to(run_dir).as_posix(),
                "generator_id": ckpt.weights_id(gen_dir),
                "step": sagan_cfg.steps,
                "preset": sagan_cfg.preset,
                "image_size": mcfg.image_size,
                "train_images": len(labels),
                "train_positive": n_pos,
            })
        dist.barrier()
    extra = {"align": alignment_of(aligned)}
    return {"generators": mf.Manifest("generators", mf.frame("generators", rows), run_dir, {"extra": extra})}

