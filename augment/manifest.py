"""Typed Parquet manifests: one pyarrow schema per kind, checked on write and read.

Every arrow of the pipeline is a manifest on disk. Rows point at files through a
``path`` column that is relative to the manifest's *root*: the manifest's own
folder by default, or a declared root (a dataset on disk) stored in the file
metadata. A run folder can therefore be moved as a whole.

File metadata (all strings): ``augment.schema_version``, ``augment.kind``,
``augment.root``, ``augment.pipeline``, ``augment.config_hash``,
``augment.package_version`` and ``augment.extra`` (a JSON object for
stage-specific counts, e.g. rows dropped per filter).

Writes are atomic: a temporary file in the same folder, fsync, then rename, so a
killed process never leaves a half-written manifest under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from augment import __version__
from augment import names
from augment.fs import write_atomic
from augment.schemas import (CLASSIFIERS, EMBEDDINGS, GENERATORS, GROUNDTRUTH, IMAGES,  # noqa: F401 (API)
                             NAME_COLUMNS, PAIRS, RECOGNIZERS, REJECTS, SCHEMA_VERSION, SCHEMAS)


class ManifestError(Exception):
    """A manifest that does not match its schema, or cannot be read."""


class ManifestWriteError(ManifestError, OSError):
    """A manifest that could not be written (full disk, no permission). Also an
    OSError, so callers that handle I/O errors still catch it; the file under the
    final name is the previous one, or none."""


def sample_id(source: str, path: str) -> str:
    """Stable 16-hex id of an image: same dataset and relative path, same id."""
    return hashlib.sha1(f"{source}:{path}".encode()).hexdigest()[:16]


@dataclass
class Manifest:
    """Rows of one kind plus the folder their paths are relative to.

    ``df`` holds exactly the kind's columns; list columns hold numpy arrays or
    lists; missing values are None/NaN.
    """

    kind: str
    df: pd.DataFrame
    root: Path
    meta: dict[str, Any] = field(default_factory=dict)
    file: Path | None = None  # where it was read from / written to

    def __post_init__(self) -> None:
        if self.kind not in SCHEMAS:
            raise ManifestError(f"unknown manifest kind {self.kind!r}; known: {', '.join(SCHEMAS)}")
        self.root = Path(self.root)

    def __len__(self) -> int:
        return len(self.df)

    def abspath(self, rel: str) -> Path:
        return self.root / rel

    def paths(self, column: str = "path") -> list[Path]:
        return [self.root / p for p in self.df[column]]


def empty(kind: str, root: Path | str, **meta: Any) -> Manifest:
    """A manifest of ``kind`` with no rows."""
    return Manifest(kind, SCHEMAS[kind].empty_table().to_pandas(), Path(root), dict(meta))


def frame(kind: str, rows: list[dict]) -> pd.DataFrame:
    """Rows (dicts; absent keys are null) -> a DataFrame with the kind's columns in order."""
    names = SCHEMAS[kind].names
    for i, r in enumerate(rows):
        extra = set(r) - set(names)
        if extra:
            raise ManifestError(f"{kind} row {i}: unknown column(s) {sorted(extra)}")
    if not rows:
        return SCHEMAS[kind].empty_table().to_pandas()
    return pd.DataFrame([{n: r.get(n) for n in names} for r in rows], columns=names)


def to_table(manifest: Manifest) -> pa.Table:
    """Validate against the kind's schema and convert; errors name the column."""
    schema = SCHEMAS[manifest.kind]
    df = manifest.df
    missing = [n for n in schema.names if n not in df.columns]
    extra = [c for c in df.columns if c not in schema.names]
    if missing or extra:
        raise ManifestError(
            f"{manifest.kind} manifest: columns do not match schema v{SCHEMA_VERSION}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else "")
        )
    arrays = []
    for f in schema:
        col = df[f.name]
        try:
            arr = pa.Array.from_pandas(col, type=f.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as e:
            raise ManifestError(f"{manifest.kind} manifest: column '{f.name}' is not {f.type}: {e}") from e
        if not f.nullable and arr.null_count:
            raise ManifestError(f"{manifest.kind} manifest: column '{f.name}' has {arr.null_count} null value(s)")
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema)


def _root_for(root: Path, folder: Path, tree: Path | None = None) -> str:
    """Store the root relative to the manifest folder when it lies inside it, is one
    of its ancestors, or lies inside ``tree`` (a run's workdir, which moves as a
    whole: a copied run then reads its own files, never the original's); absolute
    otherwise (a dataset elsewhere on disk stays where it is)."""
    root, folder = root.resolve(), folder.resolve()
    inside_tree = tree is not None and (tree.resolve() == root or tree.resolve() in root.parents)
    if root == folder or folder in root.parents or root in folder.parents or inside_tree:
        return Path(os.path.relpath(root, folder)).as_posix()
    return str(root)


