"""Align: the ``align`` stage's code path against a plain per-image MTCNN loop.

Both align the same CelebA in-the-wild photos (the first ``--images`` of
celeba-wild-sample, sorted) in one process run, with the same decoder, the same
face choice, the same warp and the same PNG writing:

- ours: ``augment.align.align_dataset`` in ``mtcnn`` mode with the default
  AlignConfig (detection at <= 640 px, equal-size batches, one worker process
  per core with one torch thread each);
- reference: for each photo, ``MTCNN().detect(photo, landmarks=True)`` at full
  resolution in this process (torch's default threads), then the same choice,
  warp and write.

Prints img/s (median, min, max of ``--runs``) and the number of photos with an
aligned face for each, and merges them under ``"align"`` into
benchmarks/results.json. Run: ``.venv/bin/python benchmarks/align_bench.py``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.common import comparison, machine, save_result  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "celeba-wild-sample"


def run_ours(source, cfg, workers: int) -> tuple[float, int]:
    from augment.align import align_dataset

    out = Path(tempfile.mkdtemp(prefix="align-ours-"))
    try:
        t0 = time.perf_counter()
        res = align_dataset(source, cfg, "mtcnn", out, workers=workers, progress=False)
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return len(source) / seconds, res.stats["detected_images"]


def run_reference(source, cfg, model) -> tuple[float, int]:
    """A plain loop: decode, MTCNN.detect at full size, choose, warp, write, one photo at a time."""
    import numpy as np

    from augment.align.detect import Face, choose
    from augment.align.templates import template
    from augment.align.warp import similarity, warp
    from augment.data.images import ImageDecodeError, decode
    from augment.io import cv2_bytes
    from augment.fs import write_bytes

    dst = template(cfg.template, cfg.size)
    out = Path(tempfile.mkdtemp(prefix="align-ref-"))
    found = 0
    try:
        t0 = time.perf_counter()
        for i, path in enumerate(source.paths()):
            try:
                img = decode(path)
            except ImageDecodeError:
                continue
            boxes, probs, points = model.detect(img.pixels, landmarks=True)
            faces = [] if boxes is None else [
                Face(np.asarray(b, float), np.asarray(p, float).reshape(5, 2), float(q))
                for b, q, p in zip(boxes, probs, points)
            ]
            choice = choose(faces, *img.source_size, select=cfg.select, min_prob=cfg.min_prob,
                            min_face=cfg.min_face)
            for f in choice.faces:
                crop = warp(img.pixels, similarity(f.points, dst), cfg.size)
                write_bytes(out / f"{i:06d}.png", cv2_bytes(crop, "png"))
            found += bool(choice.faces)
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return len(source) / seconds, found


def measure(data: Path = DEFAULT_DATA, images: int = 200, runs: int = 3, n_workers: int = 0) -> dict:
    """Ours and the reference on the first ``images`` photos of ``data``, ``runs`` times each."""
    from facenet_pytorch import MTCNN

    from augment.config import AlignConfig
    from augment.data.read import load_celeba_like
    from augment.runtime import workers

    if not (data / "img_celeba").is_dir():
        raise FileNotFoundError(f"{data}: no img_celeba/ folder (pass --data)")
    source = load_celeba_like(data, "img_celeba", "celeba", max_images=images)
    cfg = AlignConfig()
    n_workers = workers(n_workers)
    print(f"align: {len(source)} photos from {data}; {n_workers} worker(s); {runs} run(s) each", flush=True)

    # Warm-ups, untimed: our worker processes (imports, MTCNN) and the reference model.
    warm = load_celeba_like(data, "img_celeba", "celeba", max_images=2 * n_workers)
    run_ours(warm, cfg, n_workers)
    model = MTCNN(device="cpu")

    # Interleaved, so a change in the machine's load hits both sides alike. (An
    # idle worker pool is shut down after 5 minutes, so a run of ours that
    # follows a long reference run may pay for starting its workers again.)
    ours, faces_ours, ref, faces_ref = [], set(), [], set()
    for k in range(runs):
        r, f = run_ours(source, cfg, n_workers)
        ours.append(r)
        faces_ours.add(f)
        print(f"  ours      run {k + 1}: {r:6.2f} img/s, {f} photos with a face", flush=True)
        r, f = run_reference(source, cfg, model)
        ref.append(r)
        faces_ref.add(f)
        print(f"  reference run {k + 1}: {r:6.2f} img/s, {f} photos with a face", flush=True)

    result = comparison(ours, ref, "img/s")
    result.update(faces_ours=max(faces_ours), faces_reference=max(faces_ref), images=len(source),
                  workers=n_workers, device="cpu")
    if len(faces_ours) > 1 or len(faces_ref) > 1:
        result["note"] = f"face counts varied between runs: ours {sorted(faces_ours)}, reference {sorted(faces_ref)}"
    diff = abs(result["faces_ours"] - result["faces_reference"]) / max(1, result["faces_reference"])
    print(f"ours      {result['ours']['median']:.2f} img/s (min {result['ours']['min']:.2f}, "
          f"max {result['ours']['max']:.2f}), {result['faces_ours']} photos with a face")
    print(f"reference {result['reference']['median']:.2f} img/s (min {result['reference']['min']:.2f}, "
          f"max {result['reference']['max']:.2f}), {result['faces_reference']} photos with a face")
    print(f"ratio {result['ratio']:.2f}x; face counts differ by {100 * diff:.2f}%; machine {machine()['cpu']}")
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a CelebA copy with img_celeba/")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0, help="0 = all cores (the stage's default)")
    ap.add_argument("--no-save", action="store_true", help="print only; do not touch results.json")
    args = ap.parse_args(argv)
    try:
        result = measure(args.data, args.images, args.runs, args.workers)
    except FileNotFoundError as e:
        sys.exit(str(e))
    if not args.no_save:
        save_result("align", result)
    return result


if __name__ == "__main__":
    main()
