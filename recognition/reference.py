"""A pretrained reference beside the trained recognizers: ``--reference dlib`` / ``evaluate.reference: dlib``.

The reference is dlib's pretrained face recognizer (``augment.judges.identity``:
a 128-d ResNet trained by dlib's author on about 3 million faces, 99.38 % on LFW
by dlib's own account), which owes nothing to this project's models or data. It
is scored like every other model: on the same pairs, folds and protocol, from
the same aligned crops, as one more row of the table, named
``dlib (pretrained reference)`` so nobody takes it for a model the run trained.
A user sees how far their recognizer is from a strong one.

Score: the cosine similarity of the L2-normalised descriptors, like every other
row, so the protocol (threshold per fold, ROC, McNemar, bootstrap) is the same
code. dlib compares raw descriptors by Euclidean distance (one person below
0.6). On the LFW View 1 sample (arcface crops at 64 px, central face) the
cosine orders the pairs at least as well (AUC 0.9984 against 0.9979 for the
distance; best accuracy 0.985 against 0.981), and ``annotate`` reports dlib's
own rule (0.979 at 0.6) beside the row.
Descriptors are of the crop as it is (dlib's procedure: no mirror fusion).

Cache: the raw descriptors go to an ``embeddings`` Parquet (``OUT/embeddings/``
for ``augment evaluate``, ``embeddings/<eval|ident>/`` for the stage). Its
``extra`` records the judge's identity (sha256 of dlib's two model files, the
template, the chip size) and the sha256 of every crop it described: a row is
reused only when both match, so re-aligned crops or another model file are
described again, never served stale.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from augment import manifest as mf
from augment.data.errors import DatasetError
from recognition.raw_images import Alignment
from recognition.sources import ImageIndex, Model, l2_normalize

log = logging.getLogger("augment.evaluate")

REFERENCES = ("dlib",)
NAMES = {"dlib": "dlib (pretrained reference)"}
# The crops the reference is given when no checkpoint records an alignment (embedding tables
# only): dlib upsamples them to its 150 px chip; LFW View 1 sample: 0.984 (README).
DEFAULT_ALIGNMENT = Alignment("arcface", 112, "--reference dlib")


def problem(name: str) -> str | None:
    """Why ``name`` cannot be the reference here (unknown, or its extra missing); None when it can."""
    if name not in REFERENCES:
        return f"unknown reference {name!r}; known: {', '.join(REFERENCES)}"
    from augment.judges.identity import missing

    return missing()


@dataclass
class ReferenceModel(Model):
    """A pretrained recognizer as a ``Model``: it describes the aligned crops an
    ``ImageIndex`` names (``template``: the alignment template they were made with)."""

    template: str = "arcface"
    cache_file: Path | None = None  # where its descriptors are kept (else the ``cache`` it is given)
    reference: str = "dlib"

    def embed(self, keys: Sequence[str], images: ImageIndex | None, *, device="cpu", batch_size: int = 128,
              workers: int = 0, cache: Path | None = None) -> np.ndarray:
        """Unit descriptors ``(len(keys), 128)`` of the crops the keys name."""
        if images is None:
            raise DatasetError(f"{self.name}: give --images (the photos or aligned crops it describes)")
        rows = images.frame.iloc[images.rows(keys)]
        raw = self.descriptors(rows, images.root, self.cache_file or cache, batch_size)
        return l2_normalize(raw)

    def descriptors(self, rows: pd.DataFrame, root: Path | None, cache: Path | None,
                    batch_size: int = 128) -> np.ndarray:
        """Raw dlib descriptors ``(len(rows), 128)``, reusing the cache's rows whose crop and judge match."""
        from tqdm import tqdm

        digests = [mf.file_digest(f) for f in rows["file"]]
        ident = judge_identity(self.template)
        kept = _read_cache(cache, ident)
        out = np.zeros((len(rows), 128), np.float32)
        todo = []
        for i, (p, d) in enumerate(zip(rows["path"], digests)):
            hit = kept.get(p)
            if hit is not None and hit[0] == d:
                out[i] = hit[1]
            else:
                todo.append(i)
        if len(todo) < len(rows):
            log.info("%s: %d of %d descriptors reused from %s", self.name, len(rows) - len(todo), len(rows), cache)
        if todo:
            from augment.io import read_rgb
            from augment.judges.identity import IdentityJudge

            judge = IdentityJudge(self.template)
            files = rows["file"].tolist()
            for start in tqdm(range(0, len(todo), batch_size), desc=self.name, unit="batch"):
                part = todo[start : start + batch_size]
                out[part] = judge.descriptors([read_rgb(files[i]) for i in part])
            from recognition.embed import check_finite

            check_finite(out, [str(f) for f in files], source=self.name)
            if cache is not None and root is not None:
                for i in todo:
                    kept[rows["path"].iat[i]] = (digests[i], out[i])
                _write_cache(cache, root, ident, kept)
        return out


