"""End-to-end: wall time and peak RSS of every stage of a pipeline (default ``pipelines/smoke.yaml``).

Each run is ``augment run PIPELINE --set workdir=<fresh temp dir>`` in its own
process; the figures are read from each stage's ``.done.json``: ``seconds``
and ``peak_rss_mib`` (the runner resets the process's peak RSS before each
stage where Linux allows it, so the peak is the stage's own; memory of worker
processes a stage starts is not included).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Options, summary

REPO = Path(__file__).resolve().parents[1]


def run_once(pipeline: Path, opts: Options) -> tuple[float, dict[str, dict]]:
    work = Path(tempfile.mkdtemp(prefix="demo-bench-"))
    try:
        cmd = [str(Path(sys.executable).with_name("augment")), "run", str(pipeline), "--set", f"workdir={work}"]
        if opts.device != "cpu":
            cmd += ["--device", opts.device.split(":")[0]]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        stages = {}
        for done in sorted(work.glob("*/.done.json")):
            rec = json.loads(done.read_text())
            stages[rec["stage"]] = {"seconds": rec["seconds"], "peak_rss_mib": rec.get("peak_rss_mib"),
                                    "peak_rss_scope": rec.get("peak_rss_scope", "process")}
        return wall, stages
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(opts: Options, pipeline: Path = REPO / "pipelines" / "smoke.yaml", runs: int = 3) -> dict:
    walls, per_stage = [], {}
    order: list[str] = []
    for k in range(runs):
        wall, stages = run_once(pipeline, opts)
        walls.append(wall)
        for name, rec in stages.items():
            if name not in order:
                order.append(name)
            per_stage.setdefault(name, []).append(rec)
        print(f"  demo run {k + 1}: {wall:.1f} s; " + ", ".join(f"{n} {r['seconds']:.1f} s" for n, r in stages.items()),
              flush=True)
    from augment.validate import load_config

    cfg = load_config(pipeline)
    order = [s for s in cfg.stages if s in per_stage]
    result = {
        "pipeline": str(pipeline.relative_to(REPO)) if pipeline.is_relative_to(REPO) else str(pipeline),
        "wall": summary(walls, "s"),
        "stages": {n: {"seconds": summary([r["seconds"] for r in per_stage[n]], "s"),
                       "peak_rss_mib": summary([r["peak_rss_mib"] for r in per_stage[n]], "MiB"),
                       "peak_rss_scope": per_stage[n][0]["peak_rss_scope"]} for n in order},
        "device": opts.device,
    }
    print(f"demo ({result['pipeline']}): {result['wall']['median']:.1f} s per run (process start included)",
          flush=True)
    return result
