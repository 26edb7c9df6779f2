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


def test_noise_blends_the_blobs_towards_colour_noise_drawn_from_the_seed():
    x = torch.full((3, 3, 32, 32), 0.6)
    blobs = [np.array([[10, 10, 6, 4]], np.float32)] * 2 + [np.zeros((0, 4), np.float32)]
    out = S.smudge_batch(x, blobs, 1.0, seed=1, kind="noise")
    assert torch.equal(out, S.smudge_batch(x, blobs, 1.0, seed=1, kind="noise"))
    assert not torch.equal(out, S.smudge_batch(x, blobs, 1.0, seed=2, kind="noise"))
    assert torch.equal(out[2], x[2])  # no blob, no patch
    assert torch.equal(out[:2, :, 26], x[:2, :, 26])  # far away: untouched
    centre = out[:2, :, 8:13, 7:14]
    assert centre.min() >= -1 and centre.max() <= 1
    assert (centre - 0.6).abs().mean() > 0.1  # moved towards the noise...
    assert centre.std(dim=(2, 3)).min() > 0.05  # ...which differs pixel to pixel and channel to channel
    assert (centre[:, 0] - centre[:, 1]).abs().mean() > 0.05


def test_smudge_kind_picks_dark_noise_or_both_per_seed_and_step():
    x = torch.full((64, 3, 32, 32), 0.6)
    blobs = [np.array([[10, 10, 6, 4]], np.float32)] * 64
    centre = (slice(None), slice(None), slice(8, 13), slice(7, 14))

    def smudged(kind, step=3):
        cfg = TrainClassifierConfig(smudge_fraction=0.5, smudge_kind=kind)
        return C._smudged(x, blobs, cfg, 0, step)

    dark, noise, both = smudged("dark"), smudged("noise"), smudged("dark+noise")
    assert torch.equal(both, smudged("dark+noise")) and not torch.equal(both, smudged("dark+noise", step=4))

    def kinds(out):  # per image: darkened (grey kept: channels equal) / speckled (channels differ)
        c = out[centre]
        colour = (c[:, 0] - c[:, 1]).abs().mean(dim=(1, 2))
        return (c.mean(dim=(1, 2, 3)) < 0.5) & (colour == 0), colour > 0.05

    assert kinds(dark)[0].sum() > 20 and kinds(dark)[1].sum() == 0
    assert kinds(noise)[1].sum() > 20 and kinds(noise)[0].sum() == 0
    flat_dark, speckled = kinds(both)
    assert 5 < flat_dark.sum() < 25 and 5 < speckled.sum() < 25  # about a quarter each, not half
    assert torch.equal(both[:, :, 26], x[:, :, 26])  # far from the blobs: untouched


def test_prealigned_rows_are_smudged_where_the_manifests_template_puts_the_eyes(tmp_path):
    """A prealigned crop has no landmarks: its blobs come from the points of the
    template the manifest records (without one, no blobs: nothing to smudge)."""
    from augment.align.templates import template

    aligned, _ = make_dataset(tmp_path / "data", n=6)
    df = aligned.df.assign(landmarks=None, transform=None)
    bare = mf.Manifest("images", df, aligned.root)
    assert all(len(b) == 0 for b in S.manifest_blobs(bare, df, ["Eyeglasses"], 64))
    recorded = mf.Manifest("images", df, aligned.root, meta={"extra": {"template": "sagan", "size": 64}})
    blobs = S.manifest_blobs(recorded, df, ["Eyeglasses"], 64)
    eyes = template("sagan", 64)[:2]
    assert len(blobs) == len(df)
    for b in blobs:
        assert np.allclose(b[:, :2], eyes, atol=1e-4)  # one blob on each of the template's eyes


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


def _by_identity(tmp_path, n=60):
    """The fixture's faces (identity = i // 2, glasses on even identities) split
    80/10/10 by identity, as ``data.<role>.split: by_identity`` does, aligned by
    the sagan template at 32 px (no landmark rows, as prealigned crops)."""
    from augment.data.celeba import split_by_identity

    aligned, _ = make_dataset(tmp_path / "data", n=n, unknown=0)
    df = aligned.df.assign(split=split_by_identity(aligned.df["identity"].to_numpy()))
    return mf.Manifest("images", df, aligned.root, {"extra": {"template": "sagan", "size": 32}})