def reference_model(name: str, template: str, cache_file: Path | None = None) -> ReferenceModel:
    """The reference ``name`` (see ``REFERENCES``) on crops of ``template``; DatasetError when it cannot run."""
    why = problem(name)
    if why:
        raise DatasetError(why)
    return ReferenceModel(NAMES[name], template=template, cache_file=cache_file, reference=name)


def judge_identity(template: str) -> dict:
    """What the descriptors depend on: dlib's model files (sha256), the template, the chip size."""
    from augment.judges import identity as idj

    folder = idj.model_dir()
    if folder is None:
        raise DatasetError(idj.INSTALL)
    return {"judge": "dlib", "recognizer_sha256": _sha256(folder / idj.RECOGNIZER_FILE),
            "shape_predictor_sha256": _sha256(folder / idj.SHAPE_FILE), "template": template, "chip": idj.CHIP}


_SHA: dict[tuple[str, float, int], str] = {}


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_mtime, st.st_size)
    if key not in _SHA:
        _SHA[key] = mf.file_digest(path)
    return _SHA[key]


def _read_cache(cache: Path | None, ident: dict) -> dict[str, tuple[str, np.ndarray]]:
    """{path: (crop sha256, descriptor)} of a cache written by the same judge; {} otherwise."""
    if cache is None or not Path(cache).is_file():
        return {}
    try:
        got = mf.read(cache, kind="embeddings")
    except mf.ManifestError as e:
        log.warning("%s: unreadable descriptor cache, describing again (%s)", cache, e)
        return {}
    extra = got.meta.get("extra") or {}
    if extra.get("judge") != ident:
        log.info("%s: written by another judge or template; describing again", cache)
        return {}
    digests = extra.get("image_sha256") or {}
    return {p: (digests[p], np.asarray(e, np.float32)) for p, e in zip(got.df["path"], got.df["embedding"])
            if p in digests}


def _write_cache(cache: Path, root: Path, ident: dict, kept: dict[str, tuple[str, np.ndarray]]) -> None:
    paths = sorted(kept)
    df = pd.DataFrame({"path": paths, "embedding": [kept[p][1] for p in paths]})
    extra = {"judge": ident, "image_sha256": {p: kept[p][0] for p in paths}}
    mf.write(mf.Manifest("embeddings", df, root, {"extra": extra}), cache)


def crops_template(images: Path | None, alignment: Alignment | None) -> str:
    """The template of the crops the reference is given: the one an aligned images manifest
    records, else the models' alignment (or the one ``augment evaluate`` aligned with)."""
    if images is None:
        raise DatasetError("--reference: give --images (the photos or aligned crops it describes)")
    if Path(images).is_file():
        from augment.align.dataset import alignment_of

        got = alignment_of(mf.read(images, kind="images"))
        if got is not None:
            return got["template"]
    if alignment is not None:
        return alignment.template
    raise DatasetError(f"--reference: the template of the crops in {images} is unknown (no checkpoint records its "
                       "alignment): pass raw photos, or the aligned.parquet `augment align` writes")


def stage_reference(name: str, template: str) -> ReferenceModel | None:
    """The ``evaluate`` stage's reference (``evaluate.reference``; empty: none) on crops of ``template``."""
    return reference_model(name, template) if name else None


def annotate(result: dict, model: ReferenceModel, protocol, images: ImageIndex) -> None:
    """Say in ``result`` (``reference`` and a note) what the reference row is; on a pairs
    protocol also dlib's own rule: one person when the raw descriptors lie closer than 0.6."""
    from augment.judges.identity import RECOGNIZER_FILE, THRESHOLD, distances

    info = {"model": model.name, "recognizer": RECOGNIZER_FILE, "trained_by": "dlib's author, not this run",
            "template": model.template, "score": "cosine of the L2-normalised 128-d descriptors, no mirror fusion",
            "cache": str(model.cache_file) if model.cache_file else None}
    said = ""
    if protocol.is_pairs:
        raw = model.descriptors(images.frame.iloc[images.rows(protocol.keys)], images.root, model.cache_file)
        d = distances(raw[protocol.idx_a], raw[protocol.idx_b])
        acc = float(((d < THRESHOLD) == protocol.same).mean())
        info["fixed_threshold"] = {"distance": THRESHOLD, "accuracy": acc}
        said = f"; at dlib's own distance {THRESHOLD} (no threshold fitted): accuracy {acc:.4f}"
    result["reference"] = info
    result["notes"].append(f"{model.name}: dlib's pretrained recognizer, not trained by this run, scored on the "
                           f"same crops and pairs; its deltas are reference minus baseline{said}")
