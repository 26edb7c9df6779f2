"""Real faces end to end: MTCNN-aligned CelebA sample -> recognizer -> LFW View 1 (slow, about 20 min on 2 cores)."""

from __future__ import annotations

import json

import pytest

from augment.validate import load_config
from augment.pipeline import run_pipeline
from tests.conftest import REPO


@pytest.mark.slow
def test_real_smoke_pipeline_beats_chance_on_lfw(celeba_wild, lfw_sample, tmp_path):
    cfg = load_config(REPO / "pipelines" / "real_smoke.yaml", [
        f"workdir={tmp_path / 'work'}",
        f"data.train.root={celeba_wild}",
        f"data.eval.root={lfw_sample / 'lfw-deepfunneled'}",
        f"data.eval.pairs={lfw_sample / 'pairsDevTest.txt'}",
        "evaluate.bootstrap=0",
    ])  # fmt: skip
    run_pipeline(cfg)
    metrics = json.loads((tmp_path / "work" / "evaluate" / "metrics.json").read_text())
    base = metrics["models"]["baseline"]
    assert base["pairs"] == 1000 and base["threshold_from_same_fold"]
    assert base["accuracy_mean"] >= 0.60
    assert base["auc"] > 0.6
