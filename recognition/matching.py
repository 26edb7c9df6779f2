"""Which image a name means, for every file that names images: pairs files and attribute CSVs.

``augment evaluate`` (a pairs file against ``--images``), ``augment pairs`` (an
attribute CSV against IMAGES) and the evaluate stage all look a name up with
``ImageIndex.lookup`` (``recognition.sources``): the path exactly, else the
original photo of an aligned crop (its sample id), else the same path with
another image extension (LFW's pairs name ``.jpg``; SynthFaces writes ``.png``).
This module holds what the readers share around that rule:

- ``load_index``: the images of a folder or manifest, an error that points at
  the folder holding the named images when the one given has no
  ``<identity>/<image>`` tree (a dataset root above ``lfw-deepfunneled/``, a
  SynthFaces folder above ``lfw/``);
- ``resolve``: each name's file, or one error naming the
  file that names them, the count, the first few, and where they are when that
  can be told: a folder nearby that holds them, or the extension they are
  stored under when it is not one read as an image;
- ``table_values``: an attribute CSV's values on the rows its names match.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from augment import manifest as mf
from augment.data.errors import DatasetError
from recognition.sources import IMAGE_EXTS, ImageIndex, index_from_manifest, index_from_tree

SAMPLE = 12  # names tried in each candidate folder: enough to tell it holds them, few stats
MAX_SUBFOLDERS = 100  # a folder with more subfolders is an identity tree itself: not searched below
MAX_CANDIDATES = 300  # folders tried at most: a root in a home folder must not start a crawl of the disk


def load_index(images: Path | None, names: Sequence[str] = (), named_by: str = "",
               give: str = "--images") -> ImageIndex | None:
    """The images of a manifest (a file) or an ``<identity>/<image>`` folder; None for None.

    ``names`` (what ``named_by`` names) only improve the error of a folder without
    such a tree: the folder nearby that holds them is suggested as ``give``, or
    the extension they are stored under said."""
    if images is None:
        return None
    images = Path(images)
    if images.is_file():
        return index_from_manifest(mf.read(images, kind="images"))
    try:
        return index_from_tree(images)
    except DatasetError as e:
        hint = folder_hint(images, names, give)
        if not hint:
            raise
        raise DatasetError(f"{images}: no images in <identity>/<image> subfolders here; for the images "
                           f"{named_by or 'given'} names, {hint}") from e


def resolve(index: ImageIndex, names: Sequence[str], named_by: str, give: str = "--images") -> list[str]:
    """Each name's path in ``index`` (the file it matched); an error with ``missing_message`` if any is missing."""
    rows = [index.lookup(n) for n in names]
    missing = [n for n, i in zip(names, rows) if i is None]
    if missing:
        raise DatasetError(missing_message(index, missing, len(names), named_by, give))
    paths = index.frame["path"]
    return [paths.iat[i] for i in rows]


def names_in(pairs: pd.DataFrame | None) -> list[str]:
    """The images a pairs frame names, sorted (none for None)."""
    return [] if pairs is None else sorted(set(pairs["path_a"]) | set(pairs["path_b"]))


def table_values(index: ImageIndex, values: dict[str, dict[str, int]], attribute: str, named_by: str,
                 give: str = "IMAGES") -> tuple[np.ndarray, list[str | None]]:
    """(per row of ``index``: 1 / 0 / -1 unknown, per row: the name the table gave it or None).

    ``values``: ``{image: {attribute: value}}`` (``augment.data.attributes.read_csv``).
    Where two names reach one row (``x.jpg`` and ``x.png``), the exact one wins.
    None of the names matching any row is an error (``missing_message``), not a
    set of unknown values: it is a wrong folder or file, never a dataset
    without the attribute."""
    n = len(index.frame)
    out = np.full(n, -1, dtype=np.int8)
    given: list[str | None] = [None] * n
    exact = np.zeros(n, dtype=bool)
    paths = index.frame["path"]
    matched = 0
    for name, row in values.items():
        i = index.lookup(name)
        if i is None:
            continue
        matched += 1
        is_exact = paths.iat[i] == name
        if exact[i] and not is_exact:
            continue
        exact[i] |= is_exact
        given[i] = name
        out[i] = row.get(attribute, -1)
    if matched == 0 and values:
        raise DatasetError(missing_message(index, sorted(values), len(values), named_by, give))
    return out, given


