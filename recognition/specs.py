"""What ``train_recognition`` trains: the baseline and the augmented models, their data and seeds.

Like the paper, the baseline trains on the original (aligned) training images
and each augmented model on the originals plus the SaGAN edits of one
attribute (``models: per_attribute``); ``all`` adds one model with every
attribute's edits, ``both`` does both. An edit keeps its parent's identity, so
every model classifies the same identities. With ``repeats`` > 1 every model
is trained again with other seeds (``<name>@<k>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from augment import manifest as mf
from augment.data.errors import DatasetError
from augment.runtime import derive_seed

STAGE = "train_recognition"  # part of every seed the stage derives


@dataclass
class ModelSpec:
    """One recognizer: its name (``baseline``, ``+Eyeglasses``, ``+all``), folder and data."""

    name: str
    folder: str
    attributes: tuple[str, ...]
    manifests: list[mf.Manifest]
    repeat: int = 0  # which of ``train_recognition.repeats`` (0 = the run seed itself)

    @property
    def images(self) -> int:
        return sum(len(m) for m in self.manifests)


def model_specs(aligned: mf.Manifest, edits: mf.Manifest | None, models: str, splits: Sequence[str],
                oracle: mf.Manifest | None = None) -> list[ModelSpec]:
    """The baseline plus the augmented models ``models`` asks for; with ``oracle``
    (perfect edits of the same rows), each augmented model is followed by its
    ``:oracle`` twin trained on those instead of the SaGAN edits."""
    specs = _model_specs(aligned, edits, models, splits)
    if oracle is None or len(oracle) == 0:
        return specs
    twins = {s.name: s for s in _model_specs(aligned, oracle, models, splits)}
    out = []
    for s in specs:
        out.append(s)
        twin = twins.get(s.name)
        if s.name != "baseline" and twin is not None:
            out.append(ModelSpec(f"{s.name}:oracle", f"{s.folder}_oracle", s.attributes, twin.manifests))
    return out


def _model_specs(aligned: mf.Manifest, edits: mf.Manifest | None, models: str, splits: Sequence[str]) -> list[ModelSpec]:
    train = _rows(aligned, aligned.df["split"].isin(splits))
    if len(train) == 0:
        raise DatasetError(f"{aligned.file or aligned.root}: no aligned images in split(s) {list(splits)}")
    specs = [ModelSpec("baseline", "baseline", (), [train])]
    if edits is None or len(edits) == 0:
        return specs
    e = edits.df[edits.df["split"].isin(splits)]
    if e["attribute"].isna().any():
        raise DatasetError(f"{edits.file or edits.root}: {int(e['attribute'].isna().sum())} edit row(s) have no attribute")
    attrs = sorted(e["attribute"].unique())
    if models in ("per_attribute", "both"):
        for a in attrs:
            specs.append(ModelSpec(f"+{a}", a, (a,), [train, _rows(edits, edits.df.index.isin(e.index[e["attribute"] == a]))]))
    if models in ("all", "both") and attrs:
        specs.append(ModelSpec("+all", "all", tuple(attrs), [train, _rows(edits, edits.df.index.isin(e.index))]))
    return specs


def repeated(specs: list[ModelSpec], repeats: int) -> list[ModelSpec]:
    """``specs`` (repeat 0, named as before) followed by ``repeats - 1`` more
    copies of each, named ``<name>@<k>``: the same data, another seed."""
    out = list(specs)
    for k in range(1, repeats):
        out += [ModelSpec(f"{s.name}@{k}", f"{s.folder}@{k}", s.attributes, s.manifests, k) for s in specs]
    return out


def repeat_seed(seed: int, repeat: int) -> int:
    """The training seed of repeat ``repeat``: the run seed for 0, so one repeat
    trains exactly what it trained before repeats existed."""
    return seed if repeat == 0 else derive_seed(seed, STAGE, "repeat", repeat) % 2**62


def _rows(m: mf.Manifest, mask) -> mf.Manifest:
    return mf.Manifest(m.kind, m.df[np.asarray(mask)].reset_index(drop=True), m.root, m.meta, m.file)
