"""The pretrained identity judge (dlib's recognizer, the ``judges`` extra) on aligned crops."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from augment.judges import identity as idj


def test_without_the_extra_it_says_in_one_line_what_it_would_add(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "dlib" else real(name, *a))
    message = idj.missing()
    assert message is not None and "\n" not in message
    assert "pip install 'augment[judges]'" in message and "identity judge" in message
    with pytest.raises(idj.JudgeUnavailable, match=r"augment\[judges\]"):
        idj.IdentityJudge("arcface")


def test_face_box_holds_the_template_points():
    from augment.align.templates import template

    for name in ("arcface", "sagan"):
        pts = template(name, idj.CHIP)
        left, top, right, bottom = idj.face_box(pts)
        assert 0.8 < (right - left) / (bottom - top) < 1.25  # about square, as dlib's detector draws them
        assert left < pts[:, 0].min() and right > pts[:, 0].max()
        assert top < pts[:2, 1].min() and bottom > pts[3:, 1].max()


def test_shifted_moves_the_pixels_and_keeps_the_size():
    crops = np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3)
    out = idj.shifted(crops, 2)
    assert out.shape == crops.shape
    np.testing.assert_array_equal(out[:, 2:, 2:], crops[:, :6, :6])
    np.testing.assert_array_equal(out[:, 0, 2:], crops[:, 0, :6])  # the edge repeated


@pytest.fixture(scope="module")
def lfw_pairs_aligned(tmp_path_factory):
    """The first 30 same-person and 30 different-person pairs of LFW View 1, the photos
    aligned by the tool (MTCNN, the arcface template at 64 px, the central face)."""
    from tests.conftest import LFW_SAMPLE

    if not (LFW_SAMPLE / "lfw-deepfunneled").is_dir():
        pytest.skip(f"real LFW sample not found at {LFW_SAMPLE}")
    if idj.missing():
        pytest.fail(idj.missing())  # make test installs the extra: its absence is a set-up error
    from augment import manifest as mf
    from augment.align import align_dataset
    from augment.config import AlignConfig, DatasetConfig
    from augment.data import lfw, read
    from augment.io import read_rgb

    pairs = lfw.read_pairs(LFW_SAMPLE / "pairsDevTest.txt")
    pairs = pairs.iloc[np.r_[0:30, 500:530]].reset_index(drop=True)
    ds = DatasetConfig(format="lfw", root=str(LFW_SAMPLE / "lfw-deepfunneled"))
    source, _ = read.load_dataset(ds, "eval", synth_root=None)
    wanted = set(pairs["path_a"]) | set(pairs["path_b"])
    source = mf.Manifest("images", source.df[source.df["path"].isin(wanted)].reset_index(drop=True), source.root,
                         source.meta)
    out = tmp_path_factory.mktemp("lfw_aligned")
    res = align_dataset(source, AlignConfig(template="arcface", size=64, select="central"), "mtcnn", out,
                        prefix="eval", role="eval", device="cpu", workers=1)
    df = res.aligned.df
    row_of = {sid: i for i, sid in enumerate(df["sample_id"])}
    crops = np.stack([read_rgb(res.aligned.root / p) for p in df["path"]])
    a = [row_of[mf.sample_id(source.df["source"].iat[0], p)] for p in pairs["path_a"]]
    b = [row_of[mf.sample_id(source.df["source"].iat[0], p)] for p in pairs["path_b"]]
    return crops, np.array(a), np.array(b), pairs["same"].to_numpy().astype(bool)


def test_real_lfw_pairs_are_told_apart_and_a_small_shift_is_the_noise_floor(lfw_pairs_aligned):
    crops, a, b, same = lfw_pairs_aligned
    judge = idj.IdentityJudge("arcface")
    desc = judge.descriptors(crops)
    assert desc.shape == (len(crops), 128) and np.isfinite(desc).all()
    d = idj.distances(desc[a], desc[b])
    accuracy = float(((d < idj.THRESHOLD) == same).mean())
    assert accuracy >= 0.9, accuracy  # 0.979 on all 1,000 pairs of View 1 (docs)
    assert d[same].mean() + 0.2 < d[~same].mean()
    noise = idj.distances(desc, judge.descriptors(idj.shifted(crops)))
    assert noise.mean() < 0.2 < d[~same].mean()
    np.testing.assert_array_equal(judge.descriptors(crops[:3]), desc[:3])  # deterministic
