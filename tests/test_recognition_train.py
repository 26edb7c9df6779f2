"""ManifestDataset, the train_recognition stage (resume, determinism) and the evaluate stage on toy faces."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from augment import checkpoint as ckpt
from augment import manifest as mf
from augment.data.errors import DatasetError
from recognition import train as rt
from recognition.augmentation import AUGMENTATION_FILE
from recognition.fit import lr_at
from recognition.specs import model_specs, repeat_seed, repeated
from recognition.data import ManifestDataset, label_map
from recognition.embed import load_recognizer
from tests.recognition_fixtures import make_edits, make_faces, tiny_config


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    aligned = make_faces(root / "aligned", n_ids=6, per_id=8)
    test = make_faces(root / "aligned", n_ids=2, per_id=4, first_id=50, split="test", seed=5)
    aligned = mf.Manifest("images", pd.concat([aligned.df, test.df], ignore_index=True), root / "aligned")
    train_only = mf.Manifest("images", aligned.df[aligned.df["split"] == "train"].reset_index(drop=True), aligned.root)
    edits = make_edits(root / "edits", train_only, "Eyeglasses")
    evals = make_faces(root / "eval", n_ids=6, per_id=5, first_id=200, split="test", seed=9, source="lfw")
    return {"aligned": aligned, "edits": edits, "eval": evals}


def lfw_pairs(evals: mf.Manifest, seed: int = 0) -> mf.Manifest:
    """Two folds of same/different pairs over the toy evaluation images."""
    rng = np.random.default_rng(seed)
    df = evals.df
    rows = []
    for fold in range(2):
        for same in (True, False):
            for _ in range(20):
                a = df.iloc[rng.integers(len(df))]
                pool = df[(df["identity"] == a.identity) & (df["path"] != a.path)] if same else df[df["identity"] != a.identity]
                b = pool.iloc[rng.integers(len(pool))]
                rows.append({"fold": fold, "path_a": a.path, "path_b": b.path, "same": same})
    return mf.Manifest("pairs", pd.DataFrame(rows).astype({"fold": np.int16}), evals.root)


# --------------------------------------------------------------------------- #
# ManifestDataset
# --------------------------------------------------------------------------- #


def test_manifest_dataset_items(toy):
    train = toy["aligned"]
    ds = ManifestDataset([train, toy["edits"]], image_size=16)
    assert len(ds) == len(train) + len(toy["edits"])
    x, y = ds[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert ds.num_classes == len(set(train.df["identity"]))
    # an edit has its parent's label
    e = len(train)
    parent = train.df.index[train.df["sample_id"] == toy["edits"].df["parent_id"].iloc[0]][0]
    assert ds[e][1] == ds[int(parent)][1]
    assert sorted(set(ds.frame["label"])) == list(range(ds.num_classes))


def test_manifest_dataset_augmentation_is_seeded_per_epoch_and_item(toy):
    import albumentations as A

    aug = A.Compose([A.HorizontalFlip(p=0.5), A.ColorJitter(0.3, 0.3, 0.3, 0.05, p=1.0)])
    a = ManifestDataset(toy["aligned"], transform=aug, seed=3)
    b = ManifestDataset(toy["aligned"], transform=aug, seed=3)
    b[5], b[2]  # another access order must not matter
    assert torch.equal(a[2][0], b[2][0])
    a.set_epoch(1)
    assert not torch.equal(a[2][0], b[2][0])


def test_manifest_dataset_names_a_missing_file(toy, tmp_path):
    df = toy["aligned"].df.copy()
    df.loc[0, "path"] = "nope/missing.png"
    ds = ManifestDataset(mf.Manifest("images", df, toy["aligned"].root))
    with pytest.raises(DatasetError, match="missing.png: file not found"):
        ds[0]


def test_label_map_is_contiguous_and_sorted():
    assert label_map([7, 3, 7, 10]) == {3: 0, 7: 1, 10: 2}


def test_model_specs(toy):
    edits = toy["edits"]
    two = mf.Manifest("images", pd.concat([edits.df, edits.df.assign(attribute="Smiling")], ignore_index=True), edits.root)
    names = lambda specs: [s.name for s in specs]  # noqa: E731
    assert names(model_specs(toy["aligned"], None, "per_attribute", ("train",))) == ["baseline"]
    assert names(model_specs(toy["aligned"], two, "per_attribute", ("train",))) == ["baseline", "+Eyeglasses", "+Smiling"]
    specs = model_specs(toy["aligned"], two, "both", ("train",))
    assert names(specs) == ["baseline", "+Eyeglasses", "+Smiling", "+all"]
    n_train = int((toy["aligned"].df["split"] == "train").sum())
    assert [s.images for s in specs] == [n_train, n_train + len(edits), n_train + len(edits), n_train + 2 * len(edits)]
    rep = repeated(specs[:2], 3)
    assert names(rep) == ["baseline", "+Eyeglasses", "baseline@1", "+Eyeglasses@1", "baseline@2", "+Eyeglasses@2"]
    assert [s.repeat for s in rep] == [0, 0, 1, 1, 2, 2] and rep[3].manifests is specs[1].manifests
    assert repeat_seed(7, 0) == 7  # one repeat trains what it trained before repeats existed
    assert len({repeat_seed(7, k) for k in range(3)}) == 3


def test_lr_schedule():
    lrs = [lr_at(s, 100, 0.1, 10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] < 0.001


# --------------------------------------------------------------------------- #
# The stages
# --------------------------------------------------------------------------- #


def run_train(toy, tmp_path: Path, **over):
    cfg = tiny_config(tmp_path, **over)
    run_dir = tmp_path / "train_recognition"
    out = rt.run_stage(cfg, {"aligned": toy["aligned"], "edits": toy["edits"]}, run_dir)
    m = out["recognizers"]
    mf.write(m, run_dir / "recognizers.parquet")
    return cfg, run_dir, mf.read(run_dir / "recognizers.parquet", kind="recognizers")


@pytest.fixture(scope="module")
def trained(toy, tmp_path_factory):
    return run_train(toy, tmp_path_factory.mktemp("trained"))


def test_train_stage_outputs(trained):
    cfg, run_dir, rec = trained
    assert list(rec.df["name"]) == ["baseline", "+Eyeglasses"]
    assert list(rec.df["attributes"].map(list)) == [[], ["Eyeglasses"]]
    assert list(rec.df["train_images"]) == [48, 48 + 96]
    for row in rec.df.itertuples():
        model, meta = load_recognizer(rec.root / row.path)
        assert meta["backbone"] == "resnet18" and meta["image_size"] == 32 and meta["classes"] == 6
        assert meta["epoch"] == 2 and meta["head"] == "cosface" and meta["embedding_size"] == 32
        with torch.no_grad():
            assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 32)
    # the augmentation is saved as albumentations JSON and loads back
    import albumentations as A

    loaded = A.load(str(run_dir / AUGMENTATION_FILE), data_format="json")
    assert [type(t).__name__ for t in loaded.transforms] == ["HorizontalFlip", "ColorJitter"]
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["model"], r["epoch"]) for r in lines] == [("baseline", 1), ("baseline", 2), ("+Eyeglasses", 1), ("+Eyeglasses", 2)]
    assert all(np.isfinite(r["loss"]) and r["images_per_s"] > 0 for r in lines)
    # the augmented model saw three times the images in the same number of epochs
    assert lines[3]["step"] == 3 * lines[1]["step"]


def test_training_learns_the_toy_identities(toy, tmp_path):
    """Over eight epochs the loss falls for both models. (Two epochs of three steps,
    the shared fixture's, are too few: the baseline's second epoch can be the
    noisier one under CosFace's margin.)"""
    _, _, rec = run_train(toy, tmp_path, epochs=8)
    lines = [json.loads(line) for line in (rec.root / "metrics.jsonl").read_text().splitlines()]
    for name in ("baseline", "+Eyeglasses"):
        losses = [r["loss"] for r in lines if r["model"] == name]
        assert len(losses) == 8
        assert sum(losses[-2:]) < 0.7 * sum(losses[:2]), (name, losses)


def test_same_seed_same_weights_and_equal_steps(toy, trained, tmp_path):
    _, _, rec = trained
    _, _, again = run_train(toy, tmp_path / "again", models="per_attribute")
    assert list(again.df["weights_sha256"]) == list(rec.df["weights_sha256"])
    _, _, eq = run_train(toy, tmp_path / "eq", budget="equal_steps")
    assert eq.df["steps"].nunique() == 1 and eq.df["steps"].iloc[0] == rec.df["steps"].iloc[0]


def test_interrupted_training_resumes_to_the_same_weights(toy, trained, tmp_path, monkeypatch):
    _, _, rec = trained
    real_prune = ckpt.prune
    calls = {"n": 0}

    def interrupt_after_first_checkpoint(folder, keep):
        real_prune(folder, keep)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "prune", interrupt_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        run_train(toy, tmp_path)
    partial = tmp_path / "train_recognition" / "models" / "baseline" / "checkpoints"
    assert ckpt.latest(partial) is not None and not (partial.parent / "final").exists()
    _, run_dir, resumed = run_train(toy, tmp_path)
    assert list(resumed.df["weights_sha256"]) == list(rec.df["weights_sha256"])
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["model"], r["epoch"]) for r in lines] == [("baseline", 1), ("baseline", 2), ("+Eyeglasses", 1), ("+Eyeglasses", 2)]


