"""SaGAN losses (SAGAN.md "Losses"): free functions returning ``(loss, parts)``.

``parts`` maps names to detached 0-dim tensors for logging (no host sync per
step: the training loop converts them to floats once per ``log_every``
steps). Images are (N,3,H,W) in [-1, 1]; labels c are (N,) floats in {0, 1}.

- Critic (WGAN-GP): -E[D_src(I)] + E[D_src(I^)] + lambda_gp * E[(||grad D_src(I~)||_2 - 1)^2]
  + lambda_cls * BCE(D_cls(I), c_g) on REAL images with their true labels.
- Generator: -E[D_src(I^)] + lambda_cls * BCE(D_cls(I^), c)
  + lambda1 * |I - G(G(I, c), c_g)| + lambda2 * |I - G(I, c_g)|
  (+ lambda_mask * mean(b), a mask regulariser that is NOT in the paper; 0 there).

Beyond the paper, the adversarial objective (``objective``; "wgan-gp" is the
paper's): "hinge" (critic E[relu(1 - D(I))] + E[relu(1 + D(I^))], generator
-E[D(I^)]) or "nonsaturating" (critic E[softplus(-D(I))] + E[softplus(D(I^))],
generator E[softplus(-D(I^))]), neither with the gradient penalty, and an
optional R1 penalty r1_weight * E||grad_I D_src(I)||^2 on real images. With a
projection critic (``projection``) D_src scores an image with a value c: real
images with their own value, edits with the value asked of them, and real
images with the other value as extra negatives.

Beyond the paper (all off by default, i.e. in the paper's setting), for
masks that neither vanish nor stay soft (see docs/sagan_ablation.md):

- ``detach_mask_identity``: the identity term becomes |b.detach() * (I - F_m(I, c_g))|,
  the same value, but it trains F_m alone. In the paper's loss the cheapest
  way to make G(I, c_g) = I is b -> 0, so with a large lambda2 the mask shrinks
  wherever F_m is not yet an exact copy, and the edit with it.
- ``lambda_area`` * mean_i(relu(lo - a_i) + relu(a_i - hi)), a_i = mean(b_i): an
  area prior keeping each image's mask area in [lo, hi] = ``mask_area``.
- ``lambda_tv`` * total variation of b (mean |horizontal| + |vertical| neighbour
  difference): one compact region rather than speckle (GANimation's term).
- ``lambda_bin`` * mean(b (1 - b)): pushes b towards 0 or 1, so the edit is a
  replacement where b is on and the input where it is off, not a faint blend.
- ``lambda_region`` * mean(b (1 - R)), R (1,1,H,W) in {0,1} the attribute's
  template region on the aligned crop (``augment.judges.regions``): the mask's
  mass outside the place the attribute lives costs, inside it is free. The
  area cap only keeps the mask small, wherever it lies; this term says where.
- ``identity_through_mask`` (for ``mask_scale: hard``): the identity term as
  mean(b |I - F_m(I, c_g)|), its value for any b >= 0, so that it also pushes
  the straight-through mask down where the hard mask is 0.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


def _detached(parts: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach() for k, v in parts.items()}


def interpolate(x_real: Tensor, x_fake: Tensor, alpha: Tensor) -> Tensor:
    """I~ = alpha * I + (1 - alpha) * I^, alpha (N,) uniform in [0, 1]: points on the
    line between each real image and its edit, detached, with requires_grad set."""
    a = alpha.to(x_real.dtype).reshape(-1, 1, 1, 1)
    return (a * x_real.detach() + (1 - a) * x_fake.detach()).requires_grad_(True)


def gradient_penalty(critic_hat: Tensor, x_hat: Tensor) -> Tensor:
    """E[(||d critic_hat / d x_hat||_2 - 1)^2], the norm taken per sample.

    ``critic_hat`` (N,) is the critic of ``x_hat`` (N,...), which must require
    grad. The graph is kept (create_graph) so the penalty trains the critic.
    """
    (grad,) = torch.autograd.grad(
        outputs=critic_hat.float().sum(), inputs=x_hat, create_graph=True
    )
    norm = grad.float().flatten(1).norm(2, dim=1)
    return ((norm - 1.0) ** 2).mean()


OBJECTIVES = ("wgan-gp", "hinge", "nonsaturating")


def critic_loss(objective: str, critic_real: Tensor, critic_fake: Tensor) -> Tensor:
    """The critic's adversarial term, real (N,) against fake (M,) critic values."""
    if objective == "wgan-gp":
        return critic_fake.mean() - critic_real.mean()
    if objective == "hinge":
        return F.relu(1 - critic_real).mean() + F.relu(1 + critic_fake).mean()
    if objective == "nonsaturating":
        return F.softplus(-critic_real).mean() + F.softplus(critic_fake).mean()
    raise ValueError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")


