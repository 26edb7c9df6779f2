"""One SaGAN training step: the critic (D) updates and the generator (G) update.

Notation of the paper (Zhang et al., ECCV 2018): the generator
G(I, c) = F_m(I, c) * b + I * (1 - b) blends the attribute manipulation
network F_m's edit into the input through the spatial attention network F_a's
mask b = F_a(I); the discriminator D has a critic head D_src (real or edited)
and an attribute head D_cls. Images I are (N,3,H,W) in [-1, 1]; an image's
true label c_g (``c_org``) is (N,) floats in {0, 1} and its target is the
flipped label c = 1 - c_g. The loss terms are those of
``augment.sagan.losses`` (lambda_gp, lambda_cls, lambda1 on the dual
reconstruction, lambda2 on the identity term).

Every function here returns its loss terms as detached 0-dim tensors, so the
loop reads them back once per log line, not once per step.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from augment import distributed as dist
from augment.config import TrainSaganConfig
from augment.sagan import diffaug
from augment.sagan.losses import d_loss, g_forward, g_loss

# (x_real (N,3,H,W) in [-1,1], c_org (N,) in {0,1}, alpha (N,) in [0,1],
#  smudged: None or (images (M,3,H,W) in [-1,1], labels (M,) in {0,1}))
CriticBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]


def autocast(device: torch.device):
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


def _projects(D) -> bool:
    """Whether D (bare or DDP-wrapped) is a projection critic (its model config says)."""
    return bool(dist.unwrap(D).cfg.d_projection)


def d_step(G, D, opt_D: torch.optim.Optimizer, x_real: torch.Tensor, c_org: torch.Tensor,
           alpha: torch.Tensor, sagan_cfg: TrainSaganConfig,
           smudged: tuple[torch.Tensor, torch.Tensor] | None = None,
           x_fake: torch.Tensor | None = None,
           aug_rng: torch.Generator | None = None, r1_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """One critic update: WGAN-GP on D_src (real I against edits I^ = G(I, c),
    gradient penalty lambda_gp at I~ = alpha I + (1 - alpha) I^) plus
    lambda_cls * BCE(D_cls(I), c_g) on the real images.

    ``x_real`` (N,3,H,W) in [-1,1], ``c_org`` (N,) in {0,1}, ``alpha`` (N,) in
    [0,1]; ``smudged`` optional (images (M,3,H,W), labels (M,)): real images
    smudged for D_cls (``d_smudge_fraction``). ``x_fake``: the edits
    G(x_real, 1 - c_org) if the caller has them (``train_step``), else ``G``
    makes them without gradients. ``D`` may be DDP-wrapped; with
    ``sagan_cfg.diffaugment`` it sees every image through the augmentation, drawn
    from ``aug_rng``. Returns detached 0-dim loss terms."""
    device = x_real.device
    if x_fake is None:
        with torch.no_grad(), autocast(device):
            x_fake, _ = dist.unwrap(G)(x_real, 1 - c_org, c_src=c_org)
    with autocast(device):
        loss, parts = d_loss(_seen_by(D, sagan_cfg, aug_rng), x_real, x_fake.detach().to(x_real.dtype), c_org, alpha,
                             lambda_gp=sagan_cfg.lambda_gp, lambda_cls=sagan_cfg.lambda_cls,
                             x_smudge=None if smudged is None else smudged[0],
                             c_smudge=None if smudged is None else smudged[1],
                             objective=sagan_cfg.objective, r1_weight=r1_weight, projection=_projects(D))
    opt_D.zero_grad(set_to_none=True)
    loss.backward()
    opt_D.step()
    return parts


def g_step(G, D, opt_G: torch.optim.Optimizer, x_real: torch.Tensor, c_org: torch.Tensor,
           sagan_cfg: TrainSaganConfig, rec_scale: float = 1.0,
           forward: tuple[torch.Tensor, ...] | None = None,
           aug_rng: torch.Generator | None = None,
           region: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """One generator update towards the flipped labels c = 1 - c_g: the critic
    -E[D_src(G(I, c))], lambda_cls * BCE(D_cls(G(I, c)), c), lambda1 * the dual
    reconstruction |I - G(G(I, c), c_g)| and lambda2 * the identity term
    |I - G(I, c_g)|, plus the mask terms beyond the paper (lambda_mask,
    lambda_area, lambda_tv, lambda_bin, lambda_region; 0 there).

    ``x_real`` (N,3,H,W) in [-1,1], ``c_org`` (N,) in {0,1}. ``G`` may be
    DDP-wrapped; ``D`` is used bare and frozen (its gradients are not needed).
    ``rec_scale`` multiplies lambda1 and lambda2 (the warm-up,
    ``rec_weight_scale``). ``forward``: ``g_forward(G, x_real, c_org, 1 - c_org)``
    if already run. ``aug_rng``: as in ``d_step``. ``region`` (1,1,H,W) in {0,1}:
    the attribute's template region, for ``lambda_region``. Returns detached 0-dim loss terms."""
    D = dist.unwrap(D)
    D.requires_grad_(False)
    try:
        with autocast(x_real.device):
            loss, parts = g_loss(G, _seen_by(D, sagan_cfg, aug_rng), x_real, c_org, 1 - c_org, lambda_cls=sagan_cfg.lambda_cls,
                                 lambda1=sagan_cfg.lambda1 * rec_scale, lambda2=sagan_cfg.lambda2 * rec_scale,
                                 lambda_mask=sagan_cfg.lambda_mask, detach_mask_identity=sagan_cfg.detach_mask_identity,
                                 lambda_area=sagan_cfg.lambda_area, mask_area=(sagan_cfg.mask_area_min, sagan_cfg.mask_area_max),
                                 lambda_tv=sagan_cfg.lambda_tv, lambda_bin=sagan_cfg.lambda_bin,
                                 lambda_region=sagan_cfg.lambda_region, region=region,
                                 identity_through_mask=sagan_cfg.mask_scale == "hard", forward=forward,
                                 objective=sagan_cfg.objective, projection=_projects(D))
        opt_G.zero_grad(set_to_none=True)
        loss.backward()
        opt_G.step()
    finally:
        D.requires_grad_(True)
    return parts


