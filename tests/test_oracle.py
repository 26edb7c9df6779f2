"""SynthFaces counterfactuals for any split, and the oracle stage built on them."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from augment import manifest as mf
from augment.validate import load_config
from augment.data.attributes import from_vectors
from augment.data.errors import DatasetError
from augment.data.synthfaces import Settings, synthesize
from augment.sagan.apply import edit_id
from augment.oracle import oracle_edits
from augment.pipeline import run_pipeline


def _run(tmp_path, splits=("train", "val", "test")):
    cfg = load_config(None, [
        f"workdir={tmp_path / 'run'}", "stages=synth,read,align", "device=cpu",
        "synth.identities=10", "synth.images_per_identity=3", "synth.lfw_identities=4",
        "synth.lfw_images_per_identity=3", "synth.size=64", "synth.workers=1",
        f"synth.groundtruth_splits={','.join(splits)}",
        "data.train.format=synthfaces", "data.train.align=landmarks",
        "align.template=arcface", "align.size=64", "align.workers=1",
    ])  # fmt: skip
    run_pipeline(cfg)
    run = tmp_path / "run"
    return (mf.read(run / "align" / "aligned.parquet"), mf.read(run / "synth" / "data" / "groundtruth" / "index.parquet"))


def _edits(aligned: mf.Manifest, attribute="Eyeglasses") -> mf.Manifest:
    """Both target values for every aligned image, as the edit stage's rows name them."""
    rows = []
    for _, r in aligned.df.iterrows():
        for v in (1, 0):
            rows.append({**{k: r[k] for k in aligned.df.columns}, "sample_id": edit_id(r["sample_id"], attribute, v),
                         "path": f"x/{r['sample_id']}_{v}.png", "source": "sagan", "parent_id": r["sample_id"],
                         "attribute": attribute, "target_value": v, "generator_id": "g", "mask_area": 0.1})
    return mf.Manifest("images", mf.frame("images", rows), aligned.root)


def _rgb(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_groundtruth_splits_adds_counterfactuals_and_keeps_the_photos(tmp_path):
    small = dict(identities=10, images_per_identity=3, lfw_identities=4, lfw_images_per_identity=3, size=64)
    plain = synthesize(tmp_path / "a", Settings(**small), progress=False)
    more = synthesize(tmp_path / "b", Settings(**small, groundtruth_splits=("train", "test")), progress=False)
    assert len(more) > len(plain)
    assert set(plain.df["image"]) < set(more.df["image"])
    for p in sorted((tmp_path / "a" / "celeba" / "img_align_celeba").iterdir()):
        assert p.read_bytes() == (tmp_path / "b" / "celeba" / "img_align_celeba" / p.name).read_bytes()
    # the default records none of the later keys, so older datasets stay complete
    assert "groundtruth_splits" not in Settings(**small).as_dict()
    assert Settings(**small, groundtruth_splits=("train",)).as_dict()["groundtruth_splits"] == ["train"]


def test_lfw_attribute_file_matches_the_rendered_habits(tmp_path):
    s = Settings(identities=4, images_per_identity=2, lfw_identities=10, lfw_images_per_identity=5, size=64,
                 habit_strength=1.0, lfw_habit_by_attribute={"Eyeglasses": 0.5})
    synthesize(tmp_path / "d", s, progress=False)
    table = pd.read_csv(tmp_path / "d" / "lfw" / "lfw_attributes.csv")
    assert set(table.columns) == {"image", "attribute", "value"}
    person = table["image"].str.split("/").str[0]
    varies = table.assign(person=person).groupby(["person", "attribute"])["value"].nunique()
    assert (varies.xs("Smiling", level="attribute") == 1).all()  # habit 1.0: never changes
    assert (varies.xs("Eyeglasses", level="attribute") == 2).mean() >= 0.7  # 0.5: most people both ways


def test_oracle_edits_are_the_exact_counterfactuals(tmp_path):
    aligned, gt = _run(tmp_path)
    edits = _edits(aligned)
    out = oracle_edits(edits, aligned, gt, tmp_path / "oracle", progress=False)
    df = out.df
    assert len(df) == len(edits) and (df["generator_id"] == "oracle").all() and (df["source"] == "oracle").all()
    assert list(df["parent_id"]) == list(edits.df["parent_id"])
    assert list(df["target_value"]) == list(edits.df["target_value"])
    assert not set(df["sample_id"]) & set(edits.df["sample_id"])  # its own ids: both sets can be exported together
    by_id = aligned.df.set_index("sample_id")
    current = from_vectors(by_id.loc[df["parent_id"], "attributes"], "Eyeglasses")
    changed = df["target_value"].to_numpy() != current
    assert changed.sum() == len(aligned) and (df.loc[~changed, "mask_area"] == 0).all()
    assert (df.loc[changed, "mask_area"] > 0).all()
    new = from_vectors(df["attributes"], "Eyeglasses")
    assert (new == df["target_value"].to_numpy()).all()
    for i in range(len(df)):
        img = _rgb(out.root / df["path"].iat[i])
        parent = _rgb(aligned.root / by_id.loc[df["parent_id"].iat[i], "path"])
        diff = np.abs(img.astype(int) - parent.astype(int)).max(axis=2)
        if changed[i]:
            assert (diff > 0).mean() > 0.005  # glasses drawn or taken away
            assert (diff > 0).mean() < 0.5  # around the eyes, not everywhere
        else:
            assert diff.max() == 0  # the perfect edit to the value it has: the photo itself
    again = oracle_edits(edits, aligned, gt, tmp_path / "oracle", progress=False)  # resumes: files kept
    pd.testing.assert_frame_equal(again.df, df)


def test_oracle_without_training_counterfactuals_says_which_key(tmp_path):
    aligned, gt = _run(tmp_path, splits=("test",))
    with pytest.raises(DatasetError, match=r"synth.groundtruth_splits"):
        oracle_edits(_edits(aligned), aligned, gt, tmp_path / "oracle", progress=False)


class _KeepGenerator:
    """A generator whose attention is 0 everywhere: every edit is its input."""

    def attention(self, x):
        import torch

        return torch.zeros_like(x[:, :1])

    def manipulate(self, x, c):
        return -x

    def blend(self, x, x_a, mask):
        return x_a * mask + x * (1 - mask)


def test_id_preservation_of_an_editor_that_changes_nothing(tmp_path):
    import torch

    from augment.sagan.identity import id_preservation

    aligned, gt = _run(tmp_path)
    rows = aligned.df[aligned.df["split"] == "test"].reset_index(drop=True)
    torch.manual_seed(0)
    recognizer = torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(3 * 16, 16)).eval()
    out = id_preservation(_KeepGenerator(), 32, "Eyeglasses", aligned, rows, gt, recognizer, 16, threshold=0.5)
    assert out["id_images"] == len(rows)
    assert out["id_similarity"] == pytest.approx(1.0, abs=1e-5) and out["id_preserved"] == 1.0
    assert out["id_similarity_oracle"] < 1.0  # the perfect edit does change the face
    strict = id_preservation(_KeepGenerator(), 32, "Eyeglasses", aligned, rows, gt, recognizer, 16, threshold=1.01)
    assert strict["id_preserved"] == 0.0 and strict["id_preserved_oracle"] == 0.0
    # real faces have no ground truth: the edits alone, every labelled row, no oracle
    real = id_preservation(_KeepGenerator(), 32, "Eyeglasses", aligned, rows, None, recognizer, 16, threshold=0.5)
    assert real["id_images"] == len(rows) and real["id_preserved"] == 1.0
    assert real["id_preserved_oracle"] is None and real["id_similarity_oracle"] is None