def generator_adversarial(objective: str, critic_fake: Tensor) -> Tensor:
    """The generator's adversarial term from the critic of its edits (N,)."""
    if objective == "nonsaturating":
        return F.softplus(-critic_fake).mean()
    if objective in OBJECTIVES:
        return -critic_fake.mean()
    raise ValueError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")


def r1_penalty(D: Callable[..., tuple[Tensor, Tensor]], x_real: Tensor, c_org: Tensor) -> tuple[Tensor, Tensor]:
    """(E_i ||grad_I D_src(I_i)||^2 over real images, their critic (N,)): one forward
    of the real images with gradients to the pixels, kept (create_graph) so the
    penalty trains D."""
    x = x_real.detach().requires_grad_(True)
    critic, logit = D(x, c_org)
    (grad,) = torch.autograd.grad(outputs=critic.float().sum(), inputs=x, create_graph=True)
    return grad.float().flatten(1).pow(2).sum(dim=1).mean(), critic, logit


def attribute_loss(logit: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy of D_cls logits (N,) against labels (N,) in {0, 1}."""
    return F.binary_cross_entropy_with_logits(logit.float(), target.float())


def d_loss(
    D: Callable[[Tensor], tuple[Tensor, Tensor]],
    x_real: Tensor,
    x_fake: Tensor,
    c_org: Tensor,
    alpha: Tensor,
    *,
    lambda_gp: float = 10.0,
    lambda_cls: float = 1.0,
    x_smudge: Tensor | None = None,
    c_smudge: Tensor | None = None,
    objective: str = "wgan-gp",
    r1_weight: float = 0.0,
    projection: bool = False,
) -> tuple[Tensor, dict[str, float]]:
    """The critic's loss. ``x_fake`` are edits of ``x_real`` (detached here),
    ``c_org`` the true labels of ``x_real``, ``alpha`` (N,) the interpolation weights.

    ``x_smudge`` (M,3,H,W) (beyond the paper; None there): real images with dark
    patches over the attribute's region (``augment.sagan.smudge``), which D_cls
    must give their true labels ``c_smudge`` (M,); so a generator cannot satisfy D_cls with a
    smudge, and has to paint the attribute. Only D_cls learns from them.

    Real and fake go through D as one batch (D has no normalisation, so images
    do not interact); the interpolates go separately so the penalty's double
    backward runs on them only.
    """
    n = x_real.shape[0]
    if objective == "wgan-gp" and not projection and not r1_weight:
        # the paper's critic, exactly as before the options beyond it
        parts_in = [x_real, x_fake.detach()] + ([x_smudge] if x_smudge is not None else [])
        critic, logit = D(torch.cat(parts_in))
        critic_real, critic_fake = critic[:n].float(), critic[n:2 * n].float()
        logit_real, logit_smudge = logit[:n], logit[2 * n:]
    else:
        c_trg = 1 - c_org
        extra_fake = [x_real] if projection else []  # real images with the other value: negatives too
        extra_c = [c_trg] if projection else []
        fakes = [x_fake.detach(), *extra_fake] + ([x_smudge] if x_smudge is not None else [])
        labels = [c_trg, *extra_c] + ([c_smudge] if x_smudge is not None else [])
        args = (torch.cat(labels),) if projection else ()
        critic, logit = D(torch.cat(fakes), *args)
        m = n * (1 + len(extra_fake))
        critic_fake, logit_smudge = critic[:m].float(), logit[m:]
        if r1_weight:
            r1, critic_real, logit_real = r1_penalty(D if projection else (lambda x, _c: D(x)), x_real, c_org)
            critic_real = critic_real.float()
        else:
            critic_real, logit_real = D(x_real, c_org) if projection else D(x_real)
            critic_real = critic_real.float()
    if objective == "wgan-gp":
        x_hat = interpolate(x_real, x_fake, alpha)
        critic_hat, _ = D(x_hat, c_org) if projection else D(x_hat)
        gp = gradient_penalty(critic_hat, x_hat)
    else:
        gp = torch.zeros((), device=x_real.device)
    d_adv = critic_loss(objective, critic_real, critic_fake)
    d_cls = attribute_loss(logit_real, c_org)
    loss = d_adv + lambda_gp * gp + lambda_cls * d_cls
    extra: dict[str, Tensor] = {}
    if r1_weight:
        loss = loss + r1_weight * r1
        extra["d_r1"] = r1
    if x_smudge is not None:
        d_cls_smudge = attribute_loss(logit_smudge, c_smudge)
        loss = loss + lambda_cls * d_cls_smudge
        extra["d_cls_smudge"] = d_cls_smudge
    acc = ((logit_real.float() > 0).float() == c_org.float()).float().mean()
    parts = {
        **extra,
        "d_loss": loss,
        "d_real": critic_real.mean(),
        "d_fake": critic_fake.mean(),
        "wasserstein": critic_real.mean() - critic_fake.mean(),
        "d_gp": gp,
        "d_cls": d_cls,
        "d_acc_real": acc,
    }
    return loss, _detached(parts)


def g_forward(G: nn.Module, x_real: Tensor, c_org: Tensor, c_trg: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The edit G(I, c) and the identity edit G(I, c_g) in one generator call.

    -> (x_both (2N,3,H,W): edits to ``c_trg`` then to ``c_org``, mask_both
    (2N,1,H,W), x_a_both = F_m outputs (2N,3,H,W)). The mask does not depend on
    c, so both halves share one SAN pass (``SaGANGenerator.forward`` with a
    pair of labels): the same values and gradients as running G on the
    doubled batch, with a quarter fewer generator FLOPs.
    """
    return G(x_real, (c_trg, c_org), with_manipulation=True, c_src=c_org)


def g_loss(
    G: nn.Module,
    D: Callable[[Tensor], tuple[Tensor, Tensor]],
    x_real: Tensor,
    c_org: Tensor,
    c_trg: Tensor,
    *,
    lambda_cls: float = 1.0,
    lambda1: float = 20.0,
    lambda2: float = 100.0,
    lambda_mask: float = 0.0,
    detach_mask_identity: bool = False,
    lambda_area: float = 0.0,
    mask_area: tuple[float, float] = (0.0, 1.0),
    lambda_tv: float = 0.0,
    lambda_bin: float = 0.0,
    lambda_region: float = 0.0,
    region: Tensor | None = None,
    identity_through_mask: bool = False,
    forward: tuple[Tensor, Tensor, Tensor] | None = None,
    objective: str = "wgan-gp",
    projection: bool = False,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The generator's loss (``G(x, c) -> (x_edit, mask)``); the terms beyond the
    paper are in the module docstring. ``region`` (1,1,H,W) in {0,1}: the
    attribute's template region at the mask's size, needed with ``lambda_region``.

    ``forward``: ``g_forward(G, x_real, c_org, c_trg)`` when the caller has
    already run it (the training step reuses it for the last critic update's
    fakes); computed here otherwise. The dual reconstruction G(G(I, c), c_g)
    needs the edit first.
    """
    n = x_real.shape[0]
    x_both, mask_both, x_a_both = forward if forward is not None else g_forward(G, x_real, c_org, c_trg)
    if detach_mask_identity:
        # I - G(I, c_g) = b * (I - F_m(I, c_g)); with b detached only F_m learns from it
        rec_id = (mask_both[n:].detach() * (x_real - x_a_both[n:])).abs().float().mean()
    elif identity_through_mask:
        # the same value, b * |I - F_m(I, c_g)| (b >= 0), written linear in b: with a
        # hard mask's straight-through gradient, |b (I - F_m)| has none where b is 0,
        # so nothing would hold back the region's growth; this form does
        rec_id = (mask_both[n:] * (x_real - x_a_both[n:]).abs()).float().mean()
    else:
        rec_id = (x_real - x_both[n:]).abs().float().mean()
    x_fake = x_both[:n]
    mask = mask_both[:n]
    x_rec, _ = G(x_fake, c_org, c_src=c_trg)
    critic_fake, logit_fake = D(x_fake, c_trg) if projection else D(x_fake)
    g_adv = generator_adversarial(objective, critic_fake.float())
    g_cls = attribute_loss(logit_fake, c_trg)
    rec_dual = (x_real - x_rec).abs().float().mean()
    m = mask.float()
    mask_mean = m.mean()
    loss = g_adv + lambda_cls * g_cls + lambda1 * rec_dual + lambda2 * rec_id
    if lambda_mask:
        loss = loss + lambda_mask * mask_mean
    extra: dict[str, Tensor] = {}
    if lambda_area:
        area = m.mean(dim=(1, 2, 3))
        extra["g_mask_area"] = (F.relu(mask_area[0] - area) + F.relu(area - mask_area[1])).mean()
        loss = loss + lambda_area * extra["g_mask_area"]
    if lambda_tv:
        extra["g_mask_tv"] = ((m[..., 1:, :] - m[..., :-1, :]).abs().mean()
                              + (m[..., :, 1:] - m[..., :, :-1]).abs().mean())
        loss = loss + lambda_tv * extra["g_mask_tv"]
    if lambda_bin:
        extra["g_mask_bin"] = (m * (1 - m)).mean()
        loss = loss + lambda_bin * extra["g_mask_bin"]
    if lambda_region:
        if region is None:
            raise ValueError("lambda_region is set: g_loss needs the attribute's region (1,1,H,W)")
        extra["g_mask_outside"] = (m * (1 - region.to(m.dtype))).mean()
        loss = loss + lambda_region * extra["g_mask_outside"]
    acc = ((logit_fake.float() > 0).float() == c_trg.float()).float().mean()
    parts = {
        "g_loss": loss,
        "g_adv": g_adv,
        "g_cls": g_cls,
        "g_rec_dual": rec_dual,
        "g_rec_id": rec_id,
        "mask_mean": mask_mean,
        "g_acc_fake": acc,
        **extra,
    }
    return loss, _detached(parts)
