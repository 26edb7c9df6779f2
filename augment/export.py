"""Turn images manifests into what existing training jobs read, as ONE training set.

``export([aligned.parquet, edits.parquet], fmt, out)`` writes every row of
every manifest into ``out``:

- ``imagefolder``: ``OUT/<class>/<sample_id>.<ext>`` (hard links where the
  filesystem allows, copies otherwise), torchvision's ImageFolder layout;
- ``lst``: an MXNet im2rec list, ``index<TAB>label<TAB>path`` per line;
- ``insightface``: insightface's list (its ``face2rec2.py`` reads
  ``aligned<TAB>path<TAB>label``, aligned = 1), rows grouped by label as its
  reader needs (it makes one identity range per run of equal labels), plus
  its ``property`` file ``num_classes,height,width``;
- ``csv``: every column, list columns as JSON, plus ``label`` and ``abspath``.

List paths are absolute (im2rec joins them to its root argument, which then
does not matter), so lists of manifests with different roots can share a folder.

Labels are stable: ``OUT/labels.csv`` (label, identity, identity_name, class
folder) is written by the first export into ``OUT`` and reused by every later
one (``append``), so the same identity always gets the same label and the same
class folder, whichever manifest it comes from; a new identity gets the next
free label. ``labels_file`` starts from a given map instead (then every
identity must be in it). Class folders are named after the identity (its
name where the manifest has one, else its id, never padded to the largest id).
A non-empty ``OUT`` is refused unless ``append``; an existing list is never
overwritten. Every image a manifest lists must exist (the missing are named).

Rows whose path escapes the manifest root (absolute, or through ``..``) are
refused unless ``allow_outside`` is set: a manifest from someone else must
not make us link or copy arbitrary files. Nothing is ever written outside
``out``: every name that becomes a file or folder there (sample ids, class
folders from a label map or from identity names, the list name) goes through
``augment.names.component``, which refuses anything but one plain component.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from augment import manifest as mf
from augment.io import read_rgb
from augment.labelmap import LABELS, ExportError, ExportUsageError, LabelMap  # noqa: F401 (the API)
from augment.names import UnsafeName, child, component

FORMATS = ("imagefolder", "lst", "insightface", "csv")


def check_paths_inside(manifest: mf.Manifest, allow_outside: bool = False) -> None:
    """Refuse rows that point outside the manifest root."""
    if allow_outside:
        return
    for i, p in enumerate(manifest.df["path"]):
        pp = PurePosixPath(p)
        if pp.is_absolute() or Path(p).is_absolute() or ".." in pp.parts:
            src = manifest.file or "manifest"
            raise ExportError(
                f"{src}: row {i} path {p!r} escapes the manifest root {manifest.root}; "
                "pass --allow-outside-root if you trust this manifest"
            )


def check_files_exist(manifests: Sequence[mf.Manifest]) -> None:
    """Every listed image must be on disk; the error names the missing ones."""
    missing = [str(m.abspath(p)) for m in manifests for p in m.df["path"] if not m.abspath(p).is_file()]
    if missing:
        raise ExportError(f"{len(missing)} image(s) listed in the manifest(s) are missing: "
                          f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")


# --------------------------------------------------------------------------- #
# The label map
# --------------------------------------------------------------------------- #


def _link_or_copy(src: Path, dst: Path) -> str:
    try:
        os.link(src, dst)
        return "link"
    except OSError:
        shutil.copy2(src, dst)
        return "copy"


def _rows(manifests: Sequence[mf.Manifest]) -> pd.DataFrame:
    """All rows, with ``abspath`` (resolved) added, in manifest order; indexed by (manifest, row)."""
    frames = [m.df.assign(abspath=[str(m.abspath(p).resolve()) for p in m.df["path"]]) for m in manifests]
    return pd.concat(frames, keys=[str(m.file or m.root) for m in manifests], names=["manifest", "row"])


def export_imagefolder(df: pd.DataFrame, labels: LabelMap, out: Path, name: str) -> dict:
    dup = df["sample_id"][df["sample_id"].duplicated()]
    if len(dup):  # one file per sample id: a second row would silently replace the first
        raise ExportError(f"{len(dup)} row(s) repeat a sample_id of another row (a manifest given twice?): "
                          f"{', '.join(dup.iloc[:3])}")
    counts = {"link": 0, "copy": 0}
    made: set[str] = set()
    for (file, row), sid, src, ident in tqdm(zip(df.index, df["sample_id"], df["abspath"], df["identity"]),
                                             total=len(df), desc="export imagefolder", unit="img",
                                             disable=len(df) < 500):
        folder = component(labels.folder(ident), f"{file}: row {row}: identity {ident}'s class folder")
        if folder not in made:
            (out / folder).mkdir(exist_ok=True)
            made.add(folder)
        dst = child(out / folder, f"{sid}{Path(src).suffix}", f"{file}: row {row}: sample_id")
        if dst.exists():
            dst.unlink()
        counts[_link_or_copy(Path(src), dst)] += 1
    return counts


def _new_list(out: Path, name: str, ext: str) -> Path:
    try:
        path = child(out, f"{name}{ext}", "the list's name (--name)")
    except UnsafeName as e:  # how the export was asked for: a usage error
        raise ExportUsageError(str(e)) from None
    if path.exists():
        raise ExportUsageError(f"{path} exists; an export never overwrites a list (give another --name)")
    return path


def export_lst(df: pd.DataFrame, labels: LabelMap, out: Path, name: str) -> dict:
    path = _new_list(out, name, ".lst")
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for i, (src, ident) in enumerate(zip(df["abspath"], df["identity"])):
            fh.write(f"{i}\t{labels.label(ident)}\t{src}\n")
    return {"lst": str(path)}


def _image_size(df: pd.DataFrame) -> tuple[int, int]:
    """(height, width) shared by every row (insightface's property file has one size)."""
    sizes: dict[tuple[int, int], str] = {}  # size -> the first row that has it
    for (file, row), w, h, src in zip(df.index, df["width"], df["height"], df["abspath"]):
        if pd.isna(w) or pd.isna(h):
            h, w = read_rgb(src).shape[:2]
        sizes.setdefault((int(h), int(w)), f"{file}: row {row}")
    if len(sizes) != 1:
        (a, first), (b, other) = list(sizes.items())[:2]
        raise ExportError(f"insightface needs one image size: {other} is {b[0]}x{b[1]} px (height x width), "
                          f"{first} is {a[0]}x{a[1]} px")
    return next(iter(sizes))


def export_insightface(df: pd.DataFrame, labels: LabelMap, out: Path, name: str) -> dict:
    path = _new_list(out, name, ".lst")
    h, w = _image_size(df)
    prop = out / "property"
    if prop.is_file():
        old = prop.read_text().strip().split(",")
        if len(old) == 3 and (int(old[1]), int(old[2])) != (h, w):
            raise ExportUsageError(f"{prop}: says {old[1]}x{old[2]} px, these images are {h}x{w} px")
    lab = np.array([labels.label(i) for i in df["identity"]])
    order = np.argsort(lab, kind="stable")  # one contiguous run per label, as face2rec2.read_list needs
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for k in order:
            fh.write(f"1\t{df['abspath'].iloc[k]}\t{lab[k]}\n")
    prop.write_text(f"{len(labels.rows)},{h},{w}\n")
    return {"lst": str(path), "property": str(prop)}


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return json.dumps(v.tolist())
    if isinstance(v, list):
        return json.dumps(v)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return v


def export_csv(df: pd.DataFrame, labels: LabelMap, out: Path, name: str) -> dict:
    path = _new_list(out, name, ".csv")
    cols = [c for c in df.columns if c != "abspath"]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*cols, "label", "abspath"])
        for row in df.itertuples(index=False):
            d = row._asdict()
            w.writerow([*(_jsonable(d[c]) for c in cols), labels.label(d["identity"]), d["abspath"]])
    return {"csv": str(path)}