def write(manifest: Manifest, path: Path | str, *, pipeline: str = "", config_hash: str = "",
          tree: Path | None = None) -> Path:
    """Validate and write atomically; returns the path written. ``tree``: a folder that
    moves as a whole with the manifest (the run's workdir): a root inside it is stored
    relative to the manifest."""
    path = Path(path)
    table = to_table(manifest)
    meta = {
        "augment.schema_version": SCHEMA_VERSION,
        "augment.kind": manifest.kind,
        "augment.root": _root_for(manifest.root, path.parent, tree),
        "augment.pipeline": pipeline or str(manifest.meta.get("pipeline", "")),
        "augment.config_hash": config_hash or str(manifest.meta.get("config_hash", "")),
        "augment.package_version": __version__,
        "augment.extra": json.dumps(manifest.meta.get("extra", {}), sort_keys=True),
    }
    table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    except OSError as e:
        err = ManifestWriteError(f"{path}: cannot write the manifest: {e.strerror or e}")
        err.errno = e.errno  # (strerror and filename stay unset: they would replace the message above)
        raise err from e
    manifest.file = path
    return path


def read(path: Path | str, kind: str | None = None) -> Manifest:
    """Read and validate a manifest; errors name the file and the column."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise ManifestError(f"{path}: not a readable Parquet file: {e}") from e
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    file_kind = meta.get("augment.kind")
    if file_kind is None:
        raise ManifestError(f"{path}: not an augment manifest (no 'augment.kind' in the file metadata)")
    if kind is not None and file_kind != kind:
        raise ManifestError(f"{path}: expected a {kind!r} manifest, found {file_kind!r}")
    version = meta.get("augment.schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(f"{path}: schema version {version!r}, this augment reads {SCHEMA_VERSION!r}")
    if file_kind not in SCHEMAS:
        raise ManifestError(f"{path}: unknown manifest kind {file_kind!r}")
    schema = SCHEMAS[file_kind]
    for f in schema:
        idx = table.schema.get_field_index(f.name)
        if idx < 0:
            raise ManifestError(f"{path}: column '{f.name}' is missing")
        if table.schema.field(idx).type != f.type:
            raise ManifestError(f"{path}: column '{f.name}' is {table.schema.field(idx).type}, expected {f.type}")
        if not f.nullable and table.column(idx).null_count:
            row = pc.index(pc.is_null(table.column(idx)), True).as_py()
            raise ManifestError(f"{path}: row {row}: column '{f.name}' has null values")
    extra_cols = [n for n in table.schema.names if n not in schema.names]
    if extra_cols:
        raise ManifestError(f"{path}: unexpected column(s) {extra_cols}")
    root_s = meta.get("augment.root", ".")
    root = Path(root_s) if Path(root_s).is_absolute() else (path.parent / root_s)
    try:
        extra = json.loads(meta.get("augment.extra", "{}") or "{}")
    except json.JSONDecodeError:
        extra = {}
    info = {
        "pipeline": meta.get("augment.pipeline", ""),
        "config_hash": meta.get("augment.config_hash", ""),
        "package_version": meta.get("augment.package_version", ""),
        "extra": extra,
    }
    _check_names(path, file_kind, table)
    df = table.select(schema.names).to_pandas()
    return Manifest(file_kind, df, root, info, file=path)


def _check_names(path: Path, kind: str, table: pa.Table) -> None:
    """Refuse a manifest whose sample ids are not of the form the tool writes, or
    whose name columns (``NAME_COLUMNS``) hold a value that is not one safe path
    component; the message names the file, the row (0-based) and the column."""
    for column, form in NAME_COLUMNS.get(kind, {}).items():
        col = table.column(column)
        if form == "id":  # vectorised: a manifest can hold a million ids
            ok = pc.match_substring_regex(col, f"^{names.SAMPLE_ID.pattern}$")
            bad = pc.and_kleene(pc.invert(ok), pc.is_valid(col))
            row = pc.index(bad, True).as_py()
            if row >= 0:
                raise ManifestError(
                    f"{path}: row {row}: {column} {names.shown(col[row].as_py())} is not a sample id of the "
                    "form augment writes (16 lowercase hex digits); this manifest was not made by augment "
                    "or was altered")
            continue
        for value in pc.unique(col).to_pylist():  # few distinct values (attribute names)
            why = None if value is None else names.problem(value)
            if why is not None:
                row = pc.index(col, value).as_py()
                raise ManifestError(f"{path}: row {row}: {column} {names.shown(value)} cannot be a file name: {why}")


def file_digest(path: Path | str) -> str:
    """sha256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
