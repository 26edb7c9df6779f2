"""The SaGAN training data: the balanced loader, each step's critic batches
and the fixed images of the sample grids.

The data order is a pure function of (seed, batch number): batch b holds half
images with the attribute and half without (``BalancedBatchSampler``); under
torchrun rank r of W draws the global batches r, W + r, ... Generator step s
uses the ``n_critic`` batches s * n_critic, ..., s * n_critic + n_critic - 1,
so a run resumed at step s reads the batches an uninterrupted run reads.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from augment import distributed as dist
from augment.config import TrainSaganConfig
from augment.runtime import derive_seed
from augment.sagan.data import BalancedBatchSampler, ImageDataset
from augment.sagan.smudge import smudge_batch
from augment.sagan.steps import CriticBatch


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on CUDA (the networks run that way there), contiguous on CPU."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def make_loader(dataset: ImageDataset, sagan_cfg: TrainSaganConfig, seed: int, attribute: str, step: int,
                device: torch.device) -> tuple[BalancedBatchSampler, DataLoader]:
    """(sampler, loader) of this rank's batches from generator step ``step`` on.
    The loader yields (x (B,3,S,S) in [-1,1], c_g (B,) in {0,1}), positives first."""
    sampler = BalancedBatchSampler(dataset.labels, sagan_cfg.batch_size, derive_seed(seed, "train_sagan", attribute, "data"),
                                   start=step * sagan_cfg.n_critic, rank=dist.rank(), world_size=dist.world_size())
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=sagan_cfg.workers,
                        pin_memory=device.type == "cuda", persistent_workers=sagan_cfg.workers > 0)
    return sampler, loader


def smudged_share(x_real: torch.Tensor, c_org: torch.Tensor, b: int, sampler: BalancedBatchSampler,
                  blobs: list[np.ndarray], sagan_cfg: TrainSaganConfig, seed: int, attribute: str,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``d_smudge_fraction`` of global batch ``b`` that D_cls sees smudged
    (beyond the paper): (images (M,3,S,S) in [-1,1] on ``device``, their true
    labels c_g (M,)). ``x_real`` (B,3,S,S) and ``c_org`` (B,) are the batch on
    the CPU; ``blobs[i]`` (K,4) where dataset image i may be smudged."""
    # evenly spread over the batch, so both classes (positives come first) get some
    sel = np.unique(np.round(np.linspace(0, len(x_real) - 1,
                                         max(1, round(sagan_cfg.d_smudge_fraction * len(x_real))))))
    sel = torch.from_numpy(sel.astype(np.int64))
    idx = sampler.batch(b)
    x_s = smudge_batch(x_real[sel], [blobs[idx[i]] for i in sel.tolist()], 1.0,
                       derive_seed(seed, "train_sagan", attribute, "smudge", b),
                       kind=sagan_cfg.d_smudge_kind)
    return x_s.to(device, memory_format=memory_format(device)), c_org[sel].to(device)


def critic_batches(batches: Iterator, sampler: BalancedBatchSampler, step: int, sagan_cfg: TrainSaganConfig,
                   alpha_rng: torch.Generator, device: torch.device, *, seed: int, attribute: str,
                   blobs: list[np.ndarray] | None = None) -> list[CriticBatch]:
    """The ``n_critic`` batches of generator step ``step``, as ``train_step`` takes
    them: (x_real (B,3,S,S) in [-1,1], c_org (B,) in {0,1}, alpha (B,) uniform in
    [0,1] from ``alpha_rng``, smudged or None) on ``device``."""
    out = []
    fmt = memory_format(device)
    for k in range(sagan_cfg.n_critic):
        x_real, c_org = next(batches)
        smudged = None
        if sagan_cfg.d_smudge_fraction > 0 and blobs is not None:
            b = (step * sagan_cfg.n_critic + k) * dist.world_size() + dist.rank()  # this batch's number
            smudged = smudged_share(x_real, c_org, b, sampler, blobs, sagan_cfg, seed, attribute, device)
        x_real = x_real.to(device, non_blocking=True, memory_format=fmt)
        c_org = c_org.to(device, non_blocking=True)
        alpha = torch.rand(len(x_real), generator=alpha_rng).to(device)
        out.append((x_real, c_org, alpha, smudged))
    return out


def fixed_batch(labels: np.ndarray, n: int) -> list[int]:
    """Indices of the sample-grid images: the first n/2 with and n - n/2 without the attribute."""
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    return [int(i) for i in pos[: n // 2]] + [int(i) for i in neg[: n - len(pos[: n // 2])]]


def fixed_images(dataset: ImageDataset, sagan_cfg: TrainSaganConfig, device: torch.device) -> torch.Tensor:
    """The ``sample_images`` images of every sample grid, (n,3,S,S) in [-1,1] on ``device``."""
    return torch.stack([dataset[i][0] for i in fixed_batch(dataset.labels, sagan_cfg.sample_images)]).to(device)
