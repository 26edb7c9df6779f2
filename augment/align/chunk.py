"""Aligning one chunk of rows: what a worker process runs.

A chunk's images are decoded in source order (at most ``PIXEL_BUDGET`` decoded
pixels held at once), the ``mtcnn`` rows detected together (equal-sized images
in one batch), every kept face warped onto the template and written as an
image file, and one record per face or reject returned to the parent, which
stores it (see ``augment.align.stage``).
"""

from __future__ import annotations

import hashlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from augment import manifest as mf
from augment.align import detect as det
from augment.align.templates import prealigned_points, scale_landmarks, template
from augment.align.warp import centre_square, compose, rescale, similarity, warp
from augment.config import AlignConfig
from augment.data.images import MAX_PIXELS, ImageDecodeError, decode
from augment.io import cv2_bytes
from augment.fs import write_bytes
from augment.names import component
from augment.runtime import torch_threads

PIXEL_BUDGET = 48_000_000  # decoded pixels held at once by one worker (about 150 MB of RGB)


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
    mode: str  # mtcnn | landmarks | prealigned | none
    landmarks: tuple[float, ...] | None
    # (width, height) of the image the landmarks were measured on (CelebA's
    # aligned landmark file: 178x218); None = this image's own pixels. A copy
    # of another size gets its landmarks scaled to it.
    landmark_frame: tuple[int, int] | None = None


def out_path(prefix: str, sample_id: str, fmt: str) -> str:
    """The aligned image of ``sample_id``, relative to the output folder (256 shard folders)."""
    return f"{prefix}/{sample_id[:2]}/{component(f'{sample_id}.{fmt}', 'a sample id')}"


def face_id(item: Item, k: int) -> str:
    """Face 0 keeps the row's sample_id; further faces (keep_all) get ids of their own."""
    return item.sample_id if k == 0 else mf.sample_id(item.source, f"{item.rel}#face{k}")


def aligned_record(item: Item, k: int, image: np.ndarray, m_src: np.ndarray, scale: tuple[float, float],
                   s: Settings, out_dir: Path, prefix: str, src_size: tuple[int, int],
                   face: det.Face | None = None, landmarks: np.ndarray | None = None) -> dict:
    """Warp, write, and describe face ``k`` of ``item``.

    image: (H, W, 3) uint8 RGB as decoded; scale: source px per decoded px (see
    DecodedImage.scale); m_src: the 2x3 source -> aligned transform (recorded as is).
    """
    crop = warp(image, compose(m_src, rescale(*scale)), s.size)
    data = cv2_bytes(crop, s.image_format)
    sid = face_id(item, k)
    rel = out_path(prefix, sid, s.image_format)
    (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    write_bytes(out_dir / rel, data, fsync=False)  # synced before the chunk's record
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
    """``landmarks``, ``prealigned`` and ``none`` rows: no detector."""
    if item.mode == "none":
        m = centre_square(*img.source_size, s.size)
        return aligned_record(item, 0, img.pixels, m, img.scale, s, out_dir, prefix, img.source_size)
    if item.mode == "prealigned":
        m = similarity(prealigned_points(*img.source_size), dst)
        return aligned_record(item, 0, img.pixels, m, img.scale, s, out_dir, prefix, img.source_size)
    if item.landmarks is None:
        return _reject(item, "no_landmarks", "no landmark row (missing_landmarks: reject; 'prealigned' or 'mtcnn' "
                       "align such images otherwise)", img.source_size)
    lm = np.asarray(item.landmarks, dtype=np.float64).reshape(5, 2)
    if item.landmark_frame is not None and tuple(item.landmark_frame) != tuple(img.source_size):
        lm = scale_landmarks(lm, item.landmark_frame, *img.source_size)
    if not np.isfinite(lm).all() or np.hypot(*(lm[1] - lm[0])) < 1.0:
        return _reject(item, "bad_landmarks", f"unusable landmarks {lm.reshape(-1).round(1).tolist()}", img.source_size)
    m = similarity(lm, dst)
    return aligned_record(item, 0, img.pixels, m, img.scale, s, out_dir, prefix, img.source_size, landmarks=lm)


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
                # CPU detection runs single-threaded per process: worker processes scale
                # better than intra-op threads on MTCNN's small convolutions, and a fixed
                # thread count keeps results identical whichever process runs a chunk.
                with torch_threads(1 if s.device == "cpu" else 0):
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
        aligned_record(it, k, img.pixels, similarity(f.points, dst), img.scale, s, out_dir, prefix,
                       img.source_size, face=f)
        for k, f in enumerate(choice.faces)
    ]


def work(chunk: int, items: list[Item], s: Settings, out_dir: Path, prefix: str) -> tuple[int, list[dict]]:
    """Entry point of a worker process (joblib)."""
    cv2.setNumThreads(1)
    return chunk, align_chunk(items, s, out_dir, prefix)
