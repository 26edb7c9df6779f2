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

Whom it learns from (``train_classifier.people``, ``choose_people``): ``same``
trains it on the generator's own training people (the ``train`` split, as
train_sagan); ``others`` on the people of the ``val`` split who have no photo in
``train``, measured on the ``test`` people of neither, so that the judge owes
nothing to the people the generator learnt. ``identities_record`` says whom, as
a count and a hash. ``smudge_accept``: how often it calls a held-out face
without the attribute, darkened where the attribute sits, "present".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from augment import checkpoint as ckpt
from augment import manifest as mf
from augment.data.errors import DatasetError
from augment.runtime import derive_seed
from augment.sagan.data import ImageDataset, attribute_labels
from augment.sagan.smudge import SMUDGE_REGIONS, manifest_blobs, smudge_batch

KIND = "attribute_classifier"
PEOPLE = ("same", "others")  # train_classifier.people
GENERATOR_SPLIT = "train"  # the split train_sagan learns from (augment/sagan/train.py)


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


# --------------------------------------------------------------------------- #
# Whom the judge learns from, and what a smudge does to it
# --------------------------------------------------------------------------- #


def identities_record(identities) -> dict:
    """``{"count", "sha256"}`` of a set of person ids: how many, and 16 hex digits of
    their sorted list (equal hashes: the same people)."""
    ids = sorted({int(i) for i in identities})
    return {"count": len(ids), "sha256": hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]}


def choose_people(df: pd.DataFrame, labelled: np.ndarray, people: str, where: str
                  ) -> tuple[np.ndarray, np.ndarray, str]:
    """(training rows, held-out rows) of an aligned frame as boolean masks, and the
    held-out split's name. ``labelled`` (N,) bool: rows with a known label.

    ``same``: the ``train`` split (the generator's people), measured on ``val``, or
    on ``test`` when val has no labelled row. ``others``: the ``val`` rows of people
    with no photo in ``train``, measured on the ``test`` rows of people in neither;
    a DatasetError naming ``train_classifier.people`` when there are none."""
    if people not in PEOPLE:
        raise ValueError(f"train_classifier.people must be one of {PEOPLE}, got {people!r}")
    split, ident = df["split"].to_numpy(), df["identity"].to_numpy()
    gen = split == GENERATOR_SPLIT
    if people == "same":
        held = labelled & (split == "val")
        if not held.any():
            return gen & labelled, labelled & (split == "test"), "test"
        return gen & labelled, held, "val"
    gen_people = set(ident[gen].tolist())
    outside = ~np.isin(ident, list(gen_people))
    train = labelled & (split == "val") & outside
    if not train.any():
        raise DatasetError(
            f"{where}: train_classifier.people is 'others', but no labelled 'val' image shows a person outside "
            f"the generator's training people (the {len(gen_people)} of the '{GENERATOR_SPLIT}' split): split the "
            "data by identity (data.<role>.split: by_identity) or set train_classifier.people: same")
    held = labelled & (split == "test") & outside & ~np.isin(ident, np.unique(ident[train]))
    return train, held, "test"


@torch.no_grad()
def smudge_accept(model: AttributeClassifier, paths: Sequence[Path], blobs: Sequence[np.ndarray], attribute: str,
                  seed: int, batch_size: int = 128, device: torch.device | str = "cpu") -> dict:
    """``{"smudge_accept", "noise_accept", "clean_accept", "smudge_images"}`` for
    ``attribute``: the share of the faces ``paths`` (aligned, without the
    attribute) that the judge calls "present" once darkened over their ``blobs``
    (``smudge_batch``, every image, drawn from ``seed``); the same with the
    patches blended towards colour noise instead (``kind="noise"``: a judge may
    be trained against dark smudges and still take a speckled patch for the
    attribute); and the share unsmudged. Faces without a blob are left out;
    None when none is left (want all three near 0)."""
    keep = [i for i, b in enumerate(blobs) if len(b)]
    if not keep:
        return {"smudge_accept": None, "noise_accept": None, "clean_accept": None, "smudge_images": 0}
    model.eval()
    ds = ImageDataset([paths[i] for i in keep], model.cfg.image_size)
    k = model.cfg.attributes.index(attribute)
    smudged, noised, clean = [], [], []
    for start in range(0, len(keep), batch_size):
        idx = range(start, min(start + batch_size, len(keep)))
        x = torch.stack([ds[i][0] for i in idx])
        batch_blobs = [blobs[keep[i]] for i in idx]
        xs = smudge_batch(x, batch_blobs, 1.0, seed + start)
        xn = smudge_batch(x, batch_blobs, 1.0, seed + start, kind="noise")
        clean.append(model.probabilities(x.to(device))[:, k].cpu() > 0.5)
        smudged.append(model.probabilities(xs.to(device))[:, k].cpu() > 0.5)
        noised.append(model.probabilities(xn.to(device))[:, k].cpu() > 0.5)
    return {"smudge_accept": float(torch.cat(smudged).double().mean()),
            "noise_accept": float(torch.cat(noised).double().mean()),
            "clean_accept": float(torch.cat(clean).double().mean()), "smudge_images": len(keep)}


def held_out_smudges(model: AttributeClassifier, held_df: pd.DataFrame, aligned: mf.Manifest,
                     attributes: Sequence[str], size: int, seed: int,
                     device: torch.device | str = "cpu") -> dict[str, dict]:
    """Per attribute with a smudge region: ``smudge_accept`` on the faces of
    ``held_df`` (rows of ``aligned``) without it, patched over its landmarks at
    ``size`` px (the alignment template's points when a row has none, as
    prealigned crops), each attribute's patches drawn from ``seed`` and its name:
    the figures train_classifier's metrics.json records."""
    paths = [aligned.root / p for p in held_df["path"]]
    out = {}
    for attr in attributes:
        if attr not in SMUDGE_REGIONS:
            continue
        rows = np.flatnonzero(attribute_labels(held_df, attr) == 0)
        blobs = manifest_blobs(aligned, held_df.iloc[rows], [attr], size)
        out[attr] = smudge_accept(model, [paths[i] for i in rows], blobs, attr,
                                  derive_seed(seed, "train_classifier", "held_out_smudge", attr), device=device)
    return out