def test_checkpoint_of_another_backbone_is_refused(trained, toy, tmp_path):
    _, _, rec = trained
    with pytest.raises(ckpt.CheckpointError, match="backbone='resnet18'.*backbone='mobilefacenet'"):
        load_recognizer(rec.root / rec.df["path"].iloc[0], backbone="mobilefacenet")
    # resuming a run folder whose checkpoints were made with another backbone
    _, run_dir, _ = trained
    import shutil

    copy = tmp_path / "train_recognition"
    shutil.copytree(run_dir / "models" / "baseline" / "checkpoints", copy / "models" / "baseline" / "checkpoints")
    cfg = tiny_config(tmp_path, backbone="mobilefacenet", width=0)
    with pytest.raises(ckpt.CheckpointError, match="backbone"):
        rt.run_stage(cfg, {"aligned": toy["aligned"]}, copy)


def test_evaluate_stage(trained, toy, tmp_path):
    from recognition.evaluate import run_stage

    cfg, run_dir, rec = trained
    cfg = replace(cfg, evaluate=replace(cfg.evaluate, protocols=("lfw", "celeba-ident"), bootstrap=50))
    pairs = lfw_pairs(toy["eval"])
    inputs = {"recognizers": rec, "eval_aligned": toy["eval"], "pairs": pairs, "aligned": toy["aligned"]}
    out_dir = tmp_path / "evaluate"
    out_dir.mkdir()
    out = run_stage(cfg, inputs, out_dir)
    metrics = json.loads(out["recognition_metrics"].read_text())
    assert metrics["protocol"] == "lfw" and set(metrics["protocols"]) == {"lfw", "celeba-ident"}
    assert set(metrics["models"]) == {"baseline", "+Eyeglasses"}
    base = metrics["models"]["baseline"]
    assert set(base["tar_at_far"]) == {"0.001", "0.01", "0.1"}
    assert base["pairs"] == 80 and not base["threshold_from_same_fold"]
    # distinct toy identities: pairs mapped to the right images score far above chance
    assert base["accuracy_mean"] > 0.7
    d = metrics["deltas"]["+Eyeglasses"]
    assert 0.0 <= d["accuracy"]["p_value"] <= 1.0 and "ci95" in d["tar_at_far_0.01"]
    assert metrics["paper"]["baseline"]["tar_at_far_0.01"] == 0.835
    assert metrics["paper"]["+Eyeglasses"]["tar_at_far_0.01"] == 0.85
    ident = metrics["protocols"]["celeba-ident"]["models"]["baseline"]
    assert ident["targets"] == 2 and ident["queries"] == 6
    assert (out_dir / "roc.png").read_bytes()[:4] == b"\x89PNG"
    # embeddings were cached; a rerun reuses them and gives the same metrics
    assert (out_dir / "embeddings" / "eval" / "baseline.parquet").is_file()
    again = json.loads(run_stage(cfg, inputs, out_dir)["recognition_metrics"].read_text())
    assert again == metrics


