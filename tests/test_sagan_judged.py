"""eval_sagan's judges that owe nothing to the generator: locality against the
template regions, dlib's identity figures beside their reference scale (on the
images said), and the stage without the ``judges`` extra."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from augment import manifest as mf
from augment.config import EvalSaganConfig, PipelineConfig
from augment.groundtruth import groundtruth_index, perfect_edit
from augment.io import read_rgb, to_tensor, to_uint8
from augment.judges import identity as idj
from augment.judges.regions import region_mask
from augment.sagan import evaluate as E
from augment.sagan import judged as J
from augment.sagan.apply import EditModels, edit_batch
from augment.sagan.data import attribute_labels
from tests.sagan_fixtures import PaintingGenerator, ALIGNED, TINY, make_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


class _Judge:
    """A stand-in attribute classifier: P(attribute) = 0.5 for every image."""

    def attribute_probability(self, x, attribute):
        return torch.full((x.shape[0],), 0.5)


_Where = PaintingGenerator  # the mask is where(size)


def _eyes(size: int) -> np.ndarray:
    return region_mask("Eyeglasses", "arcface", size)


def _with_template(aligned: mf.Manifest) -> mf.Manifest:
    aligned.meta = {"extra": {"template": "arcface", "size": ALIGNED}}
    return aligned


def _fake_models(monkeypatch, G, size=16):
    monkeypatch.setattr(E, "load_generator", lambda *a, **k: (G, {"image_size": size, "step": 1}))
    monkeypatch.setattr(E, "classifier_from_manifest", lambda *a, **k: (_Judge(), {}))


def test_an_edit_inside_the_region_changes_nothing_outside_it(tmp_path, monkeypatch):
    """Locality at the generator's size (16 px of 32 px crops): the region must be
    placed for the arrays it is compared with, or the inside edit would leak out."""
    aligned, gt = make_dataset(tmp_path, n=30)
    _fake_models(monkeypatch, _Where(_eyes))
    m, _ = E.evaluate_attribute("Eyeglasses", tmp_path, None, aligned, gt, "test", 0, 4, CPU, "arcface")
    for block in (m, m["add"], m["remove"]):
        assert block["images"] > 0
        assert block["outside_change_region"] == 0.0 and block["mask_in_region"] == 1.0
    assert 0 <= m["mask_in_true_region"] <= 1  # against the true region too (SynthFaces-like ground truth)

    _fake_models(monkeypatch, _Where(lambda s: 1 - _eyes(s)))
    out, _ = E.evaluate_attribute("Eyeglasses", tmp_path, None, aligned, gt, "test", 0, 4, CPU, "arcface")
    for block in (out, out["add"], out["remove"]):
        assert block["outside_change_region"] > 0.1 and block["mask_in_region"] == 0.0

    # no template (a manifest made otherwise), or an attribute without a region: no locality figures
    none, _ = E.evaluate_attribute("Eyeglasses", tmp_path, None, aligned, gt, "test", 0, 4, CPU, None)
    assert none["outside_change_region"] is None and none["mask_in_region"] is None
    assert J.locality_problem("Bald", "arcface").startswith("no template region for Bald")


def test_without_the_judge_the_stage_runs_and_says_so(tmp_path, monkeypatch):
    aligned, gt = make_dataset(tmp_path / "data", n=30)
    aligned = _with_template(aligned)
    message = "the identity judge needs the 'judges' extra (test)"
    monkeypatch.setattr(idj, "missing", lambda: message)
    _fake_models(monkeypatch, _Where(_eyes))
    gens = mf.Manifest("generators", mf.frame("generators", [{
        "attribute": "Eyeglasses", "path": "g", "generator_id": "g0", "step": 1, "preset": "fast",
        "image_size": 16}]), tmp_path)
    cfg = PipelineConfig(eval_sagan=EvalSaganConfig(split="test", batch_size=4), device="cpu")
    run_dir = tmp_path / "eval_sagan"
    run_dir.mkdir()
    out = E.run_stage(cfg, {"aligned": aligned, "groundtruth": gt, "generators": gens, "classifiers": None}, run_dir)
    m = json.loads(out["sagan_metrics"].read_text())["Eyeglasses"]
    assert m["judges"]["identity"] == f"not installed: {message}"
    assert m["judges"]["locality"].startswith("template regions, no model") and "arcface" in m["judges"]["locality"]
    assert "identity_run" not in m["judges"]  # no recognizer trained in this pipeline
    for block in (m, m["add"], m["remove"]):
        assert not any(k.startswith("id_") for k in block), sorted(block)
        assert block["outside_change_region"] == 0.0 and block["mask_in_region"] == 1.0
    assert (run_dir / "grids.json").is_file()


def test_pairs_are_of_the_kind_asked_distinct_and_repeatable():
    codes = np.array([0, 0, 0, 1, 1, 2, -1, 2])
    same = J.sample_pairs(codes, True, 100, np.random.default_rng(0))
    assert sorted(same) == [(0, 1), (0, 2), (1, 2), (3, 4), (5, 7)]  # every one, unknown identity left out
    diff = J.sample_pairs(codes, False, 5, np.random.default_rng(0))
    assert len(set(diff)) == 5 and all(codes[a] != codes[b] and a < b and -1 not in codes[[a, b]] for a, b in diff)
    assert diff == J.sample_pairs(codes, False, 5, np.random.default_rng(0))
    big = np.arange(2000) // 4  # 2,000,000 candidate pairs: drawn at random
    drawn = J.sample_pairs(big, True, 50, np.random.default_rng(1))
    assert len(set(drawn)) == 50 and all(big[a] == big[b] and a < b for a, b in drawn)
    assert J.sample_pairs(np.array([3, 3, 3]), False, 10, np.random.default_rng(0)) == []


@pytest.fixture(scope="module")
def toy_faces(tmp_path_factory):
    """SynthFaces at the smoke pipeline's size, aligned (synth, read, align):
    (aligned manifest, ground truth, seed)."""
    from augment.pipeline import run_pipeline
    from augment.validate import load_config

    if idj.missing():
        pytest.fail(idj.missing())  # make test installs the extra: its absence is a set-up error
    work = tmp_path_factory.mktemp("judged")
    spec = yaml.safe_load((REPO / "pipelines" / "smoke.yaml").read_text())
    spec.update(stages=["synth", "read", "align"], workdir=str(work / "run"))
    (work / "p.yaml").write_text(yaml.safe_dump(spec))
    cfg = load_config(work / "p.yaml", [])
    run_pipeline(cfg)
    aligned = mf.read(work / "run" / "align" / "aligned.parquet", "images")
    gt = mf.read(work / "run" / "synth" / "groundtruth.parquet", "groundtruth")
    return aligned, gt, cfg.seed


def test_identity_figures_on_toy_faces_are_the_judges_on_the_images_said(toy_faces, tmp_path, monkeypatch):
    """A tiny, untrained generator's edits of held-out SynthFaces: every figure is
    dlib's distance on the images the docstring names, recomputed here."""
    from augment.sagan.model import SaGANGenerator

    aligned, gt, seed = toy_faces
    torch.manual_seed(0)
    G = SaGANGenerator(dataclasses.replace(TINY, image_size=32)).eval()
    _fake_models(monkeypatch, G, size=32)
    gens = mf.Manifest("generators", mf.frame("generators", [{
        "attribute": "Eyeglasses", "path": "g", "generator_id": "g0", "step": 1, "preset": "fast",
        "image_size": 32}]), tmp_path)
    cfg = PipelineConfig(eval_sagan=EvalSaganConfig(split="test", batch_size=4), device="cpu", seed=seed)
    out = E.run_stage(cfg, {"aligned": aligned, "groundtruth": gt, "generators": gens, "classifiers": None}, tmp_path)
    m = json.loads(out["sagan_metrics"].read_text())["Eyeglasses"]

    assert m["judges"]["identity"].startswith("dlib's pretrained recognizer")
    rows, labels = J.heldout_rows(aligned, "test", "Eyeglasses", 0)
    assert len(rows) > 0 and m["id_distance_images"] == len(rows) == m["images"]
    for d in ("add", "remove"):
        b = m[d]
        assert b["id_distance_images"] == b["images"] and b["id_distance_oracle_images"] == b["groundtruth_images"]
        if b["images"]:
            assert 0 <= b["id_kept"] <= 1 and b["id_distance"] >= 0 and b["id_distance_p95"] >= 0
            assert 0 <= b["outside_change_region"] <= 1 and 0 <= b["mask_in_region"] <= 1
    ref = m["id_reference"]
    assert ref["threshold"] == idj.THRESHOLD and ref["noise_floor_images"] == len(aligned.df.query("split == 'test'"))
    assert ref["same_person_pairs"] > 0 and ref["different_people_pairs"] > 0
    assert 0 <= ref["noise_floor"] < ref["different_people"]

    # recomputed: each source crop and its edit at the aligned size, edit_batch's blend
    judge = idj.IdentityJudge("arcface")
    crops = np.stack([read_rgb(aligned.root / p) for p in rows["path"]])
    assert crops.shape[1] == 64  # the aligned size, not the generator's 32
    src = judge.descriptors(crops)
    targets = 1 - attribute_labels(rows, "Eyeglasses")
    with torch.no_grad():
        _, edits = edit_batch(EditModels("Eyeglasses", "", G, 32), to_tensor(crops), [0, 1])
    edited = np.stack([to_uint8(edits[int(t)][i : i + 1])[0] for i, t in enumerate(targets)])
    d = idj.distances(src, judge.descriptors(edited))
    assert m["id_distance"] == pytest.approx(d.mean(), abs=1e-5)
    assert m["id_kept"] == pytest.approx((d < 0.6).mean())
    truths = groundtruth_index(gt, "Eyeglasses", set(rows["source"]))
    cfs = np.stack([perfect_edit(r, aligned.root, truths[r["sample_id"]], gt.root, int(t), int(1 - t))[0]
                    for (_, r), t in zip(rows.iterrows(), targets)])
    assert m["id_distance_oracle"] == pytest.approx(idj.distances(src, judge.descriptors(cfs)).mean(), abs=1e-5)
    test = aligned.df[aligned.df["split"] == "test"]
    every = np.stack([read_rgb(aligned.root / p) for p in test["path"]])
    floor = idj.distances(judge.descriptors(every), judge.descriptors(idj.shifted(every))).mean()
    assert ref["noise_floor"] == pytest.approx(floor, abs=1e-5)


