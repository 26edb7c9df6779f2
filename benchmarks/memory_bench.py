"""Memory scaling: peak RSS of align and edit at 1x and 4x the input, each in a fresh process.

``python -m benchmarks.memory_bench CHILD {align|edit} N`` is the child: it
runs the stage's code path on N inputs (align: ``align_dataset`` in mtcnn mode
on CelebA in-the-wild photos with the stage's worker processes; edit:
``edit_rows`` on N rendered 128 px images with the paper preset) and prints
its own peak RSS (VmHWM) as JSON. The parent samples the RSS of the child and
all its descendants every 20 ms; ``tree_peak_mib`` is the largest sum seen
(worker processes included), ``main_peak_mib`` the child's own VmHWM.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Options, summary

REPO = Path(__file__).resolve().parents[1]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    return kids


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mib(pid: int) -> float:
    kids, total, todo = _children(), 0, [pid]
    while todo:
        p = todo.pop()
        total += _rss_kib(p)
        todo += kids.get(p, [])
    return total / 1024


def run_child(stage: str, n: int, opts: Options) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "benchmarks.memory_bench", "CHILD", stage, str(n), opts.device]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, tree_rss_mib(proc.pid))
        time.sleep(0.02)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    child = json.loads(out.strip().splitlines()[-1])
    return {"tree_peak_mib": peak, **child}


def main(opts: Options, align_images: int = 8, edit_images: int = 32, runs: int = 1) -> dict:
    """Peak RSS at 1x and 4x for align and edit (``runs`` fresh processes per point)."""
    from benchmarks.align_bench import DEFAULT_DATA

    result: dict = {"unit": "MiB", "runs": runs}
    for stage, n in (("align", align_images), ("edit", edit_images)):
        if stage == "align" and not (DEFAULT_DATA / "img_celeba").is_dir():
            result[stage] = {"skipped": f"{DEFAULT_DATA} not found"}
            continue
        entry = {}
        for label, k in (("1x", n), ("4x", 4 * n)):
            recs = [run_child(stage, k, opts) for _ in range(runs)]
            entry[label] = {"inputs": k, "tree_peak_mib": summary([r["tree_peak_mib"] for r in recs], "MiB"),
                            "main_peak_mib": summary([r["main_peak_mib"] for r in recs], "MiB"),
                            "seconds": summary([r["seconds"] for r in recs], "s")}
            print(f"  memory {stage} {label} ({k} inputs): tree peak {entry[label]['tree_peak_mib']['median']:.0f} "
                  f"MiB, main process {entry[label]['main_peak_mib']['median']:.0f} MiB", flush=True)
        entry["peak_rss_mib_1x"] = entry["1x"]["tree_peak_mib"]["median"]
        entry["peak_rss_mib_4x"] = entry["4x"]["tree_peak_mib"]["median"]
        entry["growth_4x_over_1x"] = entry["peak_rss_mib_4x"] / entry["peak_rss_mib_1x"]
        result[stage] = entry
    return result


def _child(stage: str, n: int, device: str) -> None:
    import torch

    from benchmarks.common import peak_rss_mib

    work = Path(tempfile.mkdtemp(prefix=f"mem-{stage}-"))
    try:
        if stage == "align":
            from augment.align import align_dataset
            from augment.config import AlignConfig
            from augment.data.read import load_celeba_like
            from augment.runtime import workers

            from benchmarks.align_bench import DEFAULT_DATA

            source = load_celeba_like(DEFAULT_DATA, "img_celeba", "celeba", max_images=n)
            t0 = time.perf_counter()
            align_dataset(source, AlignConfig(), "mtcnn", work / "out", workers=workers(0), progress=False)
        else:
            from augment.config import EditConfig
            from augment.edit import edit_rows
            from augment.runtime import workers

            from benchmarks.edit_bench import edit_models, generators, render_images

            opts = Options(device=device)
            rows = render_images(work / "align", n)
            models = edit_models(generators(opts)[0], opts)
            dev = torch.device(device)
            n_workers = workers(0) if dev.type == "cuda" else min(1, workers(0) - 1)
            t0 = time.perf_counter()
            edit_rows([models], rows, work / "align", work / "edit", EditConfig(), dev, n_workers)
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"main_peak_mib": peak_rss_mib(), "seconds": seconds}))


if __name__ == "__main__" and len(sys.argv) >= 4 and sys.argv[1] == "CHILD":
    _child(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "cpu")
