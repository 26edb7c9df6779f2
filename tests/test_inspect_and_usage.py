"""``augment inspect`` on every manifest kind; usage errors exit 2; quiet broken pipes; interrupted stages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from augment import manifest as mf
from augment.cli import cli
from augment.data import lfw
from augment.data.errors import DatasetError
from tests.conftest import REPO

ROWS = {
    "images": [{"sample_id": mf.sample_id("celeba", "a.png"), "path": "a.png", "identity": 3, "split": "train", "source": "celeba"}],
    "rejects": [{"sample_id": mf.sample_id("celeba", "b.jpg"), "path": "b.jpg", "reason": "no_face", "detail": "no face detected"}],
    "pairs": [{"fold": 0, "path_a": "x/1.jpg", "path_b": "x/2.jpg", "same": True},
              {"fold": 0, "path_a": "x/1.jpg", "path_b": "y/1.jpg", "same": False}],
    "groundtruth": [{"image": "a.png", "attribute": "Eyeglasses", "counterfactual": "c.png", "mask": "m.png"}],
    "generators": [{"attribute": "Eyeglasses", "path": "Eyeglasses/generator", "generator_id": "abc", "step": 10,
                    "preset": "fast", "image_size": 32, "train_images": 60, "train_positive": 20}],
    "classifiers": [{"path": "classifier", "classifier_id": "def", "attributes": ["Eyeglasses", "Smiling"],
                     "accuracy": [0.9, 0.8], "balanced_accuracy": [0.85, 0.75], "eval_split": "val",
                     "eval_images": 12, "image_size": 32, "step": 30}],
    "recognizers": [{"name": "baseline", "path": "models/baseline/final", "backbone": "resnet18", "head": "softmax",
                     "embedding_size": 64, "image_size": 32, "attributes": [], "train_images": 60,
                     "identities": 10, "epochs": 2, "steps": 4, "weights_sha256": "0" * 64}],
    "embeddings": [{"path": "x/1.png", "embedding": [0.6, 0.8]}, {"path": "x/2.png", "embedding": [1.0, 0.0]}],
}
EXPECT = {
    "images": "identities   1", "rejects": "no_face: 1", "pairs": "different    1", "groundtruth": "Eyeglasses: 1",
    "generators": "image_size=32", "classifiers": "Smiling                accuracy 0.800",
    "recognizers": "name=baseline", "embeddings": "dimensions   2",
}


@pytest.mark.parametrize("kind", list(ROWS))
def test_inspect_summarises_every_kind(tmp_path, kind):
    path = mf.write(mf.Manifest(kind, mf.frame(kind, ROWS[kind]), tmp_path), tmp_path / f"{kind}.parquet")
    r = CliRunner().invoke(cli, ["inspect", str(path)])
    assert r.exit_code == 0, r.output
    assert f"kind         {kind}" in r.output and "rows         " in r.output
    assert EXPECT[kind] in r.output


@pytest.mark.parametrize("flag", ["--force", "--stages", "--until"])
def test_unknown_stage_flags_are_usage_errors(flag):
    r = CliRunner().invoke(cli, ["run", str(REPO / "pipelines" / "smoke.yaml"), flag, "tarin_sagan"])
    assert r.exit_code == 2, r.output
    assert flag in r.output and "did you mean 'train_sagan'" in r.output


def test_stages_output_into_a_closed_pipe_is_quiet(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "augment.cli", "stages", str(REPO / "pipelines" / "smoke.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    proc.stdout.close()  # like `| head -0`: the reader is gone before anything is written
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Broken pipe" not in err and "Traceback" not in err and "I/O error" not in err, err


def test_binary_pairs_file_is_refused_without_echoing_it(tmp_path):
    junk = bytes(np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8))
    (tmp_path / "pairs.txt").write_bytes(junk)
    with pytest.raises(DatasetError, match="not a text pairs file") as e:
        lfw.read_pairs(tmp_path / "pairs.txt")
    assert len(str(e.value)) < 200 and "\ufffd" not in str(e.value)
    (tmp_path / "nul.txt").write_bytes(b"1\nA 1 2\x00\n")
    with pytest.raises(DatasetError, match="NUL bytes"):
        lfw.read_pairs(tmp_path / "nul.txt")


def test_stages_shows_an_interrupted_stage(tmp_path):
    p = tmp_path / "p.yaml"
    work = tmp_path / "work"
    p.write_text(f"name: t\nworkdir: {work}\nstages: [synth, read]\n")
    (work / "synth").mkdir(parents=True)
    (work / "synth" / ".inprogress").write_text("fingerprint")
    r = CliRunner().invoke(cli, ["stages", str(p)])
    assert r.exit_code == 0, r.output
    lines = {ln.split()[0]: ln.split()[1] for ln in r.output.splitlines()}
    assert lines["synth"] == "interrupted"
    assert r.output.splitlines()[1].split()[1:3] == ["not", "run"]


def test_inspect_splits_edit_scores_by_target_value(tmp_path):
    """attr_prob means success near 1 when adding and near 0 when removing: one histogram each."""
    parent = mf.sample_id("celeba", "p.png")
    rows = [{"sample_id": mf.sample_id("sagan", f"e{i}.png"), "path": f"e{i}.png", "identity": 0, "split": "train",
             "source": "sagan", "parent_id": parent, "attribute": "Eyeglasses", "target_value": v, "attr_prob": p}
            for i, (v, p) in enumerate([(1, 0.9), (1, 0.8), (0, 0.1), (0, 0.3), (0, 0.2)])]
    path = mf.write(mf.Manifest("images", mf.frame("images", rows), tmp_path), tmp_path / "edits.parquet")
    r = CliRunner().invoke(cli, ["inspect", str(path)])
    assert r.exit_code == 0, r.output
    assert "attr_prob [Eyeglasses -> 1] (n=2, mean 0.850)" in r.output
    assert "attr_prob [Eyeglasses -> 0] (n=3, mean 0.200)" in r.output