def missing_message(index: ImageIndex, missing: Sequence[str], total: int, named_by: str, give: str) -> str:
    """``k of n image(s) named by FILE are not in WHERE: a, b, ...; <where they are>``."""
    first = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
    text = f"{len(missing)} of the {total} image(s) named by {named_by} are not in {index.where}: {first}"
    hint = _hint(index, missing, give)
    return text + (f"; {hint}" if hint else "")


def _hint(index: ImageIndex, missing: Sequence[str], give: str) -> str:
    root = index.root
    if root is None:  # an embeddings table: no folder to look around
        return ""
    if not Path(index.where).is_dir():  # a manifest: say what it holds (its root was not the user's choice)
        sources = ", ".join(index.sources)
        return f"its rows are images of {sources}" if sources else ""
    return folder_hint(root, missing, give)


def folder_hint(root: Path, names: Sequence[str], give: str) -> str:
    """Where the images ``names`` names are, when a folder ``root`` lacks them: stored
    under an extension not read as an image, or in a folder nearby; '' when unknown."""
    stored = stored_as(root, names)
    if stored:
        return (f"{root} holds them as {stored}, which is not read as an image ({', '.join(IMAGE_EXTS)}): "
                "convert them")
    found = folder_holding(root, names)
    if found is not None:
        return f"{found} holds them: {_give(give, found)}"
    return ""


def _give(give: str, folder: Path) -> str:
    """``give --images F`` (an option), ``give F as IMAGES`` (an argument)."""
    return f"give {give} {folder}" if give.startswith("-") else f"give {folder} as {give}"


def _sample(names: Sequence[str]) -> list[str]:
    """Up to SAMPLE of the names laid out ``<identity>/<image>``, spread over the list."""
    tree = [n for n in names if len(Path(n).parts) == 2 and not os.path.isabs(n) and ".." not in n]
    step = max(1, len(tree) // SAMPLE)
    return tree[::step][:SAMPLE]


def _holds(folder: Path, name: str) -> bool:
    stem = os.path.splitext(name)[0]
    return any((folder / (stem + e)).is_file() for e in IMAGE_EXTS) or (folder / name).is_file()


def folder_holding(root: Path, names: Sequence[str]) -> Path | None:
    """A folder near ``root`` whose ``<identity>/<image>`` tree holds most of ``names``
    (more of them than ``root`` does): below it (a dataset root above
    ``lfw-deepfunneled/``), above it (an identity folder given), or beside it
    (SynthFaces' ``celeba/`` given for its ``lfw/``); None when there is none."""
    sample = _sample(names)
    if not sample:
        return None
    root = Path(root)

    def score(folder: Path) -> int:
        return sum(_holds(folder, n) for n in sample)

    best, best_score = None, max(score(root), len(sample) // 2)
    for folder in itertools.islice(_candidates(root), MAX_CANDIDATES):
        s = score(folder)
        if s > best_score:
            best, best_score = folder, s
            if s == len(sample):
                break
    return best


def _candidates(root: Path) -> Iterable[Path]:
    """Folders below ``root`` (two levels), then its parent and grandparent, each with
    the folders below it (two levels) that are not ``root``'s own."""
    yield from _below(root, 2)
    here = root.resolve()
    for above in list(here.parents)[:2]:
        yield above
        yield from (f for f in _below(above, 2) if f != here and here not in f.parents and f not in here.parents)


def _below(folder: Path, depth: int) -> Iterable[Path]:
    try:
        subs = sorted(e.path for e in os.scandir(folder) if e.is_dir())
    except OSError:
        return
    if len(subs) > MAX_SUBFOLDERS:
        return
    for sub in subs:
        yield Path(sub).resolve()
        if depth > 1:
            yield from _below(Path(sub), depth - 1)


def stored_as(root: Path, names: Sequence[str]) -> str:
    """The extension(s) under which ``root`` holds the names' stems when none is an
    image extension read here (e.g. ``.tif``, ``.ppm``); '' otherwise."""
    seen: set[str] = set()
    for name in _sample(names):
        folder, stem = (Path(root) / name).parent, Path(name).stem
        try:
            entries = os.listdir(folder)
        except (OSError, ValueError):  # no such folder; a name with NUL or a lone surrogate (a received file)
            continue
        for f in entries:
            base, ext = os.path.splitext(f)
            if base == stem and ext:
                seen.add(ext.lower())
    if not seen or seen & set(IMAGE_EXTS):
        return ""
    return ", ".join(sorted(seen))
