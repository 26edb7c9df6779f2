"""The state of one attribute's SaGAN run and its checkpoints.

``TrainState`` holds everything a run needs to continue exactly: the
generator G (F_m and F_a) and discriminator D (D_src and D_cls), their Adam
optimisers, the optional moving average G_ema (beyond the paper), the RNG of
the gradient penalty's interpolation weights alpha and the DiffAugment RNG
(one of each per rank), and the generator step. A checkpoint
``checkpoints/step_XXXXXXX/`` stores all of it (``save_checkpoint``), every
rank's RNGs included, and ``resume_latest`` restores it, so that a resumed run
gives the weights of an uninterrupted one.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from augment import checkpoint as ckpt
from augment import distributed as dist
from augment.config import TrainSaganConfig
from augment.runtime import derive_seed
from augment.sagan.generators import CHECKPOINT_KIND
from augment.sagan.model import SaganModelConfig, SaGANDiscriminator, SaGANGenerator

log = logging.getLogger("augment.train_sagan")

KEEP_CHECKPOINTS = 2


@dataclass
class TrainState:
    """One attribute's run at generator step ``step`` (the number of steps done)."""

    G: SaGANGenerator
    D: SaGANDiscriminator
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    G_ema: SaGANGenerator | None  # with g_ema > 0: the moving average of G's weights
    alpha_rng: torch.Generator  # alpha (N,) in [0,1] of the interpolates I~, this rank's
    aug_rng: torch.Generator  # the DiffAugment draws, this rank's
    step: int = 0

    @property
    def generators(self) -> list[SaGANGenerator]:
        """Every copy of G whose F_a mask follows the soft warm-up (G, and G_ema if kept)."""
        return [self.G] if self.G_ema is None else [self.G, self.G_ema]

    @property
    def sample_generator(self) -> SaGANGenerator:
        """The generator the sample grids (and the exported generator) show: G_ema if kept, else G."""
        return self.G_ema if self.G_ema is not None else dist.unwrap(self.G)


def build(mcfg: SaganModelConfig, sagan_cfg: TrainSaganConfig, seed: int, device: torch.device):
    """(G, D, opt_G, opt_D), initialised from ``seed`` without touching the global RNG;
    channels_last on CUDA; Adam(lr, (beta1, beta2)) for both networks, as in the paper
    (D at ``lr_d`` when it is set, beyond the paper)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G, D = SaGANGenerator(mcfg), SaGANDiscriminator(mcfg)
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    G = G.to(device, memory_format=memory_format)
    D = D.to(device, memory_format=memory_format)
    betas = (sagan_cfg.beta1, sagan_cfg.beta2)
    opt_G = torch.optim.Adam(G.parameters(), lr=sagan_cfg.lr, betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=sagan_cfg.lr_d or sagan_cfg.lr, betas=betas)
    return G, D, opt_G, opt_D


def new_state(attribute: str, mcfg: SaganModelConfig, sagan_cfg: TrainSaganConfig, seed: int,
              device: torch.device) -> TrainState:
    """A fresh run of ``attribute`` at step 0: networks from the derived ``init``
    seed, G_ema a copy of G (with ``g_ema`` > 0), the RNGs seeded per rank."""
    G, D, opt_G, opt_D = build(mcfg, sagan_cfg, derive_seed(seed, "train_sagan", attribute, "init"), device)
    G_ema = copy.deepcopy(G).requires_grad_(False) if sagan_cfg.g_ema > 0 else None
    alpha_rng = torch.Generator(device="cpu").manual_seed(
        derive_seed(seed, "train_sagan", attribute, "alpha", dist.rank()))
    aug_rng = torch.Generator(device="cpu").manual_seed(
        derive_seed(seed, "train_sagan", attribute, "diffaugment", dist.rank()))
    return TrainState(G, D, opt_G, opt_D, G_ema, alpha_rng, aug_rng)


def checkpoint_meta(mcfg: SaganModelConfig, attribute: str, step: int, seed: int, train_sagan_hash: str,
                    preset: str, kind: str = CHECKPOINT_KIND) -> dict[str, Any]:
    """The metadata of a checkpoint at ``step``: what the networks are and what trained them."""
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


def check_model(meta: dict, mcfg: SaganModelConfig, path: Path) -> None:
    """Refuse a checkpoint whose networks are not the configured ones."""
    if meta.get("model_config") != mcfg.to_dict():
        raise ckpt.CheckpointError(
            f"{path}: checkpoint has model_config={meta.get('model_config')}, "
            f"but model_config={mcfg.to_dict()} is configured"
        )


def resume_latest(state: TrainState, ckpt_dir: Path, attribute: str, mcfg: SaganModelConfig,
                  device: torch.device) -> Path | None:
    """Load the latest checkpoint under ``ckpt_dir`` into ``state`` (networks,
    optimisers, G_ema, this rank's RNGs, the step); returns its folder, or None
    (``state`` untouched) when there is none yet."""
    last = ckpt.latest(ckpt_dir)
    if last is None:
        return None
    states, meta = ckpt.load(last, device=str(device), expect={"kind": CHECKPOINT_KIND, "attribute": attribute})
    check_model(meta, mcfg, last)
    state.G.load_state_dict(states["G"])
    state.D.load_state_dict(states["D"])
    state.opt_G.load_state_dict(states["opt_G"])
    state.opt_D.load_state_dict(states["opt_D"])
    if state.G_ema is not None:
        # a checkpoint written without g_ema starts the average at its G
        state.G_ema.load_state_dict(states["G_ema"] if "G_ema" in states else states["G"])
    rngs = states["rng"]
    state.alpha_rng.set_state(rngs[f"alpha_{dist.rank()}"] if f"alpha_{dist.rank()}" in rngs else rngs["alpha_0"])
    if f"diffaugment_{dist.rank()}" in rngs:
        state.aug_rng.set_state(rngs[f"diffaugment_{dist.rank()}"])
    state.step = int(meta["step"])
    log.info("[train_sagan] %s: resuming from %s (step %d)", attribute, last, state.step)
    return last


def checkpoint_path(ckpt_dir: Path, step: int) -> Path:
    """The folder of the checkpoint at generator step ``step``."""
    return ckpt_dir / f"step_{step:07d}"


def save_checkpoint(state: TrainState, ckpt_dir: Path, meta: dict[str, Any]) -> Path:
    """Write ``state`` at its step (rank 0; every rank gathers its RNGs, so a
    resumed multi-process run is exact too), keep the last ``KEEP_CHECKPOINTS``;
    returns the checkpoint folder. Every rank must call it."""
    rngs = dist.all_gather_object(state.alpha_rng.get_state())
    aug_rngs = dist.all_gather_object(state.aug_rng.get_state())
    path = checkpoint_path(ckpt_dir, state.step)
    if dist.is_main():
        ckpt.save(
            path,
            {"G": dist.unwrap(state.G).state_dict(), "D": dist.unwrap(state.D).state_dict(),
             **({"G_ema": state.G_ema.state_dict()} if state.G_ema is not None else {}),
             "opt_G": state.opt_G.state_dict(), "opt_D": state.opt_D.state_dict(),
             "rng": {**{f"alpha_{r}": s for r, s in enumerate(rngs)},
                     **{f"diffaugment_{r}": s for r, s in enumerate(aug_rngs)}}},
            meta,
        )
        ckpt.prune(ckpt_dir, KEEP_CHECKPOINTS)
    dist.barrier()
    return path
