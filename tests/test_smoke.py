"""The whole pipeline at toy size, once on one process and once on two (torchrun, gloo)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from augment import manifest as mf
from augment.validate import load_config
from augment.pipeline import run_pipeline

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "pipelines" / "smoke.yaml"
KEY = ["sample_id", "path", "identity", "parent_id", "attribute", "target_value"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("smoke") / "run"
    cfg = load_config(SMOKE, [f"workdir={work}"])
    result = run_pipeline(cfg)
    assert set(result.values()) == {"ran"}
    return work


def test_smoke_pipeline_writes_every_output(smoke_run):
    work = smoke_run
    edits = mf.read(work / "edit" / "edits.parquet", "images")
    aligned = mf.read(work / "align" / "aligned.parquet", "images")
    n_train = int((aligned.df["split"] == "train").sum())
    assert len(edits) == 2 * n_train  # every training image to both values
    assert set(edits.df["parent_id"]) == set(aligned.df.loc[aligned.df["split"] == "train", "sample_id"])
    for p in edits.paths():
        assert p.is_file()
    metrics = json.loads((work / "evaluate" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"baseline", "+Eyeglasses", "baseline@1", "+Eyeglasses@1"}
    assert metrics["deltas"]["+Eyeglasses@1"]["reference"] == "baseline@1"
    assert metrics["repeats"]["+Eyeglasses"]["seeds"] == 2
    for m in metrics["models"].values():
        assert 0.0 <= m["accuracy_mean"] <= 1.0 and set(m["tar_at_far"]) == {"0.001", "0.01", "0.1"}
    sagan = json.loads((work / "eval_sagan" / "metrics.json").read_text())
    assert {"edit_success", "outside_change", "mask_iou", "psnr_vs_truth"} <= set(sagan["Eyeglasses"])
    html = (work / "report.html").read_text()
    assert "Face recognition: baseline vs augmented" in html and "data:image/png;base64," in html
    assert "recognizer seeds" in html


def test_second_run_skips_every_stage(smoke_run):
    cfg = load_config(SMOKE, [f"workdir={smoke_run}"])
    assert set(run_pipeline(cfg).values()) == {"skipped"}


def test_two_processes_give_the_same_manifest_rows(smoke_run, tmp_path):
    """`augment run --nproc 2`: DDP training and a sharded edit stage, same rows as one process."""
    work = tmp_path / "run2"
    shutil.copytree(smoke_run, work)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "augment.cli", "run", str(SMOKE), "--nproc", "2", "--set", f"workdir={work}",
           "--set", "edit.chunk_size=16", "--force", "train_sagan", "--force", "edit", "--force", "train_recognition"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = mf.read(smoke_run / "edit" / "edits.parquet").df[KEY]
    two = mf.read(work / "edit" / "edits.parquet").df[KEY]
    assert sorted(map(tuple, one.astype(str).values)) == sorted(map(tuple, two.astype(str).values))
    parts = list((work / "edit" / "parts" / "Eyeglasses").glob("*.parquet"))
    assert len(parts) > 1  # the rows really were dealt to both ranks in chunks
    assert json.loads((work / "evaluate" / "metrics.json").read_text())["models"]


def test_evaluate_reads_the_runs_own_synthfaces_lfw_folder(smoke_run, tmp_path):
    """The pairs file names .jpg (LFW's), SynthFaces writes .png: images are matched by stem."""
    from click.testing import CliRunner

    from augment.cli import cli

    from augment.data.lfw import read_pairs

    lfw = smoke_run / "synth" / "data" / "lfw"
    pairs = read_pairs(lfw / "pairs.txt")
    assert pairs["path_a"].str.endswith(".jpg").all() and not list(lfw.rglob("*.jpg")) and list(lfw.rglob("*.png"))
    r = CliRunner().invoke(cli, ["evaluate", "--baseline", str(smoke_run), "--pairs", str(lfw / "pairs.txt"),
                                 "--images", str(lfw), "--out", str(tmp_path / "ev"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["protocol"] == "lfw" and metrics["models"]["baseline"]["pairs"] == len(pairs)
    assert metrics["images_aligned"]["images"] == len(set(pairs["path_a"]) | set(pairs["path_b"]))