EXPORTERS = {"imagefolder": export_imagefolder, "lst": export_lst, "insightface": export_insightface,
             "csv": export_csv}


def export(
    manifest_paths: Sequence[Path] | Path, fmt: str, out: Path, allow_outside: bool = False, *,
    append: bool = False, labels_file: Path | None = None, name: str = "", splits: Sequence[str] = (),
) -> dict:
    """Export one or more images manifests into ``out`` as one training set (see the module docstring).
    ``splits``: only rows of these splits (e.g. ``train``: no test person leaks into training)."""
    paths = [Path(manifest_paths)] if isinstance(manifest_paths, (str, Path)) else [Path(p) for p in manifest_paths]
    if fmt not in EXPORTERS:
        raise ExportUsageError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    if name and fmt == "imagefolder":
        raise ExportUsageError("--name names a list file, and the imagefolder format writes none: drop --name "
                               "(the class folders are the export)")
    out = Path(out)
    manifests = [mf.read(p, "images") for p in paths]
    for m in manifests:
        check_paths_inside(m, allow_outside)
    check_files_exist(manifests)
    existing = out / LABELS
    if out.exists() and any(out.iterdir()):
        if not append:
            raise ExportUsageError(f"{out} is not empty; pass --append to add to the training set there "
                                   f"(its {LABELS} is reused) or choose an empty folder")
        if not existing.is_file():
            raise ExportUsageError(f"{out}: --append needs the {LABELS} of an earlier export there; none found")
    if labels_file is not None:
        labels = LabelMap.read(Path(labels_file))
        if existing.is_file() and LabelMap.read(existing).rows != labels.rows:
            raise ExportUsageError(f"--labels {labels_file} differs from the label map already in {existing}")
    elif existing.is_file():
        labels = LabelMap.read(existing)
    else:
        labels = LabelMap({})
    df = _rows(manifests)
    if splits:
        present = sorted(set(df["split"].dropna()))
        df = df[df["split"].isin(list(splits))]
        if df.empty:
            raise ExportUsageError(f"--split {', '.join(splits)}: no row of {', '.join(str(p) for p in paths)} is in "
                                   f"that split (the splits there: {', '.join(present) or 'none'})")
    labels.extend(df, ", ".join(str(p) for p in paths), fixed=labels_file is not None)
    out.mkdir(parents=True, exist_ok=True)
    name = name or (paths[0].stem if len(paths) == 1 else "train")
    info = EXPORTERS[fmt](df, labels, out, name)
    labels.write(existing)
    return {"rows": len(df), "identities": int(df["identity"].nunique()), "new_identities": labels.added,
            "labels": str(existing), "manifests": [str(p) for p in paths], "splits": sorted(set(df["split"].dropna())),
            **info}
