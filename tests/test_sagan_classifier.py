"""The independent attribute classifier: masked loss, training, the stage, scoring images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from augment import checkpoint as ckpt
from augment import manifest as mf
from augment.config import PipelineConfig, TrainClassifierConfig
from augment.sagan import classifier as C
from augment.sagan import judge as J
from augment.sagan import smudge as S
from tests.sagan_fixtures import make_dataset


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_masked_bce_ignores_unknown_labels_and_weights_positives():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    labels = torch.tensor([[1.0, -1.0], [0.0, 1.0]])
    pos_weight = torch.tensor([3.0, 1.0])
    got = C.masked_bce(logits, labels, pos_weight)
    sp = torch.nn.functional.softplus
    # known entries: (0,0) positive weighted 3, (1,0) negative, (1,1) positive weighted 1
    expected = (3 * sp(-logits[0, 0]) + sp(logits[1, 0]) + sp(-logits[1, 1])) / 3
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_augment_batch_is_seeded_and_keeps_shape():
    x = torch.rand(4, 3, 16, 16)
    a, b = C.augment_batch(x, 7), C.augment_batch(x, 7)
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.equal(C.augment_batch(x, 8), a)


def test_stage_learns_the_attribute_and_records_held_out_accuracy(tmp_path):
    aligned, _ = make_dataset(tmp_path / "data", n=48, unknown=4)
    cfg = PipelineConfig(
        train_classifier=TrainClassifierConfig(attributes=("Eyeglasses", "Smiling"), image_size=16, width=8,
                                               steps=60, batch_size=8, lr=3e-3, checkpoint_every=30),
        device="cpu",
    )
    run_dir = tmp_path / "train_classifier"
    run_dir.mkdir()
    out = C.run_stage(cfg, {"aligned": aligned}, run_dir)["classifiers"]
    back = mf.read(mf.write(out, run_dir / "classifiers.parquet"), "classifiers")
    row = back.df.iloc[0]
    assert list(row["attributes"]) == ["Eyeglasses", "Smiling"]
    assert row["eval_split"] == "val" and row["eval_images"] == 7  # 8 val faces, one unlabelled
    acc = dict(zip(row["attributes"], row["accuracy"]))
    assert acc["Eyeglasses"] >= 0.85  # a dark bar is easy to see
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"] == "val"
    assert metrics["attributes"]["Eyeglasses"]["accuracy"] == pytest.approx(acc["Eyeglasses"], abs=1e-6)
    assert row["classifier_id"] == mf.file_digest(run_dir / "classifier" / ckpt.WEIGHTS)[:16]

    model, meta = J.classifier_from_manifest(back, "Eyeglasses")
    assert meta["kind"] == J.KIND and not model.training
    # scoring works at any input size (resized to the classifier's)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    p = model.attribute_probability(x, "Eyeglasses")
    assert p.shape == (3,) and (p >= 0).all() and (p <= 1).all()
    assert model.probabilities(x).shape == (3, 2)
    with pytest.raises(ValueError, match="Bangs"):
        model.attribute_probability(x, "Bangs")
    with pytest.raises(Exception, match="no classifier knows 'Bangs'"):
        J.classifier_from_manifest(back, "Bangs")
    # the train checkpoints resume: a rerun with the same config trains no further and agrees
    ds_y = C.label_matrix(aligned.df, ("Eyeglasses", "Smiling"))
    assert (ds_y[:, 1] == 0).sum() > 0 and np.isin(ds_y, (-1, 0, 1)).all()
    again = C.run_stage(cfg, {"aligned": aligned}, run_dir)["classifiers"].df.iloc[0]
    assert again["classifier_id"] == row["classifier_id"]


def test_weights_do_not_depend_on_the_global_random_state(tmp_path):
    """Same data and seed -> same weights, whatever the process drew before
    (a pipeline's earlier stages consume the global generator)."""
    aligned, _ = make_dataset(tmp_path / "data", n=24, unknown=0)
    ds = C.ImageDataset([aligned.root / p for p in aligned.df["path"]], 16,
                        C.label_matrix(aligned.df, ("Eyeglasses",)))
    ccfg = C.ClassifierConfig(("Eyeglasses",), 16, 4)
    clf_train_cfg = TrainClassifierConfig(attributes=("Eyeglasses",), image_size=16, width=4, steps=6, batch_size=8,
                                 checkpoint_every=100)
    weights = []
    for k, burn in enumerate((0, 123)):
        torch.manual_seed(burn)
        torch.rand(burn + 1)
        model, _ = C.train_classifier(ds, ccfg, clf_train_cfg, tmp_path / f"o{k}", seed=5)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_smudge_blobs_sit_on_the_attributes_landmarks():
    lm = np.array([[20, 24], [44, 24], [32, 34], [24, 46], [40, 46]], np.float32)  # eyes 24 px apart
    eyes = S.smudge_blobs(lm, ["Eyeglasses"])
    assert eyes.shape == (2, 4)
    assert np.allclose(eyes[:, :2], [[20, 24], [44, 24]]) and np.allclose(eyes[:, 2:], [[0.45 * 24, 0.3 * 24]] * 2)
    mouth = S.smudge_blobs(lm, ["Smiling"])
    assert np.allclose(mouth[0, :2], [32, 46])
    assert S.smudge_blobs(lm, ["Eyeglasses", "No_Beard"]).shape == (3, 4)
    assert S.smudge_blobs(lm, ["Bangs"]).shape == (0, 4)  # no known region: no smudge
    # an aligned row: source landmarks mapped by its transform, scaled to the model's size
    row = {"landmarks": (lm - [4, 2]).reshape(-1), "transform": np.array([1, 0, 4, 0, 1, 2], np.float32),
           "width": 64}
    assert np.allclose(S.aligned_blobs(row, ["Eyeglasses"], 32)[:, :2], eyes[:, :2] / 2)
    assert S.aligned_blobs({"landmarks": None, "transform": None}, ["Eyeglasses"], 32).shape == (0, 4)


def test_smudge_batch_darkens_the_blobs_of_the_chosen_images_only():
    x = torch.full((6, 3, 32, 32), 0.6)
    blobs = [np.array([[10, 10, 4, 3]], np.float32)] * 5 + [np.zeros((0, 4), np.float32)]
    out = S.smudge_batch(x, blobs, 1.0, seed=1)
    assert torch.equal(out, S.smudge_batch(x, blobs, 1.0, seed=1))
    assert torch.equal(out[5], x[5])  # no blob, no smudge
    assert (out[:5, :, 10, 10] < 0.6 - 0.3 * 1.6 + 1e-4).all()  # at least 30% darker at the centre, in [0,1]
    assert torch.allclose(out[:5, :, 28, 28], x[:5, :, 28, 28])  # far away: untouched
    assert torch.equal(S.smudge_batch(x, blobs, 0.0, seed=1), x)
    many = torch.full((200, 3, 32, 32), 0.6)
    some = S.smudge_batch(many, [blobs[0]] * 200, 0.5, seed=3)
    changed = sum(not torch.equal(some[i], many[i]) for i in range(200))
    assert 70 < changed < 130  # about half, drawn from the seed


def test_fade_blends_the_blobs_towards_a_blur_that_wipes_thin_lines():
    x = torch.full((3, 3, 32, 32), -0.2)
    x[:, :, 10, 4:17] = 0.8  # a one-pixel frame through the blob
    x[:, :, 26, :] = 0.8  # the same line far from it
    blobs = [np.array([[10, 10, 6, 4]], np.float32)] * 2 + [np.zeros((0, 4), np.float32)]
    out = S.smudge_batch(x, blobs, 1.0, seed=1, kind="fade")
    assert torch.equal(out, S.smudge_batch(x, blobs, 1.0, seed=1, kind="fade"))
    assert torch.equal(out[2], x[2])  # no blob, no fade
    contrast = out[:2, :, 10, 10] - out[:2, :, 13, 10]
    assert (contrast < 0.7 * 1.0).all() and (contrast > 0).all()  # fainter by at least d >= 0.3, not gone
    assert torch.equal(out[:2, :, 26], x[:2, :, 26])  # far away: untouched
    assert torch.allclose(out[:2, :, 13, 10], x[:2, :, 13, 10], atol=0.05)  # flat skin keeps its colour
    flat = torch.full((1, 3, 16, 16), 0.3)  # nothing thin to wipe out: a fade leaves it as it was
    assert torch.allclose(S.smudge_batch(flat, [np.array([[8, 8, 5, 4]], np.float32)], 1.0, seed=2, kind="fade"), flat)
    with pytest.raises(ValueError, match="kind"):
        S.smudge_batch(x, blobs, 1.0, seed=1, kind="blue")


def test_counterfactuals_join_the_training_set_with_the_label_flipped(tmp_path):
    aligned, gt = make_dataset(tmp_path / "data", n=30)
    attrs = ("Eyeglasses",)
    # the fixture's ground truth covers its test faces: stand them in for training ones
    df = aligned.df[aligned.df["split"] == "test"].reset_index(drop=True)
    df = df[(C.label_matrix(df, attrs) >= 0).any(axis=1)].reset_index(drop=True)
    base = C.ImageDataset([aligned.root / p for p in df["path"]], 16, C.label_matrix(df, attrs))
    ds, rows = C.with_counterfactuals(base, df, aligned, gt, attrs, tmp_path / "cf")
    n = len(base)
    assert n > 0 and len(ds) == 2 * n == len(rows)
    assert np.array_equal(ds.labels[n:], 1 - ds.labels[:n])
    assert list(rows["sample_id"][n:]) == list(df["sample_id"])
    for i in range(n):  # the pair differs where the bar is (and the truth says so)
        diff = np.abs(ds.image(i).astype(int) - ds.image(n + i).astype(int)).mean(axis=2)
        assert diff[4:8, :].mean() > 20 and diff[12:, :].mean() < 8
    same, _ = C.with_counterfactuals(base, df, aligned, None, attrs, tmp_path / "cf2")
    assert same is base  # no ground truth: nothing added