class _PixelJudge:
    """A stand-in for dlib's recognizer: a crop's first 128 values, scaled to [0, 1]."""

    def __init__(self, template):
        self.template = template

    @staticmethod
    def descriptors(crops):
        return np.asarray(crops, np.float32).reshape(len(crops), -1)[:, :128] / 255


def test_the_judge_describes_a_bounded_number_of_faces_per_direction(tmp_path, monkeypatch):
    aligned, gt = make_dataset(tmp_path, n=60)
    monkeypatch.setattr(idj, "IdentityJudge", _PixelJudge)
    monkeypatch.setattr(J, "NOISE_IMAGES", 3)
    figures = J.IdentityFigures("arcface", aligned, CPU, batch_size=4, per_direction=2)
    rows, labels = J.heldout_rows(aligned, "test", "Eyeglasses", 0)
    assert (labels == 0).sum() > 2 and (labels == 1).sum() > 2
    out = figures.edits(_Where(_eyes), 16, "Eyeglasses", rows, labels, gt)
    assert out["add"]["id_distance_images"] == out["remove"]["id_distance_images"] == 2
    assert out["all"]["id_distance_images"] == 4 and out["add"]["id_distance_oracle_images"] == 2
    assert figures.described == 4 + 4 + 4  # sources, edits, oracle twins: each face once
    ref = figures.reference(aligned.df[aligned.df["split"] == "test"], "test", 0)
    assert ref["noise_floor_images"] == 3 and ref["same_person_pairs"] > 0 and ref["different_people_pairs"] > 0
    assert ref == J.IdentityFigures("arcface", aligned, CPU).reference(
        aligned.df[aligned.df["split"] == "test"], "test", 0)  # the same pairs from the same seed


