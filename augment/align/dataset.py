"""Aligning a whole images manifest: chunks, worker processes, resume, rejects.

``align_dataset`` is the one library function behind both the ``align`` stage
and ``augment align``. Rows are cut into fixed chunks of ``CHUNK_ROWS`` in
source order; each chunk is aligned by a worker (its own MTCNN, one torch
thread) that writes the aligned images, and the parent records the chunk's
results in ``parts/<prefix>/<chunk>.json``. A rerun after an interrupt skips
the chunks already recorded, and because the chunking depends only on the rows,
the assembled manifest has exactly the rows of an uninterrupted run, in source
order.

Per row the alignment mode is ``mtcnn`` (detect), ``landmarks`` (the row's 5
points), ``prealigned`` (a CelebA-style aligned crop of any size: CelebA's mean
landmarks scaled to the image) or ``none`` (already aligned: centre square,
resized). Under ``auto`` and ``landmarks`` the rows that carry landmarks use
them, and ``missing_landmarks`` decides for the others: ``prealigned``,
``mtcnn``, ``reject`` (reason ``no_landmarks``), or ``auto`` = ``mtcnn`` under
``auto`` and ``reject`` under ``landmarks``. Landmarks measured on another size
of the image (``landmark_frame`` in the source manifest's extra, e.g. CelebA's
178x218) are scaled to the image's own size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from augment import manifest as mf
from augment.align.chunk import Item, Settings, align_chunk, aligned_record, work
from augment.align.templates import template
from augment.align.warp import similarity
from augment.config import AlignConfig
from augment.data.images import ImageDecodeError, decode
from augment.fs import sync_all, write_json

log = logging.getLogger("augment.align")

CHUNK_ROWS = 64
PART_VERSION = 1
NO_GEOMETRY = ("no_face", "low_probability", "too_small", "no_landmarks", "bad_landmarks", "detector_error")

# Where the faces sit in an evaluation image that MTCNN missed, as fractions of
# its width and height: the median MTCNN landmarks of the 1,549 LFW
# deep-funneled images of the project's test sample (LFW's faces are centred).
# Used only when no image of the set was detected at all; otherwise the median
# of the set's own detections is used.
CENTRED_FACE = np.array(
    [[0.4189, 0.4536], [0.5879, 0.4500], [0.5050, 0.5506], [0.4331, 0.6361], [0.5816, 0.6331]]
)


# --------------------------------------------------------------------------- #
# Modes
# --------------------------------------------------------------------------- #


def _landmarks_of(value) -> tuple[float, ...] | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size != 10:
        return None
    return tuple(float(v) for v in arr)


MODES = ("auto", "mtcnn", "landmarks", "prealigned", "none")
MISSING_LANDMARKS = ("auto", "prealigned", "mtcnn", "reject")


def resolve_modes(df: pd.DataFrame, mode: str, missing_landmarks: str = "auto") -> list[str]:
    """The alignment mode of each row.

    ``auto`` and ``landmarks``: ``landmarks`` where a row has them; the others
    follow ``missing_landmarks`` (``reject`` keeps them in ``landmarks`` mode,
    which rejects them with reason ``no_landmarks``; ``auto`` = ``mtcnn`` under
    ``auto``, ``reject`` under ``landmarks``). Any other mode applies to every row.
    """
    if mode not in MODES:
        raise ValueError(f"unknown alignment mode {mode!r}; known: {', '.join(MODES)}")
    if missing_landmarks not in MISSING_LANDMARKS:
        raise ValueError(f"unknown missing_landmarks {missing_landmarks!r}; known: {', '.join(MISSING_LANDMARKS)}")
    if mode not in ("auto", "landmarks"):
        return [mode] * len(df)
    if missing_landmarks == "auto":
        missing_landmarks = "mtcnn" if mode == "auto" else "reject"
    without = "landmarks" if missing_landmarks == "reject" else missing_landmarks
    return ["landmarks" if _landmarks_of(v) is not None else without for v in df["landmarks"]]


# --------------------------------------------------------------------------- #
# Chunks, resume, assembly
# --------------------------------------------------------------------------- #


@dataclass
class AlignResult:
    """``aligned``: images manifest rooted at the output folder; ``rejects``: rooted
    at the source root; ``stats``: counts, also stored in ``aligned.meta['extra']``."""

    aligned: mf.Manifest
    rejects: mf.Manifest
    stats: dict


class _Parts:
    """Chunk results on disk: ``parts/<prefix>/settings.json`` + one JSON file per chunk."""

    def __init__(self, out_dir: Path, prefix: str, digest: str) -> None:
        self.folder = out_dir / "parts" / prefix
        self.images = out_dir / prefix
        self.digest = digest

    def prepare(self) -> set[int]:
        """Clear parts made with other settings or rows; return the chunks already done."""
        marker = self.folder / "settings.json"
        if marker.is_file():
            try:
                same = json.loads(marker.read_text()).get("digest") == self.digest
            except (OSError, json.JSONDecodeError):
                same = False
            if not same:
                log.info("alignment settings or rows changed: clearing %s and %s", self.folder, self.images)
                shutil.rmtree(self.folder, ignore_errors=True)
                shutil.rmtree(self.images, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not marker.is_file():
            marker.write_text(json.dumps({"digest": self.digest, "version": PART_VERSION}))
        return {int(p.stem) for p in self.folder.glob("[0-9]*.json")}

    def write(self, chunk: int, records: list[dict]) -> None:
        # a chunk counts as done only once its whole record is on disk
        sync_all()  # the chunk's crops are on disk before the record that lists them
        write_json(self.folder / f"{chunk:06d}.json", records, indent=None, sort_keys=False)

    def read(self, chunk: int) -> list[dict]:
        return json.loads((self.folder / f"{chunk:06d}.json").read_text())


def landmark_frame(source: mf.Manifest) -> tuple[int, int] | None:
    """(width, height) the source's landmarks were measured on, when its reader says so."""
    frame = source.meta.get("extra", {}).get("landmark_frame")
    return None if frame is None else (int(frame[0]), int(frame[1]))


