"""Pure helpers of benchmarks/: summaries, ratios, peak RSS, the RESULTS.md tables."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.common import Options, clear_peak_rss, comparison, peak_rss_mib, summary
from benchmarks.report import tables


def test_summary_is_median_min_max():
    s = summary([3.0, 1.0, 2.0, 10.0], "img/s")
    assert s == {"median": 2.5, "min": 1.0, "max": 10.0, "runs": 4, "unit": "img/s"}


def test_comparison_ratio_is_how_many_times_faster_ours_is():
    rates = comparison([4.0, 4.0, 5.0], [2.0, 1.0, 2.0], "img/s")
    assert rates["ratio"] == pytest.approx(2.0)
    times = comparison([1.0, 1.0, 1.0], [3.0, 3.0, 2.0], "s/step", higher_is_better=False)
    assert times["ratio"] == pytest.approx(3.0)
    assert times["ours"]["unit"] == times["reference"]["unit"] == "s/step"


def test_options_size_scales_and_stays_positive():
    assert Options(scale=0.25).size(32) == 8
    assert Options(scale=0.01).size(8) == 1
    assert Options().size(7) == 7


def test_peak_rss_grows_with_an_allocation_and_resets():
    a = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    high = peak_rss_mib()
    del a
    if not clear_peak_rss():
        pytest.skip("/proc/self/clear_refs not writable")
    assert peak_rss_mib() < high - 32


def test_tables_mark_targets_met_and_missed():
    def cmp(ours, ref, unit="img/s", higher=True):
        return comparison([ours] * 3, [ref] * 3, unit, higher)

    data = {
        "edit": {**cmp(3.0, 1.0), "max_abs_diff": 2e-5, "png_max_abs_diff": 1, "images": 32,
                 "generator_gflops": summary([30.0] * 3, "GFLOP/s"), "matmul_gflops": summary([60.0] * 3, "GFLOP/s"),
                 "flop_efficiency": 0.5, "generator_gflop_per_image": 8.6},
        "align": {"skipped": "no data"},
    }
    text = "\n".join(tables(data))
    assert "| edit: decode, both values, PNG (img/s) | 3.00 (3.00-3.00) img/s | 1.00 (1.00-1.00) img/s | 3.00x | >= 2.0x | yes |" in text
    assert "0.50 | >= 0.6 | no |" in text
    assert "skipped: no data" in text
    assert "bound 1e-4: met" in text
