"""Align as whole commands: ``augment align`` against ``benchmarks/align_plain.py``.

Both align the first ``--images`` in-the-wild photos of celeba-wild-sample
(sorted) into a fresh folder and are timed from process start to exit,
interpreter start-up, imports and model loading included: what a user waits
for. ``--runs`` interleaved runs of each; the median wall times, their ratio
and the photos with a face on each side go under ``"align_command"`` in
benchmarks/results.json. Run: ``.venv/bin/python benchmarks/align_command.py``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.common import comparison, save_result  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "celeba-wild-sample"


def _timed(cmd: list[str]) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout + proc.stderr


def run_ours(data: Path, images: int) -> tuple[float, int]:
    import pyarrow.parquet as pq

    out = Path(tempfile.mkdtemp(prefix="align-cmd-ours-"))
    try:
        seconds, _ = _timed([str(Path(sys.executable).parent / "augment"), "align", str(data), "--dataset", "celeba",
                             "--images", "img_celeba", "--mode", "mtcnn", "--max-images", str(images),
                             "--out", str(out / "run")])
        faces = pq.read_metadata(out / "run" / "aligned.parquet").num_rows  # one face per photo (no --keep-all)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return seconds, faces


def run_plain(data: Path, images: int) -> tuple[float, int]:
    out = Path(tempfile.mkdtemp(prefix="align-cmd-plain-"))
    try:
        seconds, text = _timed([sys.executable, str(REPO / "benchmarks" / "align_plain.py"),
                                str(data / "img_celeba"), str(images), str(out)])
        faces = int(re.search(r"(\d+) photos with a face", text).group(1))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return seconds, faces


def measure(data: Path = DEFAULT_DATA, images: int = 200, runs: int = 3) -> dict:
    if not (data / "img_celeba").is_dir():
        raise FileNotFoundError(f"{data}: no img_celeba/ folder (pass --data)")
    ours, plain, f_ours, f_plain = [], [], set(), set()
    for k in range(runs):
        s, f = run_ours(data, images)
        ours.append(s)
        f_ours.add(f)
        s, f = run_plain(data, images)
        plain.append(s)
        f_plain.add(f)
        print(f"run {k + 1}: augment align {ours[-1]:.1f} s ({min(f_ours)} faces), "
              f"plain script {plain[-1]:.1f} s ({min(f_plain)} faces)", flush=True)
    result = comparison(ours, plain, "s", higher_is_better=False)
    result.update(images=images, faces_ours=sorted(f_ours), faces_reference=sorted(f_plain), device="cpu",
                  note="whole commands: start-up, imports and model loading included")
    print(f"align_command: ratio {result['ratio']:.2f}x (plain / ours wall time)")
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    try:
        result = measure(args.data, args.images, args.runs)
    except FileNotFoundError as e:
        raise SystemExit(str(e))
    save_result("align_command", result)
    return result


if __name__ == "__main__":
    main()
