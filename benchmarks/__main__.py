"""Run the benchmarks: ``python -m benchmarks [SECTION ...] [options]``.

Sections (all by default, in this order): edit, align, align_command, sagan_step,
recognition, demo, memory. Each section's figures replace its key in
benchmarks/results.json (other keys are kept) and benchmarks/RESULTS.md is
rewritten from the whole file. The default sizes keep a full run on a
2-core CPU under 20 minutes; ``--scale`` multiplies them.

GPU options (``benchmarks/gpu.sh`` sets them): ``--device cuda --bf16
--compile --batch 64 --results benchmarks/results_gpu.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

# On a CPU shared with other jobs, OpenMP threads that spin while waiting for
# each other can make a 2-thread step 10x slower than a 1-thread one; passive
# waiting keeps both sides of every comparison out of that regime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from benchmarks.common import RESULTS_JSON, SECTIONS, Options, save_result  # noqa: E402


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def parse(argv: list[str] | None = None) -> tuple[list[str], Options, argparse.Namespace]:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    ap.add_argument("sections", nargs="*", metavar="SECTION", help=f"any of {', '.join(SECTIONS)} (default: all)")
    ap.add_argument("--device", default=os.environ.get("BENCH_DEVICE", "cpu"))
    ap.add_argument("--bf16", action="store_true", default=_env_flag("BENCH_BF16"), help="bf16 autocast (CUDA)")
    ap.add_argument("--compile", action="store_true", default=_env_flag("BENCH_COMPILE"),
                    help="torch.compile the generator for the edit figures")
    ap.add_argument("--batch", type=int, default=int(os.environ.get("BENCH_BATCH", "0")),
                    help="our batch size in edit / sagan_step (0 = the stage defaults)")
    ap.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", "1")),
                    help="multiply every work size (images, photos, runs of the demo stay)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per figure (>= 3)")
    ap.add_argument("--edit-images", type=int, default=128, help="images for the edit comparison (the issue: 512)")
    ap.add_argument("--align-images", type=int, default=32)
    ap.add_argument("--paper-batch", type=int, default=16,
                    help="batch of the paper-preset training step (16 = the paper's)")
    ap.add_argument("--memory-runs", type=int, default=3,
                    help="fresh processes per memory point (peak RSS varies by a few MiB; each costs a process start)")
    ap.add_argument("--pipeline", type=Path, default=Path(__file__).resolve().parents[1] / "pipelines" / "smoke.yaml")
    ap.add_argument("--results", type=Path, default=Path(os.environ.get("BENCH_RESULTS", RESULTS_JSON)))
    args = ap.parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    if args.runs < 3:
        ap.error("--runs must be >= 3 (every figure is a median with min and max)")
    opts = Options(device=args.device, bf16=args.bf16, compile=args.compile, batch=args.batch, scale=args.scale,
                   results=args.results)
    return args.sections or list(SECTIONS), opts, args


def run_section(name: str, opts: Options, args: argparse.Namespace) -> dict:
    if name == "edit":
        from benchmarks import edit_bench

        return edit_bench.main(opts, images=opts.size(args.edit_images), runs=args.runs)
    if name == "align":
        from benchmarks import align_bench

        if opts.device != "cpu":
            return {"skipped": "align is measured on the CPU only (the stage's MTCNN runs in CPU worker processes)"}
        try:
            return align_bench.measure(images=opts.size(args.align_images), runs=args.runs)
        except FileNotFoundError as e:
            return {"skipped": str(e)}
    if name == "align_command":
        from benchmarks import align_command

        if opts.device != "cpu":
            return {"skipped": "align is measured on the CPU only"}
        try:
            return align_command.measure(images=opts.size(200), runs=args.runs)  # the job size a user runs first
        except FileNotFoundError as e:
            return {"skipped": str(e)}
    if name == "sagan_step":
        from benchmarks import sagan_step_bench

        return sagan_step_bench.main(opts, runs=args.runs, paper_batch=args.paper_batch)
    if name == "recognition":
        from benchmarks import recognition_speed

        cuda = opts.device.startswith("cuda")
        return recognition_speed.measure(runs=args.runs, quick=not cuda, device=opts.device, bf16=opts.bf16,
                                         train_batch=opts.batch or 64, embed_batch_size=2 * (opts.batch or 64))
    if name == "demo":
        from benchmarks import demo_bench

        return demo_bench.main(opts, args.pipeline, runs=args.runs)
    if name == "memory":
        from benchmarks import memory_bench

        return memory_bench.main(opts, align_images=opts.size(4), edit_images=opts.size(16), runs=args.memory_runs)
    raise ValueError(name)


def main(argv: list[str] | None = None) -> None:
    sections, opts, args = parse(argv)
    import torch

    from benchmarks.report import write_report

    print(f"benchmarks: {', '.join(sections)}; device {opts.device}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; results -> {opts.results}", flush=True)
    t_all = time.perf_counter()
    for name in sections:
        t0 = time.perf_counter()
        try:
            result = run_section(name, opts, args)
        except Exception as e:  # record it and go on: one broken section should not cost the others
            traceback.print_exc()
            result = {"error": f"{type(e).__name__}: {e}"}
        result["section_seconds"] = round(time.perf_counter() - t0, 1)
        save_result(name, result, opts.results)
        write_report(opts.results)
        print(f"== {name}: {result['section_seconds']:.0f} s", flush=True)
    print(f"benchmarks done in {time.perf_counter() - t_all:.0f} s; see {opts.results} and RESULTS.md", flush=True)


if __name__ == "__main__":
    sys.exit(main())
