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
points) or ``none`` (already aligned: centre square, resized); ``auto`` picks
``landmarks`` for rows that carry landmarks and ``mtcnn`` for the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pandas as pd

from augment import manifest as mf
from augment.align import detect as det
from augment.align.templates import template
from augment.align.warp import centre_square, compose, rescale, similarity, warp
from augment.config import AlignConfig
from augment.data.images import MAX_PIXELS, ImageDecodeError, decode

log = logging.getLogger("augment.align")

CHUNK_ROWS = 64
PIXEL_BUDGET = 48_000_000  # decoded pixels held at once by one worker (about 150 MB of RGB)
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


@dataclass(frozen=True)
class Settings:
    """What a worker needs besides its rows (picklable)."""

    template: str
    size: int
    select: str
    keep_all: bool
    min_prob: float
    min_face: int
    detect_max_side: int
    batch_size: int
    image_format: str
    device: str
    io_threads: int = 1  # decode/warp threads inside a chunk (the GPU path; CPU uses processes)
    max_pixels: int = MAX_PIXELS

    @classmethod
    def from_config(cls, cfg: AlignConfig, device: str, io_threads: int = 1) -> "Settings":
        return cls(cfg.template, cfg.size, cfg.select, cfg.keep_all, cfg.min_prob, cfg.min_face,
                   cfg.detect_max_side, cfg.batch_size, cfg.image_format, device, io_threads)


@dataclass(frozen=True)
class Item:
    """One source row as a worker sees it."""

    row: int
    sample_id: str
    source: str
    rel: str  # path relative to the source root
    file: str  # absolute path
    mode: str  # mtcnn | landmarks | none
    landmarks: tuple[float, ...] | None


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


def resolve_modes(df: pd.DataFrame, mode: str) -> list[str]:
    """The alignment mode of each row: ``auto`` -> landmarks where a row has them, else mtcnn."""
    if mode not in ("auto", "mtcnn", "landmarks", "none"):
        raise ValueError(f"unknown alignment mode {mode!r}; known: auto, mtcnn, landmarks, none")
    if mode != "auto":
        return [mode] * len(df)
    return ["landmarks" if _landmarks_of(v) is not None else "mtcnn" for v in df["landmarks"]]


# --------------------------------------------------------------------------- #
# Worker side: one chunk
# --------------------------------------------------------------------------- #


def _encode(img: np.ndarray, fmt: str) -> bytes:
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(f".{fmt}", bgr, params)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 HxWx3
        raise RuntimeError(f"cannot encode a {fmt} image")
    return buf.tobytes()


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def out_path(prefix: str, sample_id: str, fmt: str) -> str:
    """The aligned image of ``sample_id``, relative to the output folder (256 shard folders)."""
    return f"{prefix}/{sample_id[:2]}/{sample_id}.{fmt}"


def face_id(item: Item, k: int) -> str:
    """Face 0 keeps the row's sample_id; further faces (keep_all) get ids of their own."""
    return item.sample_id if k == 0 else mf.sample_id(item.source, f"{item.rel}#face{k}")


def _aligned(item: Item, k: int, image, m_src: np.ndarray, scale: tuple[float, float], s: Settings,
             out_dir: Path, prefix: str, src_size, face: det.Face | None = None,
             landmarks: np.ndarray | None = None) -> dict:
    """Warp, write, and describe one aligned face."""
    crop = warp(image, compose(m_src, rescale(*scale)), s.size)
    data = _encode(crop, s.image_format)
    sid = face_id(item, k)
    rel = out_path(prefix, sid, s.image_format)
    _write_bytes(out_dir / rel, data)
    lm = face.points if face is not None else landmarks
    return {
        "row": item.row, "kind": "aligned", "face": k, "sample_id": sid, "path": rel,
        "mode": item.mode,
        "landmarks": None if lm is None else [float(v) for v in np.asarray(lm).reshape(-1)],
        "bbox": None if face is None else [float(v) for v in face.box],
        "det_prob": None if face is None else float(face.prob),
        "transform": [float(v) for v in m_src.reshape(-1)],
        "sha256": hashlib.sha256(data).hexdigest(),
        "src_w": int(src_size[0]), "src_h": int(src_size[1]),
    }


def _reject(item: Item, reason: str, detail: str, src_size=None) -> dict:
    return {"row": item.row, "kind": "reject", "face": 0, "sample_id": item.sample_id, "mode": item.mode,
            "reason": reason, "detail": detail,
            "src_w": None if src_size is None else int(src_size[0]),
            "src_h": None if src_size is None else int(src_size[1])}