def _with_eyeglasses(m: mf.Manifest, values) -> mf.Manifest:
    from augment.data.celeba import CELEBA_ATTRIBUTES, attribute_index

    rows = []
    for v in values:
        a = -np.ones(len(CELEBA_ATTRIBUTES), np.int8)
        a[attribute_index("Eyeglasses")] = 1 if v else -1
        rows.append(a)
    return mf.Manifest("images", m.df.assign(attributes=rows), m.root)


def _lfw_named(m: mf.Manifest) -> mf.Manifest:
    """The same images under LFW's names (Name/Name_0001.png), so a pairs file can name them."""
    import shutil

    paths = []
    for r in m.df.itertuples():
        name = f"Person_{r.identity}"
        rel = f"{name}/{name}_{int(Path(r.path).stem) + 1:04d}.png"
        (Path(m.root) / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(m.root) / r.path, Path(m.root) / rel)
        paths.append(rel)
    return mf.Manifest("images", m.df.assign(path=paths, sample_id=[mf.sample_id("lfw", p) for p in paths]), m.root)


def test_evaluate_stage_attr_shift_and_strata(trained, tmp_path):
    from recognition.evaluate import run_stage

    cfg, _, rec = trained
    evals = make_faces(tmp_path / "eval", n_ids=24, per_id=4, first_id=300, split="test", seed=11, source="lfw")
    # every other person is photographed with and without glasses; the others always without
    person = evals.df["identity"].to_numpy() - 300
    values = np.where(person % 2 == 0, np.arange(len(person)) % 2, 0)
    evals = _with_eyeglasses(_lfw_named(evals), values)
    cfg = replace(cfg, evaluate=replace(cfg.evaluate, protocols=("lfw", "attr-shift:Eyeglasses"), bootstrap=20))
    pairs = lfw_pairs(evals)
    out_dir = tmp_path / "evaluate"
    out_dir.mkdir()
    metrics = json.loads(run_stage(cfg, {"recognizers": rec, "eval_aligned": evals, "pairs": pairs},
                                   out_dir)["recognition_metrics"].read_text())
    shift = metrics["protocols"]["attr-shift:Eyeglasses"]
    assert set(shift["models"]) == {"baseline", "+Eyeglasses"} and "+Eyeglasses" in shift["deltas"]
    info = shift["info"]
    assert info["people_with_both_values"] == 12 and info["attributes"] == "dataset" and info["folds"] == 10
    assert shift["models"]["baseline"]["pairs"] == 20 * info["pairs_per_fold"]
    from augment.data import lfw

    back = lfw.read_pairs(out_dir / info["pairs_file"])  # LFW View 2 format, any tool reads it
    assert len(back) == shift["models"]["baseline"]["pairs"] and back["fold"].nunique() == 10
    strata = metrics["protocols"]["lfw"]["strata"]["Eyeglasses"]
    assert sum(v["pairs"] for v in strata.values()) == 80
    assert all(0.0 <= a <= 1.0 for v in strata.values() for a in v["models"].values())
    assert "strata" not in shift  # the protocol itself is built on the attribute