def _items(source: mf.Manifest, modes: list[str]) -> list[Item]:
    df = source.df
    frame = landmark_frame(source)
    return [
        Item(i, sid, src, rel, str(source.abspath(rel)), mode, _landmarks_of(lm), frame)
        for i, (sid, src, rel, lm, mode) in enumerate(
            zip(df["sample_id"], df["source"], df["path"], df["landmarks"], modes)
        )
    ]


def _digest(items: list[Item], s: Settings, source_root: Path) -> str:
    payload = {k: v for k, v in asdict(s).items() if k != "io_threads"}
    h = hashlib.sha256(json.dumps({"v": PART_VERSION, "settings": payload, "root": str(source_root.resolve()),
                                   "rows": len(items)}, sort_keys=True).encode())
    for it in items:
        h.update(json.dumps([it.sample_id, it.rel, it.mode, it.landmarks, it.landmark_frame]).encode())
    return h.hexdigest()


def _run_chunks(todo: list[tuple[int, list[Item]]], s: Settings, out_dir: Path, prefix: str,
                workers: int) -> Iterator[tuple[int, list[dict]]]:
    """Chunk results as they finish: worker processes on CPU, in-process on a GPU."""
    if workers <= 1 or len(todo) <= 1 or s.device != "cpu":
        for cid, items in todo:
            yield cid, align_chunk(items, s, out_dir, prefix)
        return
    from joblib import Parallel, delayed

    par = Parallel(n_jobs=min(workers, len(todo)), return_as="generator_unordered")
    yield from par(delayed(work)(cid, items, s, out_dir, prefix) for cid, items in todo)


def _fallback_layout(records: list[dict]) -> tuple[np.ndarray, str]:
    """(5, 2) landmark positions as fractions of (width, height) for a centred crop."""
    rel = [np.asarray(r["landmarks"]).reshape(5, 2) / [r["src_w"], r["src_h"]]
           for r in records if r["kind"] == "aligned" and r.get("landmarks") is not None]
    if rel:
        return np.median(np.stack(rel), axis=0), f"median landmarks of the set's {len(rel)} aligned faces"
    return CENTRED_FACE, "the LFW median face position"


