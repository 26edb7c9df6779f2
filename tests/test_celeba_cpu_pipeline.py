"""pipelines/celeba_cpu.yaml, shrunken (few images, few steps), on the real files:
SaGAN and the classifier on celeba-aligned-10k, recognizers on celeba-identities,
LFW View 1 (slow: 2-6 minutes on 2 shared cores; skipped without ../shared/data)."""

from __future__ import annotations

import json

import pytest

from augment import manifest as mf
from augment.validate import load_config
from augment.pipeline import run_pipeline
from tests.conftest import REPO

TRAIN_IMAGES = 600
SAGAN_IMAGES = 1500


@pytest.mark.slow
def test_celeba_cpu_pipeline_shrunken(celeba_aligned_10k, celeba_identities, lfw_sample, tmp_path):
    work = tmp_path / "work"
    cfg = load_config(REPO / "pipelines" / "celeba_cpu.yaml", [
        f"workdir={work}",
        f"data.sagan.root={celeba_aligned_10k}", f"data.sagan.max_images={SAGAN_IMAGES}",
        # the first images (sorted) are all official train people: split the kept ones
        # by identity so that celeba-ident has test people
        f"data.train.root={celeba_identities}", f"data.train.max_images={TRAIN_IMAGES}", "data.train.split=by_identity",
        f"data.eval.root={lfw_sample / 'lfw-deepfunneled'}", f"data.eval.pairs={lfw_sample / 'pairsDevTest.txt'}",
        "train_classifier.steps=40", "train_sagan.steps=20", "train_sagan.checkpoint_every=10",
        "train_sagan.sample_every=10", "train_recognition.epochs=1", "evaluate.bootstrap=50",
    ])  # fmt: skip
    assert set(run_pipeline(cfg).values()) == {"ran"}

    # align: the two CelebA sets at 64 px by the sagan template, each way counted
    aligned = mf.read(work / "align" / "aligned.parquet", "images")
    sagan = mf.read(work / "align" / "sagan_aligned.parquet", "images")
    assert len(sagan) == SAGAN_IMAGES and sagan.meta["extra"]["modes"] == {"prealigned": SAGAN_IMAGES}
    assert set(sagan.df["split"]) == {"train", "val", "test"}  # by identity: the partition has only train
    extra = aligned.meta["extra"]
    n_lm = extra["modes"]["landmarks"]
    assert len(aligned) == TRAIN_IMAGES and n_lm > 0
    assert extra["missing_landmarks"] == {"policy": "prealigned", "prealigned": TRAIN_IMAGES - n_lm}
    assert {int(w) for w in aligned.df["width"]} == {64}

    # the generators learnt from data.sagan's training split, the classifier too
    gens = mf.read(work / "train_sagan" / "generators.parquet", "generators")
    assert set(gens.df["attribute"]) == {"Eyeglasses", "Smiling"}
    n_sagan_train = int((sagan.df["split"] == "train").sum())
    assert set(gens.df["train_images"]) == {n_sagan_train}
    quality = json.loads((work / "eval_sagan" / "metrics.json").read_text())
    n_sagan_test = int((sagan.df["split"] == "test").sum())
    for attr in ("Eyeglasses", "Smiling"):
        assert quality[attr]["images"] == n_sagan_test
        assert 0.0 <= quality[attr]["edit_success"] <= 1.0
        # identity on real faces: the baseline recognizer, no oracle without ground truth
        assert quality[attr]["id_images"] == n_sagan_test and quality[attr]["id_preserved_oracle"] is None
        assert 0.0 <= quality[attr]["id_preserved"] <= 1.0

    # every training photo of data.train edited to both values
    edits = mf.read(work / "edit" / "edits.parquet", "images")
    train_ids = set(aligned.df.loc[aligned.df["split"] == "train", "sample_id"])
    assert len(edits) == 4 * len(train_ids) and set(edits.df["parent_id"]) == train_ids  # 2 attributes x 2 values

    metrics = json.loads((work / "evaluate" / "metrics.json").read_text())
    assert set(metrics["protocols"]) == {"lfw", "attr-shift:Eyeglasses", "attr-shift:Smiling", "celeba-ident"}
    for name in ("lfw", "attr-shift:Eyeglasses", "attr-shift:Smiling"):
        proto = metrics["protocols"][name]
        assert {"baseline", "+Eyeglasses", "+Smiling"} <= set(proto["models"])
        assert {proto["repeats"][m]["seeds"] for m in ("baseline", "+Eyeglasses", "+Smiling")} == {3}
    assert metrics["protocols"]["lfw"]["models"]["baseline"]["pairs"] == 1000
    html = (work / "report.html").read_text()
    assert "data:image/png;base64," in html  # the real edit grids
    # every recognizer records how its faces were aligned, for `augment evaluate` on raw photos
    recs = mf.read(work / "train_recognition" / "recognizers.parquet", "recognizers")
    for path in recs.df["path"]:
        meta = json.loads((work / "train_recognition" / path / "meta.json").read_text())
        assert meta["alignment"] == {"template": "sagan", "size": 64}
