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
from dataclasses import dataclass
from typing import Callable

from augment.fs import write_json
from augment.diagnostics import peak_rss_mib, reset_peak_rss as clear_peak_rss  # noqa: F401 (the benchmarks' API)

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


# The sections of results.json, in report order (``python -m benchmarks`` runs them).
SECTIONS = ("edit", "align", "align_command", "sagan_step", "recognition", "demo", "memory")


def load_results(path: Path = RESULTS_JSON) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    return {}


def save_result(key: str, value: dict, path: Path = RESULTS_JSON) -> None:
    """Merge one section's figures under ``key`` into ``path`` (other keys kept).

    The machine (CPU, cores, torch, card) and the load average are recorded
    inside the section, since sections may be measured at different times.
    """
    data = load_results(path)
    data[key] = {**value, "machine": machine(), "load_average": round(os.getloadavg()[0], 2)}
    if key in SECTIONS:  # a sections file holds the sections only
        data = {k: v for k, v in data.items() if k in SECTIONS}
    write_json(path, data, newline=True)


def median_of(values: list[float]) -> float:
    return statistics.median(values)


def python() -> str:
    return sys.executable


@dataclass(frozen=True)
class Options:
    """How ``ours`` runs (the references always run plain: fp32, eager, CPU defaults).

    The defaults are the CPU settings; ``benchmarks/gpu.sh`` turns on the rest.
    Each flag also reads an environment variable (``BENCH_DEVICE``,
    ``BENCH_BF16``, ``BENCH_COMPILE``, ``BENCH_BATCH``, ``BENCH_SCALE``).
    """

    device: str = "cpu"
    bf16: bool = False  # bf16 autocast (CUDA)
    compile: bool = False  # torch.compile the generator
    batch: int = 0  # our batch size; 0 = each section's default
    scale: float = 1.0  # multiplies every section's work size (images, steps)
    results: Path = RESULTS_JSON

    def size(self, n: int) -> int:
        return max(1, round(n * self.scale))


def sync(device: str) -> None:
    """Wait for queued GPU work, so wall time covers it."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