def test_eval_sagan_id_per_direction_sets_how_many_edits_are_described(tmp_path, monkeypatch):
    """``eval_sagan.id_per_direction``: a cap per direction, 0 for every edit (a model card's count)."""
    aligned, gt = make_dataset(tmp_path, n=60)
    monkeypatch.setattr(idj, "IdentityJudge", _PixelJudge)
    rows, labels = J.heldout_rows(aligned, "test", "Eyeglasses", 0)
    n0, n1 = int((labels == 0).sum()), int((labels == 1).sum())
    assert n0 > 3 and n1 > 3
    every = J.IdentityFigures("arcface", aligned, CPU, 4, per_direction=0).edits(_Where(_eyes), 16, "Eyeglasses",
                                                                                rows, labels, gt)
    assert (every["add"]["id_distance_images"], every["remove"]["id_distance_images"]) == (n0, n1)
    three = J.IdentityFigures("arcface", aligned, CPU, 4, per_direction=3).edits(_Where(_eyes), 16, "Eyeglasses",
                                                                                rows, labels, gt)
    assert (three["add"]["id_distance_images"], three["remove"]["id_distance_images"]) == (3, 3)


def test_eval_sagan_judges_a_generator_whose_mask_sees_the_change_and_at_a_strength(tmp_path, monkeypatch):
    """mask_input image+change: F_a needs the source values, which eval_sagan must
    pass (it once raised); ``strength`` scales the mask as the edit stage does."""
    from augment.sagan.model import SaGANGenerator

    aligned, gt = make_dataset(tmp_path, n=30)
    G = SaGANGenerator(dataclasses.replace(TINY, mask_input="image+change")).eval()
    _fake_models(monkeypatch, G, size=TINY.image_size)
    m, _ = E.evaluate_attribute("Eyeglasses", tmp_path, None, aligned, gt, "test", 0, 4, CPU, "arcface")
    assert m["add"]["images"] > 0 and m["remove"]["images"] > 0 and m["mask_area"] > 0

    half = lambda s: np.full((s, s), 0.25, np.float32)  # noqa: E731
    _fake_models(monkeypatch, _Where(half))
    one, _ = E.evaluate_attribute("Eyeglasses", tmp_path, None, aligned, gt, "test", 0, 4, CPU, "arcface")
    two, _ = E.evaluate_attribute("Eyeglasses", tmp_path, None, aligned, gt, "test", 0, 4, CPU, "arcface",
                                  strength=2.0)
    assert one["mask_area"] == pytest.approx(0.25) and two["mask_area"] == pytest.approx(0.5)
    assert two["outside_change"] > one["outside_change"]
