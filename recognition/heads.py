"""Classification heads used only for training: embeddings + labels -> logits.

``head(embeddings (N,E), labels (N,) int64) -> logits (N,C)``; the loss is plain
cross-entropy on those logits. At test time the head is dropped and embeddings
are compared by cosine similarity.

- ``arcface`` (Deng et al. 2019): s * cos(theta_y + m) for the true class,
  s = 64, m = 0.5; where theta_y + m would pass pi the logit continues as
  cos(theta) - m sin(m) (insightface's rule) so it stays monotonic.
- ``cosface`` (Wang et al. 2018): s * (cos(theta_y) - m), s = 64, m = 0.35.
- ``softmax``: a plain linear classifier (with bias) on the raw embedding.
"""

from __future__ import annotations

import difflib
import math

import torch
import torch.nn.functional as F
from torch import nn


class MarginHead(nn.Module):
    """Shared part of the margin heads: class centres on the unit sphere."""

    def __init__(self, embedding_size: int, num_classes: int, s: float, m: float):
        super().__init__()
        self.s, self.m = float(s), float(m)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.weight, std=0.01)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """cos(theta) between each embedding and each class centre: ``(N, C)`` in [-1, 1]."""
        return F.linear(F.normalize(embeddings), F.normalize(self.weight)).clamp(-1.0, 1.0)

    def margin(self, cos_y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(embeddings)
        idx = labels.view(-1, 1)
        cos_y = cos.gather(1, idx)
        logits = cos.scatter(1, idx, self.margin(cos_y))
        return self.s * logits


class ArcFace(MarginHead):
    """Additive angular margin: the true class's logit is s * cos(theta + m)."""

    def __init__(self, embedding_size: int, num_classes: int, s: float = 64.0, m: float = 0.5):
        super().__init__(embedding_size, num_classes, s, m)
        self.threshold = math.cos(math.pi - m)
        self.fallback = math.sin(math.pi - m) * m

    def margin(self, cos_y: torch.Tensor) -> torch.Tensor:
        sin_y = torch.sqrt((1.0 - cos_y * cos_y).clamp_min(1e-9))
        phi = cos_y * math.cos(self.m) - sin_y * math.sin(self.m)
        return torch.where(cos_y > self.threshold, phi, cos_y - self.fallback)


class CosFace(MarginHead):
    """Additive cosine margin: the true class's logit is s * (cos(theta) - m)."""

    def __init__(self, embedding_size: int, num_classes: int, s: float = 64.0, m: float = 0.35):
        super().__init__(embedding_size, num_classes, s, m)

    def margin(self, cos_y: torch.Tensor) -> torch.Tensor:
        return cos_y - self.m


class Softmax(nn.Module):
    """Plain softmax classifier: a linear layer on the raw embedding."""

    def __init__(self, embedding_size: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(embedding_size, num_classes)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(embeddings)


HEADS = {"arcface": ArcFace, "cosface": CosFace, "softmax": Softmax}


def build_head(name: str, embedding_size: int, num_classes: int, **kwargs) -> nn.Module:
    """The head named ``name`` (kwargs: ``s``, ``m`` for the margin heads)."""
    if name not in HEADS:
        close = difflib.get_close_matches(name, HEADS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"unknown head '{name}'{hint} (known: {', '.join(HEADS)})")
    if num_classes < 2:
        raise ValueError(f"a classification head needs at least 2 identities, got {num_classes}")
    return HEADS[name](embedding_size, num_classes, **kwargs)
