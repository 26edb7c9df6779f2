"""Differentiable augmentation of the discriminator's inputs (beyond the paper).

DiffAugment (Zhao et al., NeurIPS 2020): with few training images the
discriminator memorises them, and its attribute head D_cls then rests on
brittle cues that a generator satisfies without painting the attribute (on
SynthFaces D_cls took 90% of the "-glasses" edits for glasses-free while an
independent judge took 42%). Every image D sees, real, edited or interpolated,
in the critic's and in the generator's loss, goes through the same kind of
random, differentiable transform, so D cannot memorise pixels and the
generator's gradient passes through the transform.

Images are (N,3,H,W) in [-1, 1]; each image draws its own parameters from the
given ``torch.Generator`` (CPU), so a run is reproducible.

Policies (comma-separated ``train_sagan.diffaugment``):
- ``color``: brightness shift in [-0.5, 0.5), saturation scale in [0, 2),
  contrast scale in [0.5, 1.5);
- ``translation``: shift by up to 1/8 of the image size, zero-filled;
- ``cutout``: one zeroed square of 1/4 of the side, anywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # torch is imported where it is used: config validation imports this module without it
    import torch
    from torch import Tensor

POLICIES = ("color", "translation", "cutout")


def _rand(n: int, gen: torch.Generator, like: Tensor) -> Tensor:
    import torch

    return torch.rand(n, 1, 1, 1, generator=gen).to(like.device, like.dtype)


def color(x: Tensor, gen: torch.Generator) -> Tensor:
    n = x.shape[0]
    x = x + (_rand(n, gen, x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(n, gen, x) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(n, gen, x) + 0.5) + mean


def _shifts(n: int, limit: int, gen: torch.Generator) -> Tensor:
    import torch

    return torch.randint(-limit, limit + 1, (n, 1, 1), generator=gen)


def translation(x: Tensor, gen: torch.Generator, ratio: float = 0.125) -> Tensor:
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    dy, dx = _shifts(n, int(h * ratio + 0.5), gen), _shifts(n, int(w * ratio + 0.5), gen)
    b, i, j = torch.meshgrid(torch.arange(n), torch.arange(h), torch.arange(w), indexing="ij")
    # index into a 1-pixel zero border: out-of-range source pixels read a zero
    i = (i + dy + 1).clamp(0, h + 1).to(x.device)
    j = (j + dx + 1).clamp(0, w + 1).to(x.device)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[b.to(x.device), i, j].permute(0, 3, 1, 2).contiguous(memory_format=torch.contiguous_format)


def cutout(x: Tensor, gen: torch.Generator, ratio: float = 0.25) -> Tensor:
    import torch

    n, _, h, w = x.shape
    ch, cw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=gen)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen)
    i = torch.arange(h).reshape(1, h, 1)
    j = torch.arange(w).reshape(1, 1, w)
    inside = ((i - cy).abs() <= ch // 2) & ((j - cx).abs() <= cw // 2)
    return x * (~inside).unsqueeze(1).to(x.device, x.dtype)


_FUNCTIONS: dict[str, Callable] = {
    "color": color, "translation": translation, "cutout": cutout}


def parse(policy: str) -> tuple[str, ...]:
    """``"color,translation"`` -> ("color", "translation"); "" -> (); unknown names raise ValueError."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in names if p not in _FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown diffaugment polic{'ies' if len(unknown) > 1 else 'y'} {unknown}; "
                         f"known: {', '.join(POLICIES)}")
    return names


def augment(x: Tensor, policies: tuple[str, ...], gen: torch.Generator) -> Tensor:
    """``x`` (N,3,H,W) through each policy in turn (identity for no policy)."""
    for name in policies:
        x = _FUNCTIONS[name](x, gen)
    return x


def augmented(D: Callable[..., tuple[Tensor, Tensor]], policies: tuple[str, ...],
              gen: torch.Generator) -> Callable[..., tuple[Tensor, Tensor]]:
    """D seen through the augmentation: (x, *labels) -> D(augment(x), *labels); D itself
    when no policy is set (a projection critic's labels pass through untouched)."""
    if not policies:
        return D
    return lambda x, *labels: D(augment(x, policies, gen), *labels)
