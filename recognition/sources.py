"""Where embeddings come from: images found by the names a protocol uses, and models.

- ``ImageIndex``: the rows of an images manifest or an ``<identity>/<image>``
  folder, looked up by the paths a pairs file gives (exactly, through the
  aligned crop's source image, or by stem: ``.jpg`` pairs find ``.png`` crops);
- ``Model``: a recognizer checkpoint (embedded here) or a Parquet table of a
  user's own embeddings;
- ``resolve_models`` / ``models_from_recognizers``: the models ``augment
  evaluate`` and the ``evaluate`` stage compare.

Missing images, paths without an embedding and NaN embeddings are errors, never skipped.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from augment import manifest as mf
from augment.data.errors import DatasetError
from augment.names import problem, shown
from recognition.raw_images import Alignment, alignment_from_meta, alignment_of_run

IMAGE_EXTS = (".jpg", ".png", ".jpeg", ".bmp", ".webp")

log = logging.getLogger("augment.evaluate")


class ImageIndex:
    """Finds the row of an image from the path a pairs file (or a user) gives.

    ``frame`` columns: ``path`` (relative to the images root), ``file``
    (absolute), ``identity``; optional ``sample_id`` and ``source``. A key
    matches, in order: a ``path`` exactly; an aligned row whose ``sample_id`` is
    that of (its source, key), i.e. the original image of an aligned crop; a
    ``path`` differing only in the file extension.
    """

    def __init__(self, frame: pd.DataFrame, where: str, root: Path | None = None):
        self.frame = frame.reset_index(drop=True)
        self.where = where
        self.root = root  # the folder ``path`` is relative to (None for embedding tables)
        self._by_path = {p: i for i, p in enumerate(self.frame["path"])}
        self._by_sid: dict[str, int] = {}
        if "sample_id" in self.frame and "source" in self.frame:
            self._by_sid = {s: i for i, s in enumerate(self.frame["sample_id"]) if isinstance(s, str)}
            self._sources = sorted({s for s in self.frame["source"] if isinstance(s, str)})
        else:
            self._sources = []
        self._by_stem: dict[str, int] = {}
        for i, p in enumerate(self.frame["path"]):
            self._by_stem.setdefault(os.path.splitext(p)[0], i)

    @property
    def sources(self) -> list[str]:
        """The datasets its rows come from (a manifest's ``source`` column; none for a folder)."""
        return list(self._sources)

    def lookup(self, key: str) -> int | None:
        if key in self._by_path:
            return self._by_path[key]
        stem, ext = os.path.splitext(key)
        # The source image under the name given, then under the other image
        # extensions (LFW pairs name .jpg files; SynthFaces renders .png).
        variants = [key] + [stem + e for e in IMAGE_EXTS if e != ext.lower()]
        for src in self._sources:
            for k in variants:
                i = self._by_sid.get(mf.sample_id(src, k))
                if i is not None:
                    return i
        return self._by_stem.get(stem)

    def rows(self, keys: Sequence[str], problem: str = "image(s) named by the protocol are not in") -> np.ndarray:
        """Row index of every key; an error naming the missing ones (count + first few)."""
        idx = [self.lookup(k) for k in keys]
        missing = [k for k, i in zip(keys, idx) if i is None]
        if missing:
            raise DatasetError(
                f"{len(missing)} {problem} {self.where}: "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
            )
        return np.asarray(idx, dtype=np.int64)


def index_from_manifest(m: mf.Manifest, split: str | None = None) -> ImageIndex:
    df = m.df if split is None else m.df[m.df["split"] == split]
    frame = pd.DataFrame(
        {
            "path": df["path"].astype(str).to_numpy(),
            "file": [str(Path(m.root) / p) for p in df["path"]],
            "identity": df["identity"].to_numpy(),
            "sample_id": df["sample_id"].to_numpy(),
            "source": df["source"].to_numpy(),
            "split": df["split"].to_numpy(),
            "attributes": df["attributes"].to_numpy(),
        }
    )
    return ImageIndex(frame, str(m.file or m.root), Path(m.root))


def index_from_tree(root: Path) -> ImageIndex:
    """An ``<identity>/<image>`` folder of aligned faces."""
    from augment.data import lfw

    tree = lfw.load_tree(root).frame
    frame = pd.DataFrame(
        {"path": tree["path"], "file": [str(Path(root) / p) for p in tree["path"]], "identity": tree["identity"]}
    )
    return ImageIndex(frame, str(root), Path(root))


# --------------------------------------------------------------------------- #
# Models as sources of embeddings
# --------------------------------------------------------------------------- #


@dataclass
class Model:
    """One model to evaluate: a checkpoint (embedded here) or a table of embeddings.

    ``attributes``: the attributes its training set was augmented with (for the
    paper's columns); ``baseline``: whether it is the baseline.
    """

    name: str
    checkpoint: Path | None = None
    table: Path | None = None
    attributes: tuple[str, ...] = ()
    backbone: str | None = None  # expected backbone of the checkpoint
    baseline: bool = False
    alignment: Alignment | None = None  # how its training faces were aligned (checkpoints; None: unknown)
    _table_index: ImageIndex | None = field(default=None, repr=False)
    _table_emb: np.ndarray | None = field(default=None, repr=False)

    def embed(self, keys: Sequence[str], images: ImageIndex | None, *, device="cpu", batch_size: int = 128,
              workers: int = 0, cache: Path | None = None) -> np.ndarray:
        """Unit embeddings ``(len(keys), E)`` of the images the keys name."""
        if self.table is not None:
            return self._embed_table(keys)
        if images is None:
            raise DatasetError(f"model '{self.name}' is a checkpoint: give --images (the aligned images to embed)")
        idx = images.rows(keys)
        if cache is None:
            return self._embed_checkpoint(images.frame.iloc[idx], images.root, device, batch_size, workers, None)
        # With a cache, every image of the index is embedded once and kept, so the
        # protocols that share these images (lfw and attr-shift) embed them once.
        emb = self._embed_checkpoint(images.frame, images.root, device, batch_size, workers, cache)
        return emb[idx]

    def _embed_table(self, keys: Sequence[str]) -> np.ndarray:
        if self._table_index is None:
            frame, emb = read_embedding_table(self.table)
            self._table_index, self._table_emb = ImageIndex(frame, str(self.table)), emb
        rows = self._table_index.rows(keys, problem="image path(s) named by the protocol have no embedding in")
        return l2_normalize(self._table_emb[rows])

    def _embed_checkpoint(
        self, rows: pd.DataFrame, root: Path | None, device, batch_size, workers, cache: Path | None
    ) -> np.ndarray:
        from recognition.embed import embed_files, load_recognizer

        files = rows["file"].tolist()
        if cache is not None and cache.is_file():
            got = mf.read(cache, kind="embeddings").df
            have = dict(zip(got["path"], got["embedding"]))
            if all(p in have for p in rows["path"]):
                log.info("%s: %d embeddings reused from %s", self.name, len(rows), cache)
                return np.stack([np.asarray(have[p], dtype=np.float32) for p in rows["path"]])
        model, meta = load_recognizer(self.checkpoint, device, backbone=self.backbone)
        emb = embed_files(model, files, int(meta["image_size"]), batch_size, device, workers, desc=self.name)
        if cache is not None and root is not None:
            df = pd.DataFrame({"path": rows["path"].tolist(), "embedding": list(emb)})
            mf.write(mf.Manifest("embeddings", df, root), cache)
        return emb


def l2_normalize(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


def read_embedding_table(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A Parquet file with columns ``path`` and ``embedding`` (list of floats):
    (frame with path and identity, embeddings ``(N, E)`` float32). An optional
    ``identity`` column is kept; otherwise identities are the paths' folders."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise DatasetError(f"{path}: not a readable Parquet file: {e}") from e
    missing = [c for c in ("path", "embedding") if c not in table.column_names]
    if missing:
        raise DatasetError(f"{path}: an embeddings file needs columns 'path' and 'embedding'; missing {missing}")
    df = table.to_pandas()
    if df["path"].isna().any():
        raise DatasetError(f"{path}: column 'path' has {int(df['path'].isna().sum())} empty value(s)")
    dup = df["path"][df["path"].duplicated()]
    if len(dup):
        raise DatasetError(f"{path}: {len(dup)} path(s) appear twice, e.g. {dup.iloc[0]}")
    lens = df["embedding"].map(lambda v: -1 if v is None else len(v))
    if (lens <= 0).any() or lens.nunique() != 1:
        bad = df["path"][lens != lens.max()].head(3).tolist()
        raise DatasetError(f"{path}: embeddings must all have the same non-zero length; check {bad}")
    emb = np.stack([np.asarray(v, dtype=np.float32) for v in df["embedding"]])
    from recognition.embed import check_finite

    check_finite(emb, df["path"].tolist(), source=str(path))
    if "identity" in df:
        ident = df["identity"].to_numpy()
    else:
        ident = df["path"].map(lambda p: str(Path(p).parent)).to_numpy()
    frame = pd.DataFrame({"path": df["path"].astype(str), "file": df["path"].astype(str), "identity": ident})
    return frame, emb



def models_from_recognizers(recognizers: mf.Manifest) -> list[Model]:
    root = Path(recognizers.root)
    run_alignment = alignment_of_run(root)
    models = []
    for r in recognizers.df.itertuples():
        folder = root / r.path
        alignment = _checkpoint_alignment(folder) or run_alignment
        models.append(Model(
            name=r.name, checkpoint=folder, backbone=r.backbone, alignment=alignment,
            attributes=tuple(r.attributes if r.attributes is not None else ()), baseline=r.name == "baseline",
        ))  # fmt: skip
    return models


def _checkpoint_alignment(folder: Path) -> Alignment | None:
    meta = folder / "meta.json"
    if not meta.is_file():
        return None  # named by the manifest but gone: embedding it reports the missing checkpoint
    try:
        return alignment_from_meta(json.loads(meta.read_text()), str(meta))
    except (OSError, json.JSONDecodeError):
        return None  # unreadable: loading the checkpoint reports it


def resolve_models(spec: str, role: str) -> list[Model]:
    """``[NAME=]PATH`` -> models. PATH: a Parquet of embeddings, a recognizer
    checkpoint folder, a ``recognizers`` manifest, or a workdir / train_recognition
    folder holding one (baseline: its model named 'baseline'; augmented: the others).
    """
    name = None
    if "=" in spec and not Path(spec).exists():
        name, spec = spec.split("=", 1)
        if name and problem(name):  # it labels metrics, figure lines and an embeddings cache file
            from augment.config import ConfigError

            raise ConfigError(f"--{role} {shown(name)}=...: the model name {problem(name)}")
    path = Path(spec)
    if not path.exists():
        raise DatasetError(f"--{role} {spec}: no such file or folder")
    is_base = role == "baseline"
    if path.is_file():
        if _is_recognizers(path):
            return _pick(models_from_recognizers(mf.read(path, kind="recognizers")), role, name, path)
        return [Model(name or path.stem, table=path, baseline=is_base)]
    if (path / "meta.json").is_file():
        meta = json.loads((path / "meta.json").read_text())
        attrs = tuple(meta.get("attributes") or ())
        return [Model(name or meta.get("name") or path.name, checkpoint=path, attributes=attrs, baseline=is_base,
                      alignment=alignment_from_meta(meta, str(path / "meta.json")))]
    for cand in (path / "recognizers.parquet", path / "train_recognition" / "recognizers.parquet"):
        if cand.is_file():
            return _pick(models_from_recognizers(mf.read(cand, kind="recognizers")), role, name, cand)
    raise DatasetError(
        f"--{role} {spec}: not an embeddings Parquet file, a recognizer checkpoint folder (meta.json) "
        "or a run folder with train_recognition/recognizers.parquet"
    )


def _is_recognizers(path: Path) -> bool:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # noqa: BLE001 - not Parquet: read_embedding_table reports it
        return False
    return meta.get(b"augment.kind") == b"recognizers"


def _pick(models: list[Model], role: str, name: str | None, where: Path) -> list[Model]:
    if role == "baseline":
        picked = [m for m in models if m.name == "baseline"]
        if not picked:
            raise DatasetError(f"--baseline: {where} has no model named 'baseline' ({[m.name for m in models]})")
    else:
        picked = [m for m in models if m.name != "baseline"]
        if not picked:
            raise DatasetError(f"--augmented: {where} has no augmented models, only {[m.name for m in models]}")
    if name:
        if len(picked) > 1:
            raise DatasetError(f"NAME={where}: it holds {len(picked)} models; name a single checkpoint instead")
        picked[0].name = name
    for m in picked:
        m.baseline = role == "baseline"
    return picked


def load_pairs(path: Path) -> pd.DataFrame:
    """A pairs file or manifest, its names as written (``recognition.matching`` finds
    their images: ``x.jpg`` finds ``x.png`` where only that exists)."""
    from augment.data import lfw

    return mf.read(path, kind="pairs").df if path.suffix == ".parquet" else lfw.read_pairs(path)