def _decode(item: Item, s: Settings):
    try:
        return decode(item.file, max_pixels=s.max_pixels)
    except ImageDecodeError as e:
        return e


def _geometry_only(item: Item, img, s: Settings, dst: np.ndarray, out_dir: Path, prefix: str) -> dict:
    """``landmarks`` and ``none`` rows: no detector."""
    if item.mode == "none":
        m = centre_square(*img.source_size, s.size)
        return _aligned(item, 0, img.pixels, m, img.scale, s, out_dir, prefix, img.source_size)
    if item.landmarks is None:
        return _reject(item, "no_landmarks", "row has no landmarks (mode 'landmarks')", img.source_size)
    lm = np.asarray(item.landmarks, dtype=np.float64).reshape(5, 2)
    if not np.isfinite(lm).all() or np.hypot(*(lm[1] - lm[0])) < 1.0:
        return _reject(item, "bad_landmarks", f"unusable landmarks {lm.reshape(-1).round(1).tolist()}", img.source_size)
    m = similarity(lm, dst)
    return _aligned(item, 0, img.pixels, m, img.scale, s, out_dir, prefix, img.source_size, landmarks=lm)


@contextlib.contextmanager
def _one_torch_thread(device: str):
    """CPU detection runs single-threaded per process: worker processes scale
    better than intra-op threads on MTCNN's small convolutions, and a fixed
    thread count keeps results identical whichever process runs a chunk."""
    if device != "cpu":
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _decoded(items: list[Item], s: Settings) -> Iterator[tuple[Item, object]]:
    """(item, DecodedImage or ImageDecodeError) in source order; with io_threads, a few
    images ahead are decoded in threads (Pillow releases the GIL while decoding)."""
    if s.io_threads <= 1:
        yield from ((it, _decode(it, s)) for it in items)
        return
    ahead = 2 * s.io_threads
    with ThreadPoolExecutor(s.io_threads) as pool:
        window = deque((it, pool.submit(_decode, it, s)) for it in items[:ahead])
        rest = iter(items[ahead:])
        while window:
            it, fut = window.popleft()
            nxt = next(rest, None)
            if nxt is not None:
                window.append((nxt, pool.submit(_decode, nxt, s)))
            yield it, fut.result()


def _sub_batches(items: list[Item], s: Settings) -> Iterator[list[tuple[Item, object]]]:
    """Decoded items in source order, in groups holding at most PIXEL_BUDGET decoded pixels."""
    group, pixels = [], 0
    for it, img in _decoded(items, s):
        group.append((it, img))
        if not isinstance(img, ImageDecodeError):
            pixels += img.pixels.shape[0] * img.pixels.shape[1]
        if pixels >= PIXEL_BUDGET:
            yield group
            group, pixels = [], 0
    if group:
        yield group


def align_chunk(items: list[Item], s: Settings, out_dir: Path, prefix: str) -> list[dict]:
    """Align the rows of one chunk; returns result records (aligned faces and rejects) in row order."""
    dst = template(s.template, s.size)
    out: list[dict] = []
    pool = ThreadPoolExecutor(s.io_threads) if s.io_threads > 1 else None
    try:
        for group in _sub_batches(items, s):
            results: dict[int, list[dict]] = {}
            to_detect = []
            for it, img in group:
                if isinstance(img, ImageDecodeError):
                    results[it.row] = [_reject(it, img.reason, img.detail)]
                elif it.mode == "mtcnn":
                    to_detect.append((it, img))
                else:
                    results[it.row] = [_geometry_only(it, img, s, dst, out_dir, prefix)]
            if to_detect:
                with _one_torch_thread(s.device):
                    found = det.detect(
                        [img.pixels for _, img in to_detect],
                        min_face=s.min_face,  # decoded px; equal to source px unless a huge JPEG was reduced
                        max_side=s.detect_max_side, batch_size=s.batch_size, device=s.device,
                    )

                def finish(pair):
                    (it, img), faces = pair
                    return it.row, _detected(it, img, faces, s, dst, out_dir, prefix)

                done = pool.map(finish, zip(to_detect, found)) if pool else map(finish, zip(to_detect, found))
                results.update(done)
            for it, _ in group:
                out.extend(results[it.row])
    finally:
        if pool:
            pool.shutdown()
    return out


