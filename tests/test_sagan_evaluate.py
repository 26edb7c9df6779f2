"""eval_sagan: per-image metrics by hand, aligning the ground truth, the stage end to end."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch

from augment import manifest as mf
from augment.config import EvalSaganConfig, PipelineConfig, TrainClassifierConfig, TrainSaganConfig
from augment.io import read_rgb
from augment.sagan import classifier as C
from augment.sagan import evaluate as E
from augment.sagan import train as T
from augment.sagan.data import attribute_labels
from tests.sagan_fixtures import PaintingGenerator, ALIGNED, BAR, SHIFT, make_dataset


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_image_metrics_by_hand():
    x = np.zeros((4, 4, 3), np.float32)
    edit = x.copy()
    edit[0:2, 0:2] = 0.5  # the intended change
    edit[3, 3] = 0.2  # a stray change
    mask = np.zeros((4, 4), np.float32)
    mask[0:2, 0:3] = 0.9  # predicted region: 6 pixels
    cov = np.zeros((4, 4), np.float32)
    cov[0:2, 0:2] = 1.0  # true region: 4 pixels
    cov[2, 0] = 0.3  # partly changed: not in the IoU's region, not "untouched" either
    cf = x.copy()
    cf[0:2, 0:2] = 0.5
    m = E.image_metrics(x, edit, mask, cf, cov)
    assert m["mask_iou"] == pytest.approx(4 / 6)
    assert m["mask_iou_relative"] == pytest.approx(4 / 6)  # max 0.9: threshold 0.45, same pixels
    faint = E.image_metrics(x, edit, mask * 0.5, cf, cov)  # the same region at 0.45: below 0.5
    assert faint["mask_iou"] == 0.0 and faint["mask_iou_relative"] == pytest.approx(4 / 6)
    assert m["mask_area"] == pytest.approx(6 * 0.9 / 16)
    assert m["outside_change_mask"] == pytest.approx(0.2 / 10)  # 10 pixels with mask < 0.5
    assert m["outside_change"] == pytest.approx(0.2 / 11)  # 11 pixels with no true change
    assert m["psnr_vs_truth"] == pytest.approx(10 * math.log10(1 / (0.2**2 * 3 / 48)))
    assert m["psnr_input_vs_truth"] == pytest.approx(10 * math.log10(1 / (0.25 * 12 / 48)))
    # inside the true region (4 pixels) the edit is exact and the input off by 0.5
    assert m["psnr_region_vs_truth"] == 100.0
    assert m["psnr_region_input_vs_truth"] == pytest.approx(10 * math.log10(1 / 0.25))
    half = x.copy()
    half[0:2, 0:2] = 0.25  # half way there: off by 0.25 inside, exact outside
    h = E.image_metrics(x, half, mask, cf, cov)
    assert h["psnr_region_vs_truth"] == pytest.approx(10 * math.log10(1 / 0.25**2))
    assert h["psnr_region_vs_truth"] - h["psnr_region_input_vs_truth"] == pytest.approx(20 * math.log10(2))
    assert E.image_metrics(x, edit, mask, cf, np.zeros_like(cov))["psnr_region_vs_truth"] is None
    perfect = E.image_metrics(x, cf, cov, cf, cov)
    assert perfect["mask_iou"] == 1.0 and perfect["outside_change"] == 0.0 and perfect["psnr_vs_truth"] == 100.0
    assert "mask_iou" not in E.image_metrics(x, edit, mask)


def test_region_psnr_gain_is_the_difference_of_the_means():
    recs = [{"psnr_region_vs_truth": 30.0, "psnr_region_input_vs_truth": 20.0},
            {"psnr_region_vs_truth": 24.0, "psnr_region_input_vs_truth": 22.0},
            {"psnr_region_vs_truth": None, "psnr_region_input_vs_truth": None}]  # no true region
    s = E.summarise(recs)
    assert s["psnr_region_vs_truth"] == 27.0 and s["psnr_region_input_vs_truth"] == 21.0
    assert s["psnr_region_gain"] == 6.0
    assert E.summarise([])["psnr_region_gain"] is None


def test_smudge_darkens_the_true_region_only():
    x = np.full((4, 4, 3), 0.8, np.float32)
    cov = np.zeros((4, 4), np.float32)
    cov[1, 1], cov[2, 2] = 1.0, 0.5
    s = E.smudge(x, cov, blur=0.0)
    assert s[1, 1] == pytest.approx([0.4] * 3) and s[2, 2] == pytest.approx([0.6] * 3)
    untouched = cov == 0
    assert np.array_equal(s[untouched], x[untouched])
    # blurred: the darkest point is still at half, the patch spreads past the region's edge
    big = np.zeros((48, 48), np.float32)
    big[20:24, 10:38] = 1.0
    xb = np.full((48, 48, 3), 0.8, np.float32)
    sb = E.smudge(xb, big)
    assert sb.min() == pytest.approx(0.4, abs=1e-3) and sb[17, 24, 0] < 0.75 and sb[0, 0, 0] == pytest.approx(0.8)


def test_summarise_means_and_counts():
    s = E.summarise([{"edit_success": 1.0, "mask_iou": 0.5}, {"edit_success": 0.0, "mask_iou": None}])
    assert s["images"] == 2 and s["edit_success"] == 0.5 and s["mask_iou"] == 0.5 and s["groundtruth_images"] == 1
    empty = E.summarise([])
    assert empty["images"] == 0 and empty["mask_iou"] is None


def test_ground_truth_is_aligned_with_the_rows_transform(tmp_path):
    aligned, gt = make_dataset(tmp_path, n=12)
    index = E.groundtruth_index(gt, "Eyeglasses", {"synthfaces"})
    test_rows = aligned.df[aligned.df["split"] == "test"]
    assert len(test_rows) == 2 and all(sid in index for sid in test_rows["sample_id"])
    assert not any(sid in index for sid in aligned.df[aligned.df["split"] == "train"]["sample_id"])
    row = test_rows.iloc[0]
    g = index[row["sample_id"]]
    cf, cov = E.truth_for(g, gt.root, row["transform"], ALIGNED, ALIGNED)
    # the true region is the bar moved by the alignment's shift
    ys, xs = np.nonzero(cov > 0.5)
    assert ys.min() == BAR[0].start + SHIFT[1] and xs.min() == BAR[1].start + SHIFT[0]
    # outside the region the counterfactual is the aligned image itself
    src_aligned = cv2.cvtColor(cv2.imread(str(aligned.root / row["path"])), cv2.COLOR_BGR2RGB) / 255
    untouched = cov <= 0
    assert np.abs(cf - src_aligned)[untouched].max() < 1e-6
    assert np.abs(cf - src_aligned)[cov >= 1].mean() > 0.1  # inside it really differs
    # reduced to a smaller model size by area averaging, coverage stays a fraction
    _, cov16 = E.truth_for(g, gt.root, row["transform"], ALIGNED, 16)
    assert cov16.shape == (16, 16) and 0 <= cov16.min() and cov16.max() <= 1
    assert cov16.mean() == pytest.approx(cov.mean(), rel=0.05)


def test_stage_writes_metrics_per_attribute_and_direction(tmp_path):
    aligned, gt = make_dataset(tmp_path / "data", n=30)
    cfg = PipelineConfig(
        train_sagan=TrainSaganConfig(preset="fast", image_size=16, g_width=4, d_width=4, res_blocks=1, steps=2,
                                     batch_size=4, checkpoint_every=2, sample_every=100, log_every=1),
        train_classifier=TrainClassifierConfig(image_size=16, width=8, steps=20, batch_size=8, checkpoint_every=20),
        eval_sagan=EvalSaganConfig(split="test", batch_size=4),
        device="cpu",
    )
    dirs = {n: tmp_path / n for n in ("train_sagan", "train_classifier", "eval_sagan")}
    for d in dirs.values():
        d.mkdir()
    gens = T.run_stage(cfg, {"aligned": aligned}, dirs["train_sagan"])["generators"]
    clfs = C.run_stage(cfg, {"aligned": aligned}, dirs["train_classifier"])["classifiers"]
    inputs = {"aligned": aligned, "groundtruth": gt, "generators": gens, "classifiers": clfs}
    out = E.run_stage(cfg, inputs, dirs["eval_sagan"])
    assert out["sagan_metrics"] == dirs["eval_sagan"] / "metrics.json"
    metrics = json.loads(out["sagan_metrics"].read_text())
    m = metrics["Eyeglasses"]
    n_test = sum(1 for _, r in aligned.df.iterrows() if r["split"] == "test" and r["attributes"] is not None)
    assert m["images"] == n_test == m["groundtruth_images"]
    assert m["add"]["images"] + m["remove"]["images"] == n_test
    assert m["add"]["images"] > 0 and m["remove"]["images"] > 0
    for key in ("edit_success", "outside_change", "mask_iou", "psnr_vs_truth", "classifier_accuracy",
                "mask_area", "outside_change_mask", "psnr_input_vs_truth", "truth_success",
                "psnr_region_vs_truth", "psnr_region_input_vs_truth", "psnr_region_gain"):
        assert m[key] is not None and np.isfinite(m[key]), key
    for key in ("edit_success", "psnr_region_vs_truth", "psnr_region_input_vs_truth", "psnr_region_gain"):
        for direction in ("add", "remove"):
            assert m[direction][key] is not None and np.isfinite(m[direction][key]), (direction, key)
    assert m["psnr_region_gain"] == pytest.approx(m["psnr_region_vs_truth"] - m["psnr_region_input_vs_truth"])
    # the smudge check is made on the images the edit adds the attribute to, and only there
    assert m["smudge_accept"] == m["add"]["smudge_accept"] and 0 <= m["smudge_accept"] <= 1
    assert m["remove"]["smudge_accept"] is None
    assert m["darken_accept"] == m["add"]["darken_accept"] and 0 <= m["darken_accept"] <= 1
    assert 0 <= m["edit_success"] <= 1 and 0 <= m["mask_iou"] <= 1 and 0 <= m["outside_change"] <= 1
    assert m["generator_id"] == gens.df.iloc[0]["generator_id"] and m["image_size"] == 16
    assert (dirs["eval_sagan"] / "samples" / "Eyeglasses.png").is_file()
    # the report's edit grid: report.grid_images rows of input | to 1 | to 0 | mask, 2 px apart
    assert out["sagan_grids"] == dirs["eval_sagan"] / "grids.json"
    pick = E.grid_rows(aligned.df, "Eyeglasses", cfg.report.grid_images)
    (entry,) = json.loads(out["sagan_grids"].read_text())
    assert entry["attribute"] == "Eyeglasses" and entry["file"] == "grids/Eyeglasses.png"
    assert entry["rows"] == len(pick) > 0 and set(pick["split"]) == {"test"}
    grid = read_rgb(dirs["eval_sagan"] / entry["file"])
    assert grid.shape == (len(pick) * (ALIGNED + 2) + 2, 4 * (ALIGNED + 2) + 2, 3)
    for r, path in enumerate(pick["path"]):
        y = 2 + r * (ALIGNED + 2)
        assert np.abs(grid[y:y + ALIGNED, 2:2 + ALIGNED].astype(int) - read_rgb(aligned.root / path)).max() <= 1
    # without ground truth (a real dataset) the truth-based metrics are null, the others still there
    out2 = E.run_stage(cfg, {k: v for k, v in inputs.items() if k != "groundtruth"}, dirs["eval_sagan"])
    m2 = json.loads(out2["sagan_metrics"].read_text())["Eyeglasses"]
    assert m2["mask_iou"] is None and m2["outside_change"] is None and m2["groundtruth_images"] == 0
    assert m2["psnr_region_vs_truth"] is None and m2["psnr_region_gain"] is None and m2["smudge_accept"] is None
    assert m2["edit_success"] == m["edit_success"] and m2["mask_area"] == pytest.approx(m["mask_area"])


class _Judge:
    """A stand-in attribute classifier: P(attribute) = 0.5 for every image."""

    def attribute_probability(self, x, attribute):
        return torch.full((x.shape[0],), 0.5)


class _Negative:
    """A stand-in generator: F_m(x, c) is the negative image, the mask 0.25
    everywhere, so the edit is 0.25 * -x + 0.75 * x = x / 2."""

    blend = staticmethod(lambda x, x_a, mask: x_a * mask + x * (1 - mask))

    def __call__(self, x, c, with_manipulation=False, c_src=None):
        mask = torch.full((x.shape[0], 1, *x.shape[2:]), 0.25)
        return (self.blend(x, -x, mask), mask, -x) if with_manipulation else (self.blend(x, -x, mask), mask)


_negative = _Negative()


def test_sample_grid_has_one_row_per_image_with_its_own_truth(tmp_path, monkeypatch):
    """The grid holds every image of a batch (up to GRID_IMAGES / 2 per direction),
    each row built from that image alone: its input, edit and mask, and its own
    counterfactual and true region, blank only where that image has none."""
    aligned, gt = make_dataset(tmp_path, n=30)
    test = aligned.df[(aligned.df["split"] == "test") & aligned.df["attributes"].notna()].reset_index(drop=True)
    assert len(test) == 4
    no_truth = test["path"].iloc[1]  # a row in the middle of the batch without ground truth
    gt = mf.Manifest("groundtruth", gt.df[~gt.df["image"].str.endswith(no_truth)].reset_index(drop=True), gt.root)
    monkeypatch.setattr(E, "load_generator", lambda *a, **k: (_negative, {"image_size": 16, "step": 1}))
    monkeypatch.setattr(E, "classifier_from_manifest", lambda *a, **k: (_Judge(), {}))
    _, grid = E.evaluate_attribute("Eyeglasses", tmp_path, None, aligned, gt, "test", 0, 4, torch.device("cpu"))
    labels = attribute_labels(test, "Eyeglasses")
    order = [i for i in range(4) if labels[i] == 0] + [i for i in range(4) if labels[i] == 1]  # add, then remove
    assert grid.shape == (4 * 16, 5 * 16, 3)
    for r, i in enumerate(order):
        cell = lambda c: grid[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16].astype(int)  # noqa: E731
        x = read_rgb(aligned.root / test["path"].iloc[i], 16).astype(int)
        assert np.abs(cell(0) - x).max() <= 1, (r, i)  # the input
        assert np.abs(cell(1) - (x / 2 + 63.75)).max() <= 1, (r, i)  # its edit, x / 2 in [-1, 1]
        assert (cell(3) == 64).all()  # its mask, 0.25
        has_truth = test["path"].iloc[i] != no_truth
        assert (cell(2).max() > 0) == has_truth and (cell(4).max() > 0) == has_truth, (r, i)


def _Stub():
    """The mask 0.25 everywhere, F_m(x, c) white for c = 1 and black for c = 0."""
    return PaintingGenerator(lambda size: np.full((size, size), 0.25, np.float32))


def test_report_grid_columns_are_input_edit_to_one_edit_to_zero_mask(tmp_path, monkeypatch):
    aligned, _ = make_dataset(tmp_path, n=30)
    pick = E.grid_rows(aligned.df, "Eyeglasses", 4)
    labels = attribute_labels(pick, "Eyeglasses")
    assert labels.tolist() == [1, 1, 0, 0]  # wearers first
    monkeypatch.setattr(E, "load_generator", lambda *a, **k: (_Stub(), {}))
    grid = E.edit_grid("Eyeglasses", "g", tmp_path, ALIGNED, aligned.root, pick["path"], torch.device("cpu"))
    assert grid.shape == (4 * (ALIGNED + 2) + 2, 4 * (ALIGNED + 2) + 2, 3)
    assert (grid[:2] == 255).all() and (grid[:, :2] == 255).all()  # white padding
    step = ALIGNED + 2
    for r, path in enumerate(pick["path"]):
        cell = lambda c: grid[2 + r * step:][:ALIGNED, 2 + c * step:][:, :ALIGNED].astype(float)  # noqa: E731
        x = read_rgb(aligned.root / path).astype(float)
        assert np.abs(cell(0) - x).max() <= 1
        assert np.abs(cell(1) - (0.75 * x + 0.25 * 255)).max() <= 1.5  # a quarter of the way to white
        assert np.abs(cell(2) - 0.75 * x).max() <= 1.5  # and to black
        assert (cell(3) == 64).all()  # the mask, 0.25
