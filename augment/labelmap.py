"""An export's label map: identity -> (label, identity name, class folder), kept in
``<out>/labels.csv`` so that every later export into the same folder gives an
identity the same label (``augment export --append``), and the errors an export
raises. A label map can come from elsewhere (``--labels``): every value that
becomes a path is checked (``augment.names``), naming the file and line.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from augment.fs import write_atomic
from augment.names import UnsafeName, component

LABELS = "labels.csv"
LABEL_FIELDS = ["label", "identity", "identity_name", "folder"]
RESERVED = {LABELS, "property"}  # files of the export itself: never a class folder


class ExportError(Exception):
    """A manifest that cannot be exported safely; names the row and path."""


class ExportUsageError(ExportError):
    """An export refused because of how it was asked for (a non-empty --out, a label map
    that does not fit); the CLI exits 2."""


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