def test_other_people_judge_never_sees_the_generators_people(tmp_path):
    from augment.sagan.data import attribute_rows

    aligned = _by_identity(tmp_path)
    df = aligned.df
    # the people train_sagan learns each attribute from (its own row choice)
    identity_of = {aligned.root / p: i for p, i in zip(df["path"], df["identity"])}
    gen_paths, _ = attribute_rows(aligned, "Eyeglasses", ["train"])
    gen_people = {identity_of[p] for p in gen_paths}
    labelled = (C.label_matrix(df, ("Eyeglasses",)) >= 0).any(axis=1)
    train, held, split = J.choose_people(df, labelled, "others", "toy")
    judge_people, held_people = set(df["identity"][train]), set(df["identity"][held])
    assert len(gen_people) == 24 and len(judge_people) == 3 and split == "test"
    assert not judge_people & gen_people
    assert held_people and not held_people & (judge_people | gen_people)  # measured on people neither saw
    same, held_same, split_same = J.choose_people(df, labelled, "same", "toy")
    assert set(df["identity"][same]) == gen_people and split_same == "val"  # today's: the generator's people

    cfg = PipelineConfig(train_classifier=TrainClassifierConfig(
        attributes=("Eyeglasses",), image_size=16, width=4, steps=4, batch_size=4, checkpoint_every=100,
        people="others"), device="cpu")
    (tmp_path / "run").mkdir()
    row = C.run_stage(cfg, {"sagan_aligned": aligned, "aligned": None}, tmp_path / "run")["classifiers"].df.iloc[0]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    people = metrics["people"]
    assert people["people"] == "others" and people["shared_identities"] == 0
    assert people["train_identities"] == J.identities_record(judge_people)
    assert people["generator_identities"] == J.identities_record(gen_people)
    assert J.identities_record([3, 1, 1]) == J.identities_record([1, 3]) != J.identities_record([1, 2])
    assert metrics["split"] == row["eval_split"] == "test" and row["eval_images"] == int(held.sum())
    # real-face smudge_accept: the held-out faces without glasses, smudged over the template's eyes
    eye = metrics["attributes"]["Eyeglasses"]
    negatives = int((held & (C.label_matrix(df, ("Eyeglasses",))[:, 0] == 0)).sum())
    assert eye["smudge_images"] == negatives > 0 and 0 <= eye["smudge_accept"] <= 1
    assert 0 <= eye["clean_accept"] <= 1
    _, meta = J.load_classifier(tmp_path / "run" / "classifier")
    assert meta["people"] == people


def test_other_people_are_refused_when_the_split_shares_people(tmp_path):
    aligned, _ = make_dataset(tmp_path / "data", n=24)  # splits cycle by photo: every val person is in train
    labelled = (C.label_matrix(aligned.df, ("Eyeglasses",)) >= 0).any(axis=1)
    with pytest.raises(C.DatasetError, match="train_classifier.people is 'others'.*by_identity"):
        J.choose_people(aligned.df, labelled, "others", "toy")


class _DarkIsPresent:
    """A judge that calls a face with the attribute when its eye band is dark."""

    cfg = J.ClassifierConfig(("Eyeglasses",), 32, 4)

    def eval(self):
        return self

    def probabilities(self, x):
        return (x[:, :, 8:14, 4:28].mean(dim=(1, 2, 3)) < 0.7).float().reshape(-1, 1)  # clean: 0.80


def test_smudge_accept_counts_smudged_faces_called_present(tmp_path):
    from augment.io import save_png

    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.png")
        save_png(np.full((32, 32, 3), 230, np.uint8), paths[-1])
    eyes = S.smudge_blobs(np.array([[10, 11], [22, 11], [16, 17], [11, 23], [21, 23]]), ["Eyeglasses"])
    blobs = [eyes] * 4 + [np.zeros((0, 4), np.float32)]  # the last face has no blob: left out
    got = J.smudge_accept(_DarkIsPresent(), paths, blobs, "Eyeglasses", seed=0)
    assert got["smudge_accept"] == 1.0 and got["clean_accept"] == 0.0 and got["smudge_images"] == 4
    # colour noise over the same blobs, judged by the same rule (dark on average is "present")
    noised = S.smudge_batch(torch.full((4, 3, 32, 32), 230 / 127.5 - 1), blobs[:4], 1.0, 0, kind="noise")
    assert got["noise_accept"] == float(_DarkIsPresent().probabilities(noised).mean())
    assert J.smudge_accept(_DarkIsPresent(), paths[4:], blobs[4:], "Eyeglasses", seed=0)["smudge_accept"] is None
    # a row without landmarks takes the template's points when given them
    row = {"landmarks": None, "transform": None, "width": 32}
    pts = np.array([[10, 11], [22, 11], [16, 17], [11, 23], [21, 23]], np.float64)
    assert np.allclose(S.aligned_blobs(row, ["Eyeglasses"], 32, pts), eyes)
    assert S.aligned_blobs(row, ["Eyeglasses"], 32).shape == (0, 4)


def test_people_key_is_checked_at_load():
    from augment.config import ConfigError
    from augment.validate import load_config

    stages = "stages=read,align,train_classifier,train_sagan,eval_sagan"
    assert load_config(None, [stages], check_paths=False).train_classifier.people == "same"  # the default
    with pytest.raises(ConfigError, match="'train_classifier.people' is 'others'.*eval_sagan.split is 'val'"):
        load_config(None, [stages, "train_classifier.people=others", "eval_sagan.split=val"], check_paths=False)
    assert load_config(None, [stages, "train_classifier.people=others"], check_paths=False).eval_sagan.split == "test"
    with pytest.raises(ConfigError, match="train_classifier.people"):
        load_config(None, ["train_classifier.people=strangers"], check_paths=False)
    with pytest.raises(ConfigError, match="train_classifier.smudge_kind"):
        load_config(None, ["train_classifier.smudge_kind=speckle"], check_paths=False)