def _detected(it: Item, img, faces, s: Settings, dst, out_dir: Path, prefix: str) -> list[dict]:
    if isinstance(faces, Exception):
        return [_reject(it, "detector_error", f"MTCNN failed: {faces}", img.source_size)]
    sx, sy = img.scale
    faces = [f.mapped(rescale(sx, sy)) for f in faces] if (sx, sy) != (1.0, 1.0) else faces
    choice = det.choose(faces, *img.source_size, select=s.select, min_prob=s.min_prob,
                        min_face=s.min_face, keep_all=s.keep_all)
    if not choice.faces:
        return [_reject(it, choice.reason, choice.detail, img.source_size)]
    return [
        _aligned(it, k, img.pixels, similarity(f.points, dst), img.scale, s, out_dir, prefix, img.source_size, face=f)
        for k, f in enumerate(choice.faces)
    ]


def _work(chunk: int, items: list[Item], s: Settings, out_dir: Path, prefix: str) -> tuple[int, list[dict]]:
    """Entry point of a worker process (joblib)."""
    cv2.setNumThreads(1)
    return chunk, align_chunk(items, s, out_dir, prefix)


# --------------------------------------------------------------------------- #
# Parent side: chunks, resume, assembly
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
        path = self.folder / f"{chunk:06d}.json"
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(records))
        os.replace(tmp, path)  # a chunk counts as done only once its whole record is on disk

    def read(self, chunk: int) -> list[dict]:
        return json.loads((self.folder / f"{chunk:06d}.json").read_text())


def _items(source: mf.Manifest, modes: list[str]) -> list[Item]:
    df = source.df
    return [
        Item(i, sid, src, rel, str(source.abspath(rel)), mode, _landmarks_of(lm))
        for i, (sid, src, rel, lm, mode) in enumerate(
            zip(df["sample_id"], df["source"], df["path"], df["landmarks"], modes)
        )
    ]


def _digest(items: list[Item], s: Settings, source_root: Path) -> str:
    payload = {k: v for k, v in asdict(s).items() if k != "io_threads"}
    h = hashlib.sha256(json.dumps({"v": PART_VERSION, "settings": payload, "root": str(source_root.resolve()),
                                   "rows": len(items)}, sort_keys=True).encode())
    for it in items:
        h.update(json.dumps([it.sample_id, it.rel, it.mode, it.landmarks]).encode())
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
    yield from par(delayed(_work)(cid, items, s, out_dir, prefix) for cid, items in todo)


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
    out = _aligned(item, 0, img.pixels, m, img.scale, s, out_dir, prefix, img.source_size)
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
) -> AlignResult:
    """Align every row of the images manifest ``source`` into ``out_dir/<prefix>/``.

    mode: auto | mtcnn | landmarks | none (see the module docstring). role:
    ``eval`` images without a usable face are centre-cropped (when
    ``cfg.eval_fallback == "centre_crop"``) instead of rejected, so that pairs
    never lose an image; such rows have null landmarks and det_prob and are
    listed in the manifest's ``extra``. Work done before an interrupt is kept in
    ``out_dir/parts/<prefix>/`` and not redone.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    modes = resolve_modes(source.df, mode)
    items = _items(source, modes)
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


# --------------------------------------------------------------------------- #
# The pipeline stage
# --------------------------------------------------------------------------- #


def run_stage(cfg, inputs: dict, run_dir: Path) -> dict[str, mf.Manifest]:
    """``source`` (and ``eval_source``) -> ``aligned`` (and ``eval_aligned``) + ``rejects``.

    Rejects of both sets go into one manifest rooted at the training set's root;
    evaluation rows carry absolute paths (their own root differs).
    """
    from augment.runtime import resolve_device, workers

    device = resolve_device(cfg.device).type
    n_workers = workers(cfg.align.workers)
    train = align_dataset(inputs["source"], cfg.align, cfg.data.train.align, run_dir, prefix="train",
                          role="train", device=device, workers=n_workers)
    out: dict[str, mf.Manifest] = {"aligned": train.aligned}
    rejects = [train.rejects.df]
    if "eval_source" in inputs and cfg.data.eval is not None:
        ev = align_dataset(inputs["eval_source"], cfg.align, cfg.data.eval.align, run_dir, prefix="eval",
                           role="eval", device=device, workers=n_workers)
        out["eval_aligned"] = ev.aligned
        ev_rej = ev.rejects.df.assign(path=[str(ev.rejects.abspath(p).resolve()) for p in ev.rejects.df["path"]])
        rejects.append(ev_rej)
    rej = pd.concat(rejects, ignore_index=True) if len(rejects) > 1 else rejects[0]
    out["rejects"] = mf.Manifest("rejects", rej, train.rejects.root,
                                 {"extra": {"train": train.stats["rejects"],
                                            "eval": ev.stats["rejects"] if "eval_aligned" in out else {}}})
    return out
