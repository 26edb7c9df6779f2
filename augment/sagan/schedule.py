"""What changes with the SaGAN generator step: lr, the lambda1/lambda2 warm-up,
the soft-mask warm-up and the moving average of G.

Every value is a function of the generator step alone (0-based), so a run
resumed at step s continues with exactly the values an uninterrupted run
uses there. With the defaults each is the paper's setting: a constant lr,
lambda1 and lambda2 at full weight from the start, no averaged G.
"""

from __future__ import annotations

from typing import Sequence

import torch

from augment.config import TrainSaganConfig
from augment.sagan.model import SaGANGenerator


def rec_weight_scale(step: int, sagan_cfg: TrainSaganConfig) -> float:
    """Factor in (0, 1] on lambda1 and lambda2 at generator step ``step`` (0-based): a linear
    ramp from 1/rec_warmup to 1 over the first ``rec_warmup`` steps (beyond the
    paper: the edit can appear before reconstruction pins G to the identity); 1 without."""
    if sagan_cfg.rec_warmup <= 0:
        return 1.0
    return min(1.0, (step + 1) / sagan_cfg.rec_warmup)


def ema_decay(step: int, decay: float) -> float:
    """Weight in [0.1, decay] of the old average after generator step ``step`` (0-based): ``decay``,
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
    """lr (>= 0) at generator step ``step`` (0-based): constant (the paper), or with
    ``lr_decay_from`` < 1 falling linearly to 0 over the last part of ``sagan_cfg.steps``
    (as StarGAN does; beyond the paper). A function of the step only, so resumes are exact."""
    start = sagan_cfg.lr_decay_from * sagan_cfg.steps
    if sagan_cfg.lr_decay_from >= 1.0 or step < start:
        return sagan_cfg.lr
    return sagan_cfg.lr * max(0.0, (sagan_cfg.steps - step) / max(sagan_cfg.steps - start, 1.0))


def apply_schedule(step: int, sagan_cfg: TrainSaganConfig, optimizers: Sequence[torch.optim.Optimizer],
                   generators: Sequence[SaGANGenerator]) -> None:
    """Set generator step ``step``'s lr on both optimisers ((opt_G, opt_D); D's scaled
    to ``lr_d`` when set) and the paper's soft
    F_a mask on every generator (G, and the average G_ema, whose mask follows
    the same warm-up) while ``step < mask_soft_steps``: the soft mask until the
    hard threshold has something to threshold."""
    lr = learning_rate(step, sagan_cfg)
    d_scale = sagan_cfg.lr_d / sagan_cfg.lr if sagan_cfg.lr_d else 1.0  # D's own lr, on the same schedule
    for k, opt in enumerate(optimizers):
        for group in opt.param_groups:
            group["lr"] = lr * (d_scale if k == 1 else 1.0)
    for net in generators:
        net.san.soft = step < sagan_cfg.mask_soft_steps
