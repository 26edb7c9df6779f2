"""Turn an images manifest into what existing training jobs read.

- ``imagefolder``: ``OUT/<identity>/<sample_id>.<ext>`` (hard links where the
  filesystem allows, copies otherwise), the layout of torchvision's
  ImageFolder; identity folders are zero-padded so that sorted order is label
  order.
- ``lst``: an MXNet im2rec list, ``index<TAB>label<TAB>path`` per line, with
  contiguous labels and paths relative to the manifest root (pass that root
  to im2rec), plus ``labels.csv`` mapping label -> identity.
- ``csv``: every column, list columns as JSON, plus ``abspath``.

Rows whose path escapes the manifest root (absolute, or through ``..``) are
refused unless ``allow_outside`` is set: a manifest from someone else must
not make us link or copy arbitrary files.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm import tqdm

from augment import manifest as mf


class ExportError(Exception):
    """A manifest that cannot be exported safely; names the row and path."""


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


def _labels(identities) -> dict[int, int]:
    return {int(ident): k for k, ident in enumerate(sorted(set(int(i) for i in identities)))}


def _link_or_copy(src: Path, dst: Path) -> str:
    try:
        os.link(src, dst)
        return "link"
    except OSError:
        shutil.copy2(src, dst)
        return "copy"


def export_imagefolder(manifest: mf.Manifest, out: Path, allow_outside: bool = False) -> dict:
    check_paths_inside(manifest, allow_outside)
    df = manifest.df
    width = max(4, len(str(max((abs(int(i)) for i in df["identity"]), default=0))))
    counts = {"link": 0, "copy": 0}
    missing = [p for p in df["path"] if not manifest.abspath(p).is_file()]
    if missing:
        raise ExportError(f"{len(missing)} image(s) listed in the manifest are missing, first: {missing[:3]}")
    out.mkdir(parents=True, exist_ok=True)
    for sid, rel, ident in tqdm(zip(df["sample_id"], df["path"], df["identity"]), total=len(df),
                                desc="export imagefolder", unit="img", disable=len(df) < 500):
        folder = out / f"{int(ident):0{width}d}"
        folder.mkdir(exist_ok=True)
        dst = folder / f"{sid}{Path(rel).suffix}"
        if dst.exists():
            dst.unlink()
        counts[_link_or_copy(manifest.abspath(rel), dst)] += 1
    return {"rows": len(df), "identities": int(df["identity"].nunique()), **counts}


def export_lst(manifest: mf.Manifest, out: Path, allow_outside: bool = False) -> dict:
    check_paths_inside(manifest, allow_outside)
    df = manifest.df
    labels = _labels(df["identity"])
    out.mkdir(parents=True, exist_ok=True)
    name = (manifest.file.stem if manifest.file else "manifest") + ".lst"
    with open(out / name, "w", encoding="utf-8", newline="\n") as fh:
        for i, (rel, ident) in enumerate(zip(df["path"], df["identity"])):
            fh.write(f"{i}\t{labels[int(ident)]}\t{rel}\n")
    with open(out / "labels.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["label", "identity"])
        for ident, lab in labels.items():
            w.writerow([lab, ident])
    (out / "root.txt").write_text(str(manifest.root.resolve()) + "\n")
    return {"rows": len(df), "identities": len(labels), "lst": str(out / name), "root": str(manifest.root.resolve())}


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return json.dumps(v.tolist())
    if isinstance(v, list):
        return json.dumps(v)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return v


def export_csv(manifest: mf.Manifest, out: Path, allow_outside: bool = False) -> dict:
    check_paths_inside(manifest, allow_outside)
    df = manifest.df
    out.mkdir(parents=True, exist_ok=True)
    name = (manifest.file.stem if manifest.file else "manifest") + ".csv"
    with open(out / name, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*df.columns, "abspath"])
        for row in df.itertuples(index=False):
            w.writerow([*(_jsonable(v) for v in row), str(manifest.abspath(row.path).resolve())])
    return {"rows": len(df), "csv": str(out / name)}


EXPORTERS = {"imagefolder": export_imagefolder, "lst": export_lst, "csv": export_csv}


def export(manifest_path: Path, fmt: str, out: Path, allow_outside: bool = False) -> dict:
    m = mf.read(manifest_path, "images")
    return EXPORTERS[fmt](m, Path(out), allow_outside)