def test_oracle_twins_follow_their_sagan_models(toy):
    aligned, edits = toy["aligned"], toy["edits"]
    oracle = mf.Manifest("images", edits.df.assign(source="oracle", generator_id="oracle"), edits.root)
    specs = model_specs(aligned, edits, "per_attribute", ("train",), oracle)
    assert [s.name for s in specs] == ["baseline", "+Eyeglasses", "+Eyeglasses:oracle"]
    assert specs[2].attributes == ("Eyeglasses",) and specs[2].images == specs[1].images
    assert (specs[2].manifests[1].df["source"] == "oracle").all()
    names = [s.name for s in repeated(specs, 2)]
    assert names[3:] == ["baseline@1", "+Eyeglasses@1", "+Eyeglasses:oracle@1"]


def test_evaluate_stage_names_images_missing_from_the_alignment(trained, toy, tmp_path):
    from recognition.evaluate import run_stage

    cfg, _, rec = trained
    pairs = lfw_pairs(toy["eval"])
    ev = toy["eval"]
    dropped = ev.df["path"].iloc[0]
    fewer = mf.Manifest("images", ev.df.iloc[1:].reset_index(drop=True), ev.root)
    sid = ev.df["sample_id"].iloc[0]
    rejects = mf.Manifest("rejects", pd.DataFrame({"sample_id": [sid], "path": ["/abs/" + dropped],
                                                   "reason": ["no_face"], "detail": [""]}), ev.root)  # fmt: skip
    with pytest.raises(DatasetError, match=f"have no aligned face: {dropped} \\(no_face\\)"):
        run_stage(cfg, {"recognizers": rec, "eval_aligned": fewer, "pairs": pairs, "rejects": rejects}, tmp_path)


