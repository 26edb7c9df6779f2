"""Plain photo folders (``format: folder``): a tree, a flat folder, or a flat folder plus a CSV.

Layouts, in the order they are tried:

- ``identities`` CSV given: a header ``path,identity``; ``path`` relative to
  the root, ``identity`` any label (all-integer labels are kept as the
  identity ids, other labels numbered in sorted order). Every path must
  exist; images under the root that the CSV does not name are left out (with
  a warning, never silently).
- ``<root>/<identity>/<image>`` subfolders: one identity per subfolder (as LFW).
- images directly in ``<root>``: one identity per photo, named by the file stem.

Splits (``split`` of the dataset config): ``train`` puts every image in the
training split (the default for folders: a user's photos are all meant for
training); ``by_identity`` cuts the sorted identities 80/10/10 into
train/val/test, as for datasets without a partition file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from augment.data import celeba, lfw
from augment.data.celeba import IMAGE_EXTS
from augment.data.csvfile import read_rows
from augment.data.errors import DatasetError

log = logging.getLogger("augment.read")


@dataclass
class Folder:
    """``frame``: path, identity (int), identity_name; ``layout``: csv | tree | flat."""

    root: Path
    frame: pd.DataFrame
    layout: str
    unlisted: int = 0  # images on disk that the identities CSV does not name


def _flat_images(root: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(root) if e.is_file() and e.name.lower().endswith(IMAGE_EXTS))


def _has_subfolder_images(root: Path) -> bool:
    for e in os.scandir(root):
        if e.is_dir() and any(f.lower().endswith(IMAGE_EXTS) for f in os.listdir(e.path)):
            return True
    return False


def _read_csv(path: Path) -> list[tuple[int, str, str]]:
    """(line, path, identity) rows of an identities CSV."""
    if not path.is_file():
        raise DatasetError(f"{path}: identities CSV not found")
    first, records = read_rows(path)
    header = [h.strip() for h in first or []]
    if header[:2] != ["path", "identity"]:
        raise DatasetError(f"{path}:1: expected the header 'path,identity', got {','.join(header)!r}")
    rows = []
    for no, rec in records:
        if len(rec) < 2 or not rec[0].strip() or not rec[1].strip():
            raise DatasetError(f"{path}:{no}: expected 'path,identity', got {','.join(rec)!r}")
        rows.append((no, rec[0].strip(), rec[1].strip()))
    if not rows:
        raise DatasetError(f"{path}: no rows after the header")
    return rows


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for a name no filesystem can hold (too long: a CSV from
    elsewhere can name anything), so that the error names the CSV's rows."""
    try:
        return path.is_file()
    except OSError:
        return False


def _from_csv(root: Path, csv_path: Path) -> Folder:
    rows = _read_csv(csv_path)
    seen: dict[str, int] = {}
    for no, p, _ in rows:
        if p in seen:
            raise DatasetError(f"{csv_path}:{no}: {p!r} is listed twice (first on line {seen[p]})")
        seen[p] = no
    missing = [p for _, p, _ in rows if not _is_file(root / p)]
    if missing:
        raise DatasetError(f"{csv_path}: {len(missing)} image(s) it names are missing under {root}: "
                           f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    labels = [ident for _, _, ident in rows]
    if all(v.lstrip("-").isdigit() for v in labels):
        ids = [int(v) for v in labels]
    else:
        order = {n: i for i, n in enumerate(sorted(set(labels)))}
        ids = [order[v] for v in labels]
    frame = pd.DataFrame({"path": [p for _, p, _ in rows], "identity": np.array(ids, dtype=np.int64),
                          "identity_name": labels}).sort_values("path", kind="stable").reset_index(drop=True)
    on_disk = {f.relative_to(root).as_posix() for f in root.rglob("*") if f.suffix.lower() in IMAGE_EXTS}
    unlisted = len(on_disk - set(frame["path"]))
    if unlisted:
        log.warning("%s: %d image(s) under %s are not in %s and are left out", root, unlisted, root, csv_path)
    return Folder(root, frame, "csv", unlisted)


def load(root: Path | str, identities: str = "") -> Folder:
    """Read a photo folder in one of the layouts of the module docstring."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: photo folder not found")
    if identities:
        csv_path = Path(identities)
        if not csv_path.is_absolute() and not csv_path.exists():
            csv_path = root / identities
        return _from_csv(root, csv_path)
    flat = _flat_images(root)
    nested = _has_subfolder_images(root)
    if flat and nested:
        raise DatasetError(
            f"{root}: holds images directly ({flat[0]}, ...) and in identity subfolders; use one layout, "
            "or name every image's identity in a CSV (data.*.identities)"
        )
    if nested:
        return Folder(root, lfw.load_tree(root).frame, "tree")
    if not flat:
        raise DatasetError(f"{root}: no images ({', '.join(IMAGE_EXTS)}) in this folder or its subfolders")
    frame = pd.DataFrame({"path": flat, "identity": np.arange(len(flat), dtype=np.int64),
                          "identity_name": [os.path.splitext(f)[0] for f in flat]})
    return Folder(root, frame, "flat")


def splits(identities: np.ndarray, split: str) -> np.ndarray:
    """The split of each row: ``train`` (all) or ``by_identity`` (80/10/10 of sorted identities)."""
    if split == "train":
        return np.array(["train"] * len(identities), dtype=object)
    if split == "by_identity":
        return celeba.split_by_identity(identities)
    raise DatasetError(f"unknown split {split!r}; known: train, by_identity")


def describe(root: Path | str, identities: str = "", split: str = "train") -> dict:
    f = load(root, identities)
    sp = pd.Series(splits(f.frame["identity"].to_numpy(), split))
    out = {
        "format": "folder",
        "root": str(Path(root)),
        "layout": f.layout,
        "images": len(f.frame),
        "identities": int(f.frame["identity"].nunique()),
        "split": split,
        "splits": {k: int(v) for k, v in sp.value_counts().sort_index().items()},
    }
    if f.layout == "csv":
        out["unlisted_images"] = f.unlisted
    return out
