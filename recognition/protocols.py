"""What a recognizer is scored on: pairs, identification sets, and how they are built.

- ``lfw``: the pairs of an LFW pairs file (View 2: 10 folds; View 1: one fold).
- ``celeba-ident``: the paper's CelebA test protocol (one target image per
  person, the others as queries).
- ``attr-shift:<Attribute>``: pairs built around one attribute, as CALFW/CPLFW
  do for age and pose and MeGlass for eyeglasses: every genuine pair is one
  person with *different* values of the attribute, every impostor pair two
  people with the *same* value (half with it, half without where possible), in
  10 person-disjoint folds of n genuine + n impostor pairs. A recognizer that
  has learnt the attribute as part of who someone is fails both ways here.
- strata of any pairs protocol: its pairs split by whether the two photos share
  the attribute's value.

``attr_shift_pairs`` returns the same frame an LFW pairs file reads into
(fold, path_a, path_b, same); ``write_lfw_pairs`` writes it in LFW View 2's
format, so any tool can read it back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from augment.data.errors import DatasetError
from augment.fs import write_text

ATTR_SHIFT = "attr-shift:"
FOLDS = 10
PER_FOLD_MAX = 300  # LFW View 2 has 300 + 300 per fold


@dataclass
class Protocol:
    """What to score: image keys, and either pairs (lfw, attr-shift) or identities (celeba-ident).

    ``info``: what built it (counts, where attribute values came from), copied
    into the metrics.
    """

    name: str
    keys: list[str]
    idx_a: np.ndarray | None = None
    idx_b: np.ndarray | None = None
    same: np.ndarray | None = None
    folds: np.ndarray | None = None
    identities: np.ndarray | None = None
    seed: int = 0
    info: dict = field(default_factory=dict)

    @property
    def is_pairs(self) -> bool:
        return self.idx_a is not None


def pairs_protocol(pairs: pd.DataFrame, name: str = "lfw", info: dict | None = None) -> Protocol:
    """From a pairs frame (fold, path_a, path_b, same)."""
    if len(pairs) == 0:
        raise DatasetError("the pairs file has no pairs")
    keys = sorted(set(pairs["path_a"]) | set(pairs["path_b"]))
    pos = {k: i for i, k in enumerate(keys)}
    return Protocol(
        name, keys,
        idx_a=pairs["path_a"].map(pos).to_numpy(np.int64), idx_b=pairs["path_b"].map(pos).to_numpy(np.int64),
        same=pairs["same"].to_numpy(bool), folds=pairs["fold"].to_numpy(np.int64), info=dict(info or {}),
    )  # fmt: skip



def ident_protocol(keys: Sequence[str], identities: Sequence, seed: int) -> Protocol:
    if len(keys) == 0:
        raise DatasetError("no images for the identification protocol")
    return Protocol("celeba-ident", list(keys), identities=np.asarray(identities), seed=seed)


def attribute_of(name: str) -> str | None:
    """``"attr-shift:Eyeglasses"`` -> ``"Eyeglasses"``; None for other protocols."""
    return name[len(ATTR_SHIFT):] if name.startswith(ATTR_SHIFT) else None


# --------------------------------------------------------------------------- #
# attr-shift pairs
# --------------------------------------------------------------------------- #


def attr_shift_pairs(paths: Sequence[str], identities: Sequence, values: Sequence[int], attribute: str, seed: int,
                     folds: int = FOLDS, per_fold_max: int = PER_FOLD_MAX) -> tuple[pd.DataFrame, dict]:
    """Pairs across ``attribute``: (frame fold, path_a, path_b, same; counts).

    ``values``: 1 / 0 per image, -1 = unknown (left out). People are dealt to
    the folds in a seeded order, those photographed both with and without the
    attribute first, so every fold gets genuine pairs. Each fold then offers
    every cross-value pair of each of its people (genuine) and every same-value
    pair of two of its people (impostor, half of them with the attribute where
    possible); n = the smallest fold's count (at most ``per_fold_max``) of each
    is drawn from every fold. Too few eligible people is an error with the counts.
    """
    frame = pd.DataFrame({"path": list(paths), "identity": [str(i) for i in identities],
                          "value": np.asarray(values, dtype=np.int64)})
    labelled = frame[frame["value"] >= 0]
    by_person = {p: g for p, g in labelled.groupby("identity", sort=True)}
    both = sorted(p for p, g in by_person.items() if g["value"].nunique() == 2)
    one = sorted(p for p in by_person if p not in set(both))
    counts = {"images": len(frame), "labelled_images": len(labelled), "people": len(by_person),
              "people_with_both_values": len(both), "with_attribute": int((labelled["value"] == 1).sum())}
    if len(both) < folds or len(by_person) < 2 * folds:
        raise DatasetError(
            f"attr-shift:{attribute}: needs at least {folds} people photographed both with and without "
            f"{attribute} (one per fold) and {2 * folds} labelled people in all; found {len(both)} with both values "
            f"among {len(by_person)} people ({len(labelled)} of {len(frame)} images labelled)"
        )
    rng = np.random.default_rng(seed)
    order = [both[i] for i in rng.permutation(len(both))] + [one[i] for i in rng.permutation(len(one))]
    fold_people = [order[f::folds] for f in range(folds)]
    pools = [_fold_pools(by_person, people, per_fold_max, rng) for people in fold_people]
    n = min(per_fold_max, *(min(len(g), len(i)) for g, i in pools))
    if n < 1:
        raise DatasetError(f"attr-shift:{attribute}: a fold has no impostor pair of the same {attribute} value; "
                           f"add people ({counts})")
    rows = []
    for f, (genuine, impostor) in enumerate(pools):
        rows += [(f, a, b, True) for a, b in genuine[:n]]
        rows += [(f, a, b, False) for a, b in impostor[:n]]
    counts |= {"pairs_per_fold": n, "folds": folds}
    return pd.DataFrame(rows, columns=["fold", "path_a", "path_b", "same"]), counts


def _fold_pools(by_person: dict[str, pd.DataFrame], people: list[str], n_max: int, rng: np.random.Generator):
    """(genuine pairs in a seeded order, impostor pairs: up to ``n_max``, half of them
    with the attribute where possible, the two values alternating)."""
    genuine = []
    by_value: dict[int, list[tuple[str, list[str]]]] = {0: [], 1: []}
    for p in people:
        g = by_person[p]
        with_, without = g.loc[g["value"] == 1, "path"].tolist(), g.loc[g["value"] == 0, "path"].tolist()
        genuine += [(a, b) for a in without for b in with_]
        for v, paths in ((0, without), (1, with_)):
            if paths:
                by_value[v].append((p, paths))
    avail = {v: _pair_count([len(x) for _, x in lst]) for v, lst in by_value.items()}
    take = {1: min(avail[1], n_max // 2)}
    take[0] = min(avail[0], n_max - take[1])
    take[1] = min(avail[1], n_max - take[0])  # the other value fills what one lacks
    drawn = {v: _draw_impostors(by_value[v], take[v], avail[v], rng) for v in (1, 0)}
    impostor = [pair for duo in zip_longest(drawn[1], drawn[0]) for pair in duo if pair is not None]
    return _shuffle(rng, genuine), impostor


def _pair_count(sizes: list[int]) -> int:
    """Image pairs of two different people: sum over person pairs of the product of their counts."""
    total = sum(sizes)
    return (total * total - sum(k * k for k in sizes)) // 2


def _draw_impostors(people: list[tuple[str, list[str]]], k: int, available: int, rng: np.random.Generator):
    """``k`` distinct pairs of images of two different people, uniformly: all of them
    enumerated when few, else drawn by rejection (large folds hold millions)."""
    if k <= 0:
        return []
    if available <= 4 * k:
        pool = [(a, b) for x, (_, pa) in enumerate(people) for _, pb in people[x + 1:] for a in pa for b in pb]
        return _shuffle(rng, pool)[:k]
    flat = [(i, path) for i, (_, paths) in enumerate(people) for path in paths]
    seen, out = set(), []
    while len(out) < k:
        i, j = (int(x) for x in rng.integers(len(flat), size=2))
        (pi, a), (pj, b) = flat[i], flat[j]
        key = (min(a, b), max(a, b))
        if pi == pj or key in seen:
            continue
        seen.add(key)
        out.append((a, b))
    return out


def _shuffle(rng: np.random.Generator, pool: list) -> list:
    return [pool[int(i)] for i in rng.permutation(len(pool))]



LFW_NAME = re.compile(r"^(?P<name>[^/]+)/(?P=name)_(?P<index>\d+)\.[A-Za-z0-9]+$")


def write_lfw_pairs(pairs: pd.DataFrame, path: Path | str) -> Path:
    """LFW View 2's format: ``folds<TAB>n``, then per fold n ``name i j`` lines and n
    ``name1 i name2 j`` lines. Paths must be LFW's ``Name/Name_NNNN.ext``."""
    folds = sorted(pairs["fold"].unique())
    per = pairs.groupby(["fold", "same"]).size()
    n = int(per.iloc[0])
    if (per != n).any() or len(per) != 2 * len(folds):
        raise DatasetError("LFW pairs need n genuine and n impostor pairs in every fold")

    def parse(p: str) -> tuple[str, int]:
        m = LFW_NAME.match(p)
        if m is None:
            raise DatasetError(f"{p}: not an LFW image name (Name/Name_0001.jpg); LFW's pairs format cannot name it")
        return m["name"], int(m["index"])

    lines = [f"{len(folds)}\t{n}"]
    for f in folds:
        fold = pairs[pairs["fold"] == f]
        for same in (True, False):
            for a, b in zip(fold.loc[fold["same"] == same, "path_a"], fold.loc[fold["same"] == same, "path_b"]):
                (na, ia), (nb, ib) = parse(a), parse(b)
                lines.append(f"{na}\t{ia}\t{ib}" if same else f"{na}\t{ia}\t{nb}\t{ib}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- #
# Strata of a pairs protocol
# --------------------------------------------------------------------------- #

STRATA = ("genuine_same_value", "genuine_different_value", "impostor_same_value", "impostor_different_value")


def strata(protocol: Protocol, values: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks over the protocol's pairs: genuine / impostor x the two photos
    sharing the attribute's value or not; ``values`` (len(keys),) 1 / 0 / -1 (unknown:
    the pair is in no stratum)."""
    va, vb = values[protocol.idx_a], values[protocol.idx_b]
    known = (va >= 0) & (vb >= 0)
    same_value = va == vb
    return {
        "genuine_same_value": known & protocol.same & same_value,
        "genuine_different_value": known & protocol.same & ~same_value,
        "impostor_same_value": known & ~protocol.same & same_value,
        "impostor_different_value": known & ~protocol.same & ~same_value,
    }