DDP_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from augment import distributed as dist
from augment import manifest as mf
from recognition import train as rt
from tests.recognition_fixtures import tiny_config

dist.init("cpu")  # the pipeline runner's job, done here since the stage runs alone
tmp = Path({tmp!r})
aligned, edits = mf.read(tmp / "aligned.parquet"), mf.read(tmp / "edits.parquet")
out = rt.run_stage(tiny_config(tmp), {{"aligned": aligned, "edits": edits}}, tmp / "train_recognition")
if dist.is_main():
    mf.write(out["recognizers"], tmp / "recognizers.parquet")
dist.shutdown()
"""


@pytest.mark.slow
def test_two_process_ddp_training(toy, trained, tmp_path):
    """torchrun with 2 CPU processes (gloo): same models and steps as one process."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    mf.write(toy["aligned"], tmp_path / "aligned.parquet")
    mf.write(toy["edits"], tmp_path / "edits.parquet")
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(repo=str(repo), tmp=str(tmp_path)))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True, text=True, timeout=300, cwd=repo,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = mf.read(tmp_path / "recognizers.parquet", kind="recognizers").df
    want = trained[2].df
    assert list(got["name"]) == list(want["name"])
    assert list(got["steps"]) == list(want["steps"])  # the global batch is split across ranks
    lines = (tmp_path / "train_recognition" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4  # rank 0 alone logs


def test_evaluate_command_on_checkpoints(trained, toy, tmp_path):
    """``augment evaluate`` with a run folder (baseline and augmented) and an aligned manifest."""
    from click.testing import CliRunner

    from augment.cli import cli

    _, run_dir, rec = trained
    mf.write(toy["eval"], tmp_path / "eval_aligned.parquet")
    mf.write(lfw_pairs(toy["eval"]), tmp_path / "pairs.parquet")
    args = ["evaluate", "--baseline", str(run_dir), "--augmented", str(run_dir), "--pairs", str(tmp_path / "pairs.parquet"),
            "--images", str(tmp_path / "eval_aligned.parquet"), "--out", str(tmp_path / "out"), "--bootstrap", "20",
            "--device", "cpu"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "+Eyeglasses" in res.output and "baseline" in res.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"baseline", "+Eyeglasses"}
    # a single checkpoint folder, named on the command line
    single = ["evaluate", "--baseline", f"mine={rec.root / rec.df['path'].iloc[0]}", "--pairs",
              str(tmp_path / "pairs.parquet"), "--images", str(tmp_path / "eval_aligned.parquet"),
              "--out", str(tmp_path / "out2"), "--bootstrap", "0"]  # fmt: skip
    res = CliRunner().invoke(cli, single)
    assert res.exit_code == 0, res.output
    got = json.loads((tmp_path / "out2" / "metrics.json").read_text())["models"]["mine"]
    assert got["accuracy_mean"] == metrics["models"]["baseline"]["accuracy_mean"]
    # a checkpoint without --images cannot be embedded
    res = CliRunner().invoke(cli, single[:5] + ["--out", str(tmp_path / "out3")])
    assert res.exit_code == 1 and "give --images" in res.output
