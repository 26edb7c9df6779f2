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
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from augment import manifest as mf
from augment.io import read_rgb
from augment.fs import write_atomic
from augment.names import UnsafeName, child, component

LABELS = "labels.csv"
LABEL_FIELDS = ["label", "identity", "identity_name", "folder"]
FORMATS = ("imagefolder", "lst", "insightface", "csv")
RESERVED = {LABELS, "property"}  # files of the export itself: never a class folder


class ExportError(Exception):
    """A manifest that cannot be exported safely; names the row and path."""


class ExportUsageError(ExportError):
    """An export refused because of how it was asked for (a non-empty --out, a label map
    that does not fit); the CLI exits 2."""


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


def _safe(name: str) -> str:
    """A class folder name from an identity name: letters, digits, '.', '_', '-' only."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return s[:100]


@dataclass
class LabelMap:
    """identity -> (label, identity_name, folder); ``added``: identities new in this export."""

    rows: dict[int, dict]
    added: int = 0
    file: Path | None = None  # where it was read from, and each identity's line there: errors name them
    lines: dict[int, int] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> "LabelMap":
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                if reader.fieldnames is None or not {"label", "identity"} <= set(reader.fieldnames):
                    raise ExportUsageError(f"{path}: a label map needs the columns label,identity "
                                           f"(found {reader.fieldnames})")
                rows, lines = {}, {}
                for no, r in enumerate(reader, 2):
                    try:
                        ident, label = int(r["identity"]), int(r["label"])
                    except (TypeError, ValueError):
                        raise ExportUsageError(f"{path}:{no}: label and identity must be integers, got {r}") from None
                    name = r.get("identity_name") or str(ident)
                    folder = r.get("folder") or _safe(name) or str(ident)
                    try:  # a label map travels too: its folder must stay one folder inside --out
                        component(folder, f"{path}:{no}: folder")
                    except UnsafeName as e:
                        raise ExportUsageError(str(e)) from None
                    if folder in RESERVED:
                        raise ExportUsageError(f"{path}:{no}: folder {folder!r} is the name of a file the export "
                                               "writes; give that identity another class folder")
                    rows[ident] = {"label": label, "identity_name": name, "folder": folder}
                    lines[ident] = no
        except OSError as e:
            raise ExportUsageError(f"{path}: cannot read the label map: {e.strerror or e}") from e
        except csv.Error as e:  # a field over the csv module's limit, a broken quote
            raise ExportUsageError(f"{path}:{reader.reader.line_num}: not a readable CSV row: {e}") from None
        except UnicodeDecodeError as e:
            raise ExportUsageError(f"{path}: not UTF-8 text (byte {e.start}); a label map is a UTF-8 CSV") from None
        first: dict[tuple, int] = {}  # (column, value) -> the identity that has it
        for ident, r in rows.items():
            for key, what in (("label", "label"), ("folder", "class folder")):
                other = first.setdefault((key, r[key]), ident)
                if other != ident:
                    raise ExportUsageError(f"{path}:{lines[ident]}: the {what} {r[key]!r} is given to identity "
                                           f"{other} (line {lines[other]}) too")
        return cls(rows, file=path, lines=lines)

    def write(self, path: Path) -> None:
        def rows(tmp: Path) -> None:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(LABEL_FIELDS)
                for ident, r in sorted(self.rows.items(), key=lambda kv: kv[1]["label"]):
                    w.writerow([r["label"], ident, r["identity_name"], r["folder"]])

        write_atomic(path, rows)

    def extend(self, df: pd.DataFrame, source: str, fixed: bool) -> None:
        """Add the identities of ``df`` that the map lacks (refused when ``fixed``);
        an identity whose name differs from the map's is refused either way."""
        names = df.groupby("identity", sort=True)["identity_name"].first()
        new = []
        for ident, name in names.items():
            ident = int(ident)
            name = str(ident) if name is None or (isinstance(name, float) and np.isnan(name)) else str(name)
            known = self.rows.get(ident)
            if known is None:
                new.append((ident, name))
            elif known["identity_name"] != name and known["identity_name"] != str(ident):
                where = f"{self.file}:{self.lines[ident]}" if ident in self.lines else "the label map"
                raise ExportUsageError(
                    f"{source}: identity {ident} is named {name!r}, but {where} calls it "
                    f"{known['identity_name']!r}; these are not the same training set's identities"
                )
        if new and fixed:
            shown = ", ".join(f"{i} ({n})" for i, n in new[:5])
            raise ExportUsageError(f"{source}: {len(new)} identit(y/ies) are not in the given label map "
                                   f"{self.file or ''}: {shown}"
                                   f"{' ...' if len(new) > 5 else ''}")
        label = max((r["label"] for r in self.rows.values()), default=-1) + 1
        used = {r["folder"] for r in self.rows.values()}
        for ident, name in new:
            folder = _safe(name) or str(ident)
            if folder in used or folder in RESERVED:  # two people with one name: keep them apart
                folder = f"{folder}-{ident}"
            used.add(component(folder, f"{source}: identity {ident}'s class folder"))
            self.rows[ident] = {"label": label, "identity_name": name, "folder": folder}
            label += 1
        self.added += len(new)

    def label(self, ident) -> int:
        return self.rows[int(ident)]["label"]

    def folder(self, ident) -> str:
        return self.rows[int(ident)]["folder"]


# --------------------------------------------------------------------------- #
# Formats
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
