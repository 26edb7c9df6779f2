"""The attribute judge: the model that scores edits (not SaGAN's discriminator), and its loaders.

As in AttGAN/STGAN, edits are scored by a separate CNN trained on real
labelled images, so a generator cannot "succeed" by fooling its own critic.
One multi-label model covers the configured attributes:
x (N,3,S,S) in [-1, 1] -> logits (N,K); ``probabilities`` gives sigmoid(logits).

Architecture: a 3x3 conv, then four stride-2 3x3 convs (width, 2w, 4w, 8w, 8w
channels), each with BatchNorm and ReLU, global average pooling, dropout and a
linear layer to K logits. The ``train_classifier`` stage
(``augment/sagan/classifier.py``) trains it; the edit, eval_sagan and evaluate
stages load it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from augment import checkpoint as ckpt
from augment import manifest as mf
from augment.data.errors import DatasetError

KIND = "attribute_classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    attributes: tuple[str, ...]
    image_size: int = 64
    width: int = 32

    def to_dict(self) -> dict:
        return {"attributes": list(self.attributes), "image_size": self.image_size, "width": self.width}

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifierConfig":
        return cls(tuple(d["attributes"]), int(d["image_size"]), int(d["width"]))


def _block(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class AttributeClassifier(nn.Module):
    """x (N,3,S,S) in [-1,1] -> logits (N,K), K = len(cfg.attributes)."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        chans = [w, 2 * w, 4 * w, 8 * w, 8 * w]
        layers = _block(3, chans[0], 1)
        for cin, cout in zip(chans, chans[1:]):
            layers += _block(cin, cout, 2)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(chans[-1], len(cfg.attributes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1))

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) in [-1,1], any H = W -> (N,K) P(attribute present). Call in eval mode."""
        s = self.cfg.image_size
        if x.shape[-1] != s or x.shape[-2] != s:
            x = F.interpolate(x.float(), size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        return torch.sigmoid(self(x.float()))

    def attribute_probability(self, x: torch.Tensor, attribute: str) -> torch.Tensor:
        """(N,3,H,W) in [-1,1] -> (N,) P(``attribute`` present)."""
        if attribute not in self.cfg.attributes:
            raise ValueError(f"the classifier knows {list(self.cfg.attributes)}, not {attribute!r}")
        return self.probabilities(x)[:, self.cfg.attributes.index(attribute)]


def load_classifier(path: Path | str, device: str | torch.device = "cpu") -> tuple[AttributeClassifier, dict]:
    """Rebuild a classifier from its checkpoint folder; eval mode."""
    states, meta = ckpt.load(path, device=str(device), expect={"kind": KIND})
    model = AttributeClassifier(ClassifierConfig.from_dict(meta["model_config"]))
    model.load_state_dict(states["model"])
    return model.to(device).eval(), meta


def classifier_from_manifest(manifest: mf.Manifest, attribute: str, device: str | torch.device = "cpu"
                             ) -> tuple[AttributeClassifier, dict]:
    """The first classifier of a ``classifiers`` manifest that knows ``attribute``."""
    for _, row in manifest.df.iterrows():
        if attribute in list(row["attributes"]):
            return load_classifier(manifest.root / row["path"], device)
    raise DatasetError(f"{manifest.file or manifest.root}: no classifier knows {attribute!r}; "
                       "add it to train_classifier.attributes")