def _centre_crop(item: Item, record: dict, layout: np.ndarray, s: Settings, out_dir: Path, prefix: str) -> dict:
    img = decode(item.file, max_pixels=s.max_pixels)
    w, h = img.source_size
    m = similarity(layout * [w, h], template(s.template, s.size))
    out = aligned_record(item, 0, img.pixels, m, img.scale, s, out_dir, prefix, img.source_size)
    out.update(mode="centre_crop", landmarks=None, reason=record["reason"], detail=record["detail"])
    return out


def _image_row(src: dict, r: dict, size: int) -> dict:
    return {
        "sample_id": r["sample_id"], "path": r["path"], "identity": src["identity"],
        "identity_name": src["identity_name"], "split": src["split"], "source": src["source"],
        "attributes": src["attributes"], "landmarks": r["landmarks"], "bbox": r["bbox"],
        "det_prob": r["det_prob"], "transform": r["transform"], "width": size, "height": size,
        "sha256": r["sha256"],
    }


def align_dataset(
    source: mf.Manifest, cfg: AlignConfig, mode: str, out_dir: Path | str, *, prefix: str = "train",
    role: str = "train", device: str = "cpu", workers: int = 1, progress: bool = True,
    missing_landmarks: str = "auto",
) -> AlignResult:
    """Align every row of the images manifest ``source`` into ``out_dir/<prefix>/``.

    mode: auto | mtcnn | landmarks | prealigned | none, and missing_landmarks:
    auto | prealigned | mtcnn | reject for rows without landmarks (see the
    module docstring); how many rows took each way is logged and kept in the
    stats (``modes``, ``missing_landmarks``, ``landmarks_rescaled``). role:
    ``eval`` images without a usable face are centre-cropped (when
    ``cfg.eval_fallback == "centre_crop"``) instead of rejected, so that pairs
    never lose an image; such rows have null landmarks and det_prob and are
    listed in the manifest's ``extra``. Work done before an interrupt is kept in
    ``out_dir/parts/<prefix>/`` and not redone.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    modes = resolve_modes(source.df, mode, missing_landmarks)
    items = _items(source, modes)
    _log_modes(prefix, mode, missing_landmarks, items)
    s = Settings.from_config(cfg, device, io_threads=workers if device != "cpu" else 1)
    if role == "eval" and s.keep_all:
        s = replace(s, keep_all=False)  # pairs name images, not faces: one face per evaluation image
    parts = _Parts(out_dir, prefix, _digest(items, s, source.root))
    done = parts.prepare()
    chunks = [items[i : i + CHUNK_ROWS] for i in range(0, len(items), CHUNK_ROWS)]
    todo = [(c, rows) for c, rows in enumerate(chunks) if c not in done]
    if done:
        log.info("align %s: resuming, %d of %d chunk(s) already done", prefix, len(chunks) - len(todo), len(chunks))
    n_done = sum(len(chunks[c]) for c in done if c < len(chunks))
    with tqdm(total=len(items), initial=n_done, unit="img", desc=f"align {prefix}", disable=not progress) as bar:
        for cid, records in _run_chunks(todo, s, out_dir, prefix, workers):
            parts.write(cid, records)
            bar.update(len(chunks[cid]))

    records = [r for c in range(len(chunks)) for r in parts.read(c)]
    fallback = role == "eval" and cfg.eval_fallback == "centre_crop"
    layout, layout_from = _fallback_layout(records) if fallback else (None, "")
    rows = source.df.to_dict("records")
    aligned, rejects, fallen = [], [], []
    for r in records:
        src = rows[r["row"]]
        if r["kind"] == "reject" and fallback and r["reason"] in NO_GEOMETRY:
            try:
                r = _centre_crop(items[r["row"]], r, layout, s, out_dir, prefix)
                fallen.append(r)
            except ImageDecodeError as e:  # changed on disk since it was read: keep it a reject
                r = {**r, "reason": e.reason, "detail": e.detail}
        if r["kind"] == "aligned":
            aligned.append(_image_row(src, r, s.size))
        else:
            rejects.append({"sample_id": r["sample_id"], "path": src["path"], "reason": r["reason"],
                            "detail": r["detail"]})

    stats = _stats(modes, records, rejects, fallen, aligned, s, role)
    stats["missing_landmarks"] = {"policy": missing_landmarks, **_missing_ways(mode, items)}
    frame = landmark_frame(source)
    if frame is not None:
        rescaled = sum(r["kind"] == "aligned" and r["mode"] == "landmarks" and (r["src_w"], r["src_h"]) != frame
                       for r in records)
        stats["landmarks_rescaled"] = {"count": rescaled, "from": list(frame)}
        if rescaled:
            log.info("align %s: %d image(s) are not %dx%d: their landmarks were scaled to the image's size",
                     prefix, rescaled, *frame)
    if fallen:
        stats["centre_crop_fallback"] = {"count": len(fallen), "layout": layout_from,
                                         "sample_ids": [r["sample_id"] for r in fallen]}
        log.warning("align %s: %d image(s) without a usable face were centre-cropped (%s), not dropped; "
                    "their rows have null det_prob and landmarks: %s", prefix, len(fallen), layout_from,
                    ", ".join(rows[r["row"]]["path"] for r in fallen[:5]) + (" ..." if len(fallen) > 5 else ""))
    seconds = time.perf_counter() - t0
    log.info("align %s: %d image(s) -> %d aligned face(s), %d reject(s) %s in %.1f s",
             prefix, len(items), len(aligned), len(rejects), stats["rejects"] or "", seconds)
    out = mf.Manifest("images", mf.frame("images", aligned), out_dir, {"extra": stats})
    rej = mf.Manifest("rejects", mf.frame("rejects", rejects), source.root, {"extra": {"role": role}})
    return AlignResult(out, rej, stats)


def _missing_ways(mode: str, items: list[Item]) -> dict[str, int]:
    """How the rows without landmarks are aligned: {prealigned | mtcnn | reject: rows}."""
    ways: dict[str, int] = {}
    if mode in ("auto", "landmarks"):
        for it in items:
            if it.landmarks is None:
                way = "reject" if it.mode == "landmarks" else it.mode
                ways[way] = ways.get(way, 0) + 1
    return ways


def _log_modes(prefix: str, mode: str, missing_landmarks: str, items: list[Item]) -> None:
    """One line saying how many rows take each way (landmarks, and the missing-landmark policy)."""
    if mode not in ("auto", "landmarks"):
        log.info("align %s: %d image(s), mode %s", prefix, len(items), mode)
        return
    n_lm = sum(it.landmarks is not None for it in items)
    how = ", ".join(f"{n} -> {w}" for w, n in _missing_ways(mode, items).items()) or "none"
    log.info("align %s: %d image(s), %d with a landmark row; %d without one (missing_landmarks: %s): %s",
             prefix, len(items), n_lm, len(items) - n_lm, missing_landmarks, how)


def alignment_of(aligned: mf.Manifest) -> dict | None:
    """``{"template", "size"}`` an aligned manifest was made with (from the stats
    ``_stats`` writes into its extra), or None for a manifest made otherwise."""
    extra = aligned.meta.get("extra") or {}
    if extra.get("template") and extra.get("size"):
        return {"template": str(extra["template"]), "size": int(extra["size"])}
    return None


def _stats(modes, records, rejects, fallen, aligned, s: Settings, role: str) -> dict:
    by_mode: dict[str, int] = {}
    for m in modes:
        by_mode[m] = by_mode.get(m, 0) + 1
    reasons: dict[str, int] = {}
    for r in rejects:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    detected_rows = {r["row"] for r in records if r["kind"] == "aligned" and r["mode"] == "mtcnn"}
    n_mtcnn = by_mode.get("mtcnn", 0)
    stats = {
        "role": role, "template": s.template, "size": s.size, "image_format": s.image_format,
        "modes": by_mode, "aligned_faces": len(aligned), "rejects": reasons,
        "centre_crop_fallback": {"count": len(fallen)},
    }
    if n_mtcnn:
        stats["detection_rate"] = round(len(detected_rows) / n_mtcnn, 6)
        stats["detected_images"] = len(detected_rows)
    return stats
