"""The edit stage's core on a small random generator: mask reuse, filters, resume."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from augment import manifest as mf
from augment.config import EditConfig
from augment.edit import EditModels, edit_batch, edit_rows, target_values
from augment.sagan.model import SaGANGenerator
from tests.sagan_fixtures import TINY


def tiny_generator(seed=0) -> SaGANGenerator:
    torch.manual_seed(seed)
    return SaGANGenerator(TINY).eval()


def aligned_rows(tmp_path: Path, n: int, size: int = 16) -> tuple[pd.DataFrame, Path]:
    rng = np.random.default_rng(0)
    root = tmp_path / "align"
    (root / "train").mkdir(parents=True)
    rows = []
    for i in range(n):
        rel = f"train/{i:04d}.png"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / rel)
        attrs = np.full(40, -1, np.int8)
        attrs[15] = 1 if i % 3 == 0 else -1  # Eyeglasses
        rows.append({"sample_id": mf.sample_id("t", rel), "path": rel, "identity": i // 4, "identity_name": str(i // 4),
                     "split": "train", "source": "synthfaces", "attributes": attrs if i % 5 else None})
    return mf.frame("images", rows), root


def test_one_attention_pass_equals_the_generator_per_direction():
    G = tiny_generator()
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    models = EditModels("Eyeglasses", "g", G, 16)
    with torch.no_grad():
        mask, edits = edit_batch(models, x, [1, 0])
        for v in (1, 0):
            ref, ref_mask = G(x, torch.full((3,), float(v)))
            torch.testing.assert_close(edits[v], ref, atol=1e-6, rtol=0)
            torch.testing.assert_close(mask, ref_mask, atol=1e-6, rtol=0)


def test_full_resolution_blend_keeps_pixels_outside_the_mask():
    G = tiny_generator()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        mask, edits = edit_batch(EditModels("Eyeglasses", "g", G, 16), x, [1])
    assert mask.shape == (2, 1, 32, 32)
    out = mask < 1e-6
    if out.any():
        assert torch.equal(edits[1][out.expand_as(x)], x[out.expand_as(x)])
    # the blend is exactly x_a * b + x * (1 - b)
    assert edits[1].shape == x.shape and torch.isfinite(edits[1]).all()


def test_target_values():
    labels = np.array([1, 0, -1])
    assert target_values("both", labels) == [[1, 0]] * 3
    assert target_values("flip", labels) == [[0], [1], []]
    assert target_values("add", labels) == [[1]] * 3
    assert target_values("remove", labels) == [[0]] * 3


def test_rows_filters_and_resume(tmp_path):
    n = 50  # two chunks of 32
    rows, root = aligned_rows(tmp_path, n)
    G = tiny_generator()
    models = [EditModels("Eyeglasses", "gid", G, 16, attr_prob=lambda x: (x.mean(dim=(1, 2, 3)) + 1) / 2)]
    ecfg = EditConfig(directions="both", batch_size=16, min_attr_prob=0.45, shard_size=40, chunk_size=32)
    run = tmp_path / "edit"
    merged, drops = edit_rows(models, rows, root, run, ecfg, torch.device("cpu"))
    assert len(merged) + sum(drops.values()) == 2 * n
    assert set(drops) <= {"min_attr_prob"}
    # every path exists, decodes and has the recorded hash; shard folders hold <= shard_size files
    for rel in merged["path"]:
        with Image.open(run / rel) as im:
            assert im.size == (16, 16)
    assert max(len(list(d.iterdir())) for d in run.glob("Eyeglasses/*/*")) <= 40
    assert merged["sample_id"].is_unique
    # the parent's attributes with the edited attribute set to the target
    row = merged[(merged["target_value"] == 1) & merged["attributes"].notna()].iloc[0]
    assert row["attributes"][15] == 1
    mf.write(mf.Manifest("images", merged, run), tmp_path / "edits.parquet")  # validates the schema

    # an interrupted run: one part missing; the rerun redoes exactly that part
    parts = sorted((run / "parts" / "Eyeglasses").glob("*.parquet"))
    assert len(parts) == 2
    parts[1].unlink()
    again, drops2 = edit_rows(models, rows, root, run, ecfg, torch.device("cpu"))
    assert drops2 == drops
    pd.testing.assert_frame_equal(again, merged)


def test_split_batch_gives_the_outputs_of_one_call():
    """On a CPU the edit stage splits a batch over one-thread workers; every image
    is computed on its own, so the split must not change any output."""
    from augment.edit import _Compute, _score_batch

    G = tiny_generator()
    models = EditModels("Eyeglasses", "g", G, 16, attr_prob=lambda x: torch.sigmoid(x.mean(dim=(1, 2, 3))))
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        compute = _Compute(torch.device("cpu"))
        assert compute.parts == 2
        area, out = compute(models, x, [1, 0])
        compute.close()
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        ref_area, ref_out = _score_batch(models, x, [1, 0])
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(area, ref_area, atol=1e-6)
    for v in (1, 0):
        np.testing.assert_array_equal(out[v][0], ref_out[v][0])
        np.testing.assert_allclose(out[v][1], ref_out[v][1], atol=1e-6)
        assert out[v][2] is None and ref_out[v][2] is None
