"""``augment evaluate`` on precomputed embeddings, and its errors (never silent skips)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from augment.cli import cli
from recognition.evaluate import ImageIndex, format_table
from recognition.paper import paper_key


def lfw_world(tmp_path: Path, n_people=30, per=4, folds=2, n=60, seed=0):
    """An LFW-style pairs file (View 2 layout) and two embedding files: 'baseline' noisier than 'glasses'."""
    rng = np.random.default_rng(seed)
    names = [f"Person_{i:02d}" for i in range(n_people)]
    paths = [f"{nm}/{nm}_{j:04d}.jpg" for nm in names for j in range(1, per + 1)]
    centres = rng.normal(size=(n_people, 64))
    noise = rng.normal(size=(len(paths), 64))
    ident = np.repeat(np.arange(n_people), per)
    lines = [f"{folds}\t{n}"]
    for _ in range(folds):
        for _ in range(n):
            p = rng.integers(n_people)
            i, j = rng.choice(np.arange(1, per + 1), 2, replace=False)
            lines.append(f"{names[p]}\t{i}\t{j}")
        for _ in range(n):
            p, q = rng.choice(n_people, 2, replace=False)
            lines.append(f"{names[p]}\t{rng.integers(1, per + 1)}\t{names[q]}\t{rng.integers(1, per + 1)}")
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    for name, sigma in (("baseline", 1.6), ("glasses", 0.8)):
        emb = centres[ident] + sigma * noise
        pd.DataFrame({"path": paths, "embedding": list(emb.astype(np.float32))}).to_parquet(tmp_path / f"{name}.parquet")
    return tmp_path / "pairs.txt"


def test_evaluate_two_embedding_files(tmp_path):
    pairs = lfw_world(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["evaluate", "--baseline", str(tmp_path / "baseline.parquet"),
                                   "--augmented", f"+Eyeglasses={tmp_path / 'glasses.parquet'}",
                                   "--pairs", str(pairs), "--out", str(out), "--bootstrap", "200"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "protocol lfw (240 pairs); baseline: baseline" in res.output
    assert "TAR@1e-2" in res.output and "+Eyeglasses" in res.output
    assert "0.57/0.835/0.965" in res.output  # the paper's LFW baseline, read off its figure
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {"baseline", "+Eyeglasses"}
    for m in metrics["models"].values():
        assert {"accuracy_mean", "accuracy_std", "tar_at_far", "auc", "eer"} <= set(m)
        assert set(m["tar_at_far"]) == {"0.001", "0.01", "0.1"}
        assert len(m["fold_accuracies"]) == 2
    base, aug = metrics["models"]["baseline"], metrics["models"]["+Eyeglasses"]
    assert aug["accuracy_mean"] > base["accuracy_mean"] and aug["auc"] > base["auc"]
    d = metrics["deltas"]["+Eyeglasses"]
    assert d["accuracy"]["delta"] == pytest.approx(aug["accuracy_mean"] - base["accuracy_mean"])
    assert d["accuracy"]["p_value"] < 0.05
    assert d["auc"]["ci95"][0] > 0 and d["auc"]["p_value"] < 0.05
    assert metrics["paper"]["+Eyeglasses"]["tar_at_far_0.01"] == 0.85
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = CliRunner().invoke(cli, ["evaluate", "--baseline", str(tmp_path / "baseline.parquet"),
                                     "--augmented", f"+Eyeglasses={tmp_path / 'glasses.parquet'}",
                                     "--pairs", str(pairs), "--out", str(out), "--bootstrap", "200", "--json"])  # fmt: skip
    assert again.exit_code == 0
    assert json.loads(again.output)["models"] == metrics["models"]


def test_celeba_identification_protocol_from_embeddings(tmp_path):
    lfw_world(tmp_path)
    res = CliRunner().invoke(cli, ["evaluate", "--baseline", str(tmp_path / "baseline.parquet"), "--augmented",
                                   str(tmp_path / "glasses.parquet"), "--protocol", "celeba-ident",
                                   "--out", str(tmp_path / "o"), "--bootstrap", "50"])  # fmt: skip
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["models"]["baseline"]["targets"] == 30 and m["models"]["baseline"]["queries"] == 90
    assert m["models"]["glasses"]["accuracy_mean"] > m["models"]["baseline"]["accuracy_mean"]
    assert "rank-1" in m["models"]["baseline"]["accuracy_kind"]


def test_a_pair_without_an_embedding_is_an_error(tmp_path):
    pairs = lfw_world(tmp_path)
    df = pd.read_parquet(tmp_path / "glasses.parquet")
    df.iloc[3:].to_parquet(tmp_path / "holes.parquet")  # drops Person_00's first three images
    res = CliRunner().invoke(cli, ["evaluate", "--baseline", str(tmp_path / "baseline.parquet"), "--augmented",
                                   str(tmp_path / "holes.parquet"), "--pairs", str(pairs), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert "image path(s) named by the protocol have no embedding in" in res.output
    assert "holes.parquet" in res.output and "Person_00/Person_00_0001.jpg" in res.output


def test_nan_embedding_is_an_error(tmp_path):
    pairs = lfw_world(tmp_path)
    df = pd.read_parquet(tmp_path / "glasses.parquet")
    df.at[5, "embedding"] = np.full(64, np.nan, np.float32)
    df.to_parquet(tmp_path / "nan.parquet")
    res = CliRunner().invoke(cli, ["evaluate", "--baseline", str(tmp_path / "nan.parquet"),
                                   "--pairs", str(pairs), "--out", str(tmp_path / "o")])  # fmt: skip
    assert res.exit_code == 1
    assert "1 embedding(s) contain NaN" in res.output and df["path"][5] in res.output


def test_bad_model_argument_and_missing_pairs(tmp_path):
    lfw_world(tmp_path)
    (tmp_path / "x.txt").write_text("hello")
    res = CliRunner().invoke(cli, ["evaluate", "--baseline", str(tmp_path / "x.txt"), "--pairs", str(tmp_path / "pairs.txt")])
    assert res.exit_code == 1 and "not a readable Parquet file" in res.output
    res = CliRunner().invoke(cli, ["evaluate", "--baseline", str(tmp_path / "baseline.parquet")])
    assert res.exit_code == 1 and "--protocol lfw needs --pairs" in res.output
    res = CliRunner().invoke(cli, ["evaluate", "--baseline", str(tmp_path / "nothing_here")])
    assert res.exit_code == 1 and "no such file or folder" in res.output


def test_image_index_maps_original_paths_to_aligned_rows():
    from augment import manifest as mf

    frame = pd.DataFrame({
        "path": ["eval/A/A_0001.png", "B/B_0001.png"], "file": ["x", "y"], "identity": [0, 1],
        "sample_id": [mf.sample_id("lfw", "A/A_0001.jpg"), mf.sample_id("lfw", "B/B_0001.png")],
        "source": ["lfw", "lfw"],
    })  # fmt: skip
    idx = ImageIndex(frame, "aligned.parquet")
    assert idx.lookup("A/A_0001.jpg") == 0  # by the original image's sample id
    assert idx.lookup("B/B_0001.jpg") == 1  # same file, other extension
    assert idx.lookup("C/C_0001.jpg") is None


def test_paper_key():
    assert paper_key("baseline", is_baseline=True) == "baseline"
    assert paper_key("+Eyeglasses", ("Eyeglasses",)) == "Eyeglasses"
    assert paper_key("resnet_smile") == "Smiling"
    assert paper_key("+all", ("Eyeglasses", "Smiling")) is None
    assert paper_key("mine") is None


def test_table_marks_single_fold_accuracy():
    result = {"protocol": "lfw", "baseline": "b", "paper": {}, "deltas": {},
              "notes": ["single fold (LFW View 1 file): accuracy uses the threshold chosen on that same fold"],
              "models": {"b": {"accuracy_mean": 0.7, "accuracy_std": 0.0, "auc": 0.8, "eer": 0.3, "pairs": 10,
                               "tar_at_far": {"0.001": 0.1, "0.01": 0.2, "0.1": 0.4}}}}  # fmt: skip
    text = format_table(result)
    assert "0.7000±0.0000" in text and "note: single fold" in text


def test_repeats_pair_each_model_with_the_same_seed_baseline(tmp_path):
    """Models trained from several seeds: 'X@k' is compared with 'baseline@k', and
    the summary over seeds is the mean / sample std of the per-seed figures."""
    pairs = lfw_world(tmp_path)
    import shutil

    shutil.copy(tmp_path / "baseline.parquet", tmp_path / "baseline1.parquet")
    (tmp_path / "w2").mkdir()
    lfw_world(tmp_path / "w2", seed=1)  # the same image paths, other embeddings
    shutil.copy(tmp_path / "w2" / "glasses.parquet", tmp_path / "glasses1.parquet")
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["evaluate", "--baseline", str(tmp_path / "baseline.parquet"),
                                   "--augmented", f"baseline@1={tmp_path / 'baseline1.parquet'}",
                                   "--augmented", f"+Eyeglasses={tmp_path / 'glasses.parquet'}",
                                   "--augmented", f"+Eyeglasses@1={tmp_path / 'glasses1.parquet'}",
                                   "--pairs", str(pairs), "--out", str(out), "--bootstrap", "50"])  # fmt: skip
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert "baseline@1" not in m["deltas"]  # a baseline repeat is a reference, not a contender
    assert m["deltas"]["+Eyeglasses@1"]["reference"] == "baseline@1"
    assert "reference" not in m["deltas"]["+Eyeglasses"]
    models, rep = m["models"], m["repeats"]
    assert rep["baseline"]["seeds"] == 2 and rep["+Eyeglasses"]["seeds"] == 2
    acc = [models["+Eyeglasses"]["accuracy_mean"], models["+Eyeglasses@1"]["accuracy_mean"]]
    assert rep["+Eyeglasses"]["accuracy"]["mean"] == pytest.approx(np.mean(acc))
    assert rep["+Eyeglasses"]["accuracy"]["std"] == pytest.approx(np.std(acc, ddof=1))
    deltas = [m["deltas"][n]["tar_at_far_0.01"]["delta"] for n in ("+Eyeglasses", "+Eyeglasses@1")]
    d = rep["+Eyeglasses"]["deltas"]["tar_at_far_0.01"]
    assert d["mean"] == pytest.approx(np.mean(deltas)) and d["higher"] == sum(x > 0 for x in deltas)
    assert "deltas" not in rep["baseline"]


def test_reference_names():
    from recognition.evaluate import reference_name, split_repeat

    names = {"baseline", "baseline@1", "+A", "+A@1", "+A@2"}
    assert split_repeat("+A@2") == ("+A", 2) and split_repeat("user@home") == ("user@home", 0)
    assert reference_name("+A", "baseline", names) == "baseline"
    assert reference_name("+A@1", "baseline", names) == "baseline@1"
    assert reference_name("+A@2", "baseline", names) == "baseline"  # no same-seed baseline: the main one
    assert reference_name("baseline@1", "baseline", names) == "baseline@1"
    assert reference_name("baseline", "baseline", names) == "baseline"


def test_split_keeps_only_that_splits_images():
    from augment.data.errors import DatasetError
    from recognition.evaluate import cli_protocol

    frame = pd.DataFrame({"path": [f"{i}.png" for i in range(6)], "file": ["x"] * 6, "identity": [0, 0, 1, 1, 2, 2],
                          "split": ["train", "train", "test", "test", "val", "val"]})
    idx = ImageIndex(frame, "aligned.parquet")
    proto, _ = cli_protocol("celeba-ident", None, idx, [], None, seed=0)
    assert proto.keys == ["2.png", "3.png"]  # default: the test rows
    proto, _ = cli_protocol("celeba-ident", None, idx, [], "val", seed=0)
    assert proto.keys == ["4.png", "5.png"]
    with pytest.raises(DatasetError, match=r"--split nope: .* has no images in that split"):
        cli_protocol("celeba-ident", None, idx, [], "nope", seed=0)
    tree = ImageIndex(frame.drop(columns="split"), "faces/")
    with pytest.raises(DatasetError, match="a folder of images has no splits"):
        cli_protocol("celeba-ident", None, tree, [], "test", seed=0)


def test_a_one_seed_model_beside_repeats_has_no_spread():
    """A pretrained reference (one model) next to models of two seeds: its 'std' is
    None, not 0, and the report writes its mean alone (no '± 0.0000')."""
    from augment.report.text import spread
    from recognition.scoring import over_repeats

    def model(acc):
        return {"accuracy_mean": acc, "tar_at_far": {"0.001": 0.1, "0.01": 0.2, "0.1": 0.3}}

    result = {"models": {"baseline": model(0.80), "baseline@1": model(0.78), "dlib (pretrained reference)": model(0.95)},
              "deltas": {"dlib (pretrained reference)": {"accuracy": {"delta": 0.15}}}}
    rep = over_repeats(result)
    ref = rep["dlib (pretrained reference)"]
    assert ref["seeds"] == 1 and ref["accuracy"]["std"] is None and ref["deltas"]["accuracy"]["std"] is None
    assert rep["baseline"]["accuracy"]["std"] == pytest.approx(np.std([0.80, 0.78], ddof=1))
    assert spread(ref["accuracy"]) == "0.9500" and "±" in spread(rep["baseline"]["accuracy"])
