"""LFW (and any ``<identity>/<image>`` folder tree) and its pairs files.

Images: ``<root>/<Name>/<Name>_NNNN.jpg`` (250x250 for LFW). Pairs files:

- View 2 ``pairs.txt``: ``10<TAB>300``, then per fold 300 same-person lines
  ``name i j`` followed by 300 different-person lines ``name1 i name2 j``.
- View 1 ``pairsDevTrain.txt`` / ``pairsDevTest.txt``: a single count N, then
  N same and N different lines (one fold).

Unlike the count line of CelebA files, the header here defines the folds, so
a file whose line count disagrees with it is an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from augment.data.celeba import IMAGE_EXTS
from augment.data.errors import DatasetError


def lfw_path(name: str, index: int | str) -> str:
    """LFW's naming rule: ``Name/Name_0001.jpg``."""
    return f"{name}/{name}_{int(index):04d}.jpg"


@dataclass
class FolderTree:
    """An ``<identity>/<image>`` tree. ``frame``: path, identity (int), identity_name."""

    root: Path
    frame: pd.DataFrame


def load_tree(root: Path | str) -> FolderTree:
    """Every image under ``root/<identity>/``; identity ids follow sorted folder names."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder not found (expected <root>/<identity>/<image>)")
    paths, names = [], []
    for ident in sorted(e.name for e in os.scandir(root) if e.is_dir()):
        for f in sorted(os.listdir(root / ident)):
            if f.lower().endswith(IMAGE_EXTS):
                paths.append(f"{ident}/{f}")
                names.append(ident)
    if not paths:
        hint = _image_tree_below(root)
        raise DatasetError(f"{root}: no images found in <root>/<identity>/ subfolders"
                           + (f"; {hint} has them: give that folder" if hint else ""))
    uniq = {n: i for i, n in enumerate(sorted(set(names)))}
    frame = pd.DataFrame(
        {"path": paths, "identity": np.array([uniq[n] for n in names], dtype=np.int64), "identity_name": names}
    )
    return FolderTree(root, frame)


def _image_tree_below(root: Path) -> Path | None:
    """A subfolder of ``root`` laid out as <folder>/<identity>/<image> (LFW's archive
    unpacks into ``lfw-deepfunneled/`` or ``lfw/``), for the error's suggestion."""
    for sub in sorted(e.path for e in os.scandir(root) if e.is_dir()):
        for ident in sorted(e.path for e in os.scandir(sub) if e.is_dir())[:3]:
            if any(f.lower().endswith(IMAGE_EXTS) for f in os.listdir(ident)):
                return Path(sub)
    return None


def _text(path: Path) -> str:
    """A pairs file's text; a binary file (NUL bytes, or not UTF-8) is refused without
    echoing its bytes to the terminal."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not a text pairs file (bytes that are not UTF-8 at offset {e.start}); "
                           "expected LFW's pairs.txt format") from None
    if "\x00" in text:
        raise DatasetError(f"{path}: not a text pairs file (it holds NUL bytes); expected LFW's pairs.txt format")
    return text


def read_pairs(path: Path | str) -> pd.DataFrame:
    """A View 1 or View 2 pairs file -> DataFrame(fold, path_a, path_b, same)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: LFW pairs file not found")
    lines = [(no, ln.split()) for no, ln in enumerate(_text(path).splitlines(), 1)]
    lines = [(no, parts) for no, parts in lines if parts]
    if not lines:
        raise DatasetError(f"{path}: empty pairs file")
    head_no, head = lines[0]
    try:
        nums = [int(v) for v in head]
    except ValueError:
        raise DatasetError(f"{path}:{head_no}: expected a header 'folds<TAB>n' or 'n', got {' '.join(head)!r}") from None
    if len(nums) == 2:
        folds, n = nums
    elif len(nums) == 1:
        folds, n = 1, nums[0]
    else:
        raise DatasetError(f"{path}:{head_no}: expected a header 'folds<TAB>n' or 'n', got {' '.join(head)!r}")
    body = lines[1:]
    if len(body) != folds * 2 * n:
        raise DatasetError(
            f"{path}: header says {folds} fold(s) of {n} same + {n} different pairs "
            f"({folds * 2 * n} lines), found {len(body)} pair lines"
        )
    rows = []
    for k, (no, parts) in enumerate(body):
        fold, pos = divmod(k, 2 * n)
        same = pos < n
        try:
            if same:
                if len(parts) != 3:
                    raise ValueError
                a, b = lfw_path(parts[0], parts[1]), lfw_path(parts[0], parts[2])
            else:
                if len(parts) != 4:
                    raise ValueError
                a, b = lfw_path(parts[0], parts[1]), lfw_path(parts[2], parts[3])
        except ValueError:
            want = "'name i j' (same person)" if same else "'name1 i name2 j' (different people)"
            raise DatasetError(f"{path}:{no}: expected {want}, got {' '.join(parts)!r}") from None
        rows.append((fold, a, b, same))
    return pd.DataFrame(rows, columns=["fold", "path_a", "path_b", "same"]).astype({"fold": np.int16})


def match_extensions(pairs: pd.DataFrame, available: set[str]) -> pd.DataFrame:
    """Point pair paths at the files that exist when only the extension differs.

    Pairs files name images by person and number; LFW stores ``.jpg``, but a
    converted copy (or SynthFaces, which writes lossless PNG) may not.
    """
    by_stem = {os.path.splitext(p)[0]: p for p in available}

    def fix(p: str) -> str:
        return p if p in available else by_stem.get(os.path.splitext(p)[0], p)

    return pairs.assign(path_a=pairs["path_a"].map(fix), path_b=pairs["path_b"].map(fix))


def check_pairs_exist(pairs: pd.DataFrame, root: Path, available: set[str] | None = None, source: str = "") -> None:
    """Error (never a silent skip) when pairs name images that are not there."""
    names = set(pairs["path_a"]) | set(pairs["path_b"])
    if available is None:
        missing = sorted(p for p in names if not (root / p).is_file())
    else:
        missing = sorted(p for p in names if p not in available)
    if missing:
        first = ", ".join(missing[:5])
        raise DatasetError(
            f"{source or 'pairs'}: {len(missing)} image(s) named by the pairs are missing under {root}: "
            f"{first}{' ...' if len(missing) > 5 else ''}"
        )


def resolve_pairs_path(root: Path, pairs: str) -> Path:
    """A pairs path relative to the dataset root (or its parent), or absolute."""
    p = Path(pairs)
    if p.is_absolute() or p.exists():
        return p
    for base in (root, root.parent):
        if (base / pairs).is_file():
            return base / pairs
    return root / pairs
