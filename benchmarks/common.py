"""Shared helpers for the benchmarks: repeated timing, FLOP baselines, results files.

Every figure is the median of at least three runs with min and max; a
comparison (``ours`` against ``reference``) is measured in the same process run
so that both see the same machine state.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "RESULTS.md"


def summary(values: list[float], unit: str) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
        "unit": unit,
    }


def repeat(fn: Callable[[], float], runs: int = 3) -> list[float]:
    """Call ``fn`` (which returns one measurement) ``runs`` times."""
    return [fn() for _ in range(runs)]


def rate(fn: Callable[[], int], runs: int = 3, warmup: bool = True) -> list[float]:
    """Items per second of ``fn`` (which returns how many items it processed)."""
    if warmup:
        fn()

    def once() -> float:
        t0 = time.perf_counter()
        n = fn()
        return n / (time.perf_counter() - t0)

    return repeat(once, runs)


def comparison(ours: list[float], reference: list[float], unit: str, higher_is_better: bool = True) -> dict:
    o, r = summary(ours, unit), summary(reference, unit)
    ratio = o["median"] / r["median"] if higher_is_better else r["median"] / o["median"]
    return {"ours": o, "reference": r, "ratio": ratio}


def matmul_gflops(n: int = 2048, runs: int = 5) -> list[float]:
    """fp32 GFLOP/s of a large square matmul: the machine's practical ceiling."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up

    def once() -> float:
        t0 = time.perf_counter()
        a @ b
        return 2 * n**3 / (time.perf_counter() - t0) / 1e9

    return repeat(once, runs)


def machine() -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def load_results() -> dict:
    if RESULTS_JSON.is_file():
        return json.loads(RESULTS_JSON.read_text())
    return {}


def save_result(key: str, value: dict) -> None:
    """Merge one benchmark's figures under ``key`` into results.json (other keys kept)."""
    data = load_results()
    data[key] = value
    data["machine"] = machine()
    RESULTS_JSON.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def python() -> str:
    return sys.executable