def r1_weight(critic_step: int, sagan_cfg: TrainSaganConfig) -> float:
    """The R1 weight of critic update ``critic_step`` (0-based over the run): r1_gamma / 2,
    times r1_every on the updates it is applied to (every r1_every-th, lazily), else 0."""
    if not sagan_cfg.r1_gamma or critic_step % sagan_cfg.r1_every:
        return 0.0
    return sagan_cfg.r1_gamma / 2 * sagan_cfg.r1_every


def train_step(G, D, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer,
               batches: list[CriticBatch],
               sagan_cfg: TrainSaganConfig, rec_scale: float = 1.0,
               aug_rng: torch.Generator | None = None, first_critic_step: int = 0,
               region: torch.Tensor | None = None) -> list[dict[str, torch.Tensor]]:
    """One generator step: a critic update per batch of ``batches``
    ((x_real, c_org, alpha, smudged), as ``d_step`` takes them; ``n_critic`` of
    them in training), then the generator update on the last batch. Returns
    every update's loss terms, the critic's first and the generator's last.
    ``first_critic_step``: the run's count of critic updates before this step
    (it places the lazy R1 penalty). ``region``: as in ``g_step``.

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
            with autocast(x_real.device):
                forward = g_forward(G, x_real, c_org, 1 - c_org)
            x_fake = forward[0][: len(x_real)]
        parts.append(d_step(G, D, opt_D, x_real, c_org, alpha, sagan_cfg, smudged, x_fake=x_fake, aug_rng=aug_rng,
                            r1_weight=r1_weight(first_critic_step + k, sagan_cfg)))
    parts.append(g_step(G, D, opt_G, x_real, c_org, sagan_cfg, rec_scale, forward=forward, aug_rng=aug_rng,
                        region=region))
    return parts
