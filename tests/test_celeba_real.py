"""Real CelebA files: readers on the full-size text files, aligned crops of any size,
the missing-landmark policy (skipped without ../shared/data; no image is copied)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from augment import manifest as mf
from augment.align import align_dataset
from augment.align.templates import prealigned_points, template
from augment.align.warp import apply
from augment.config import AlignConfig, DatasetConfig
from augment.data import celeba, read

ALIGN = AlignConfig(template="sagan", size=64, workers=1)


def _scale(transform) -> float:
    m = np.asarray(transform, dtype=np.float64).reshape(2, 3)
    return float(np.sqrt(abs(np.linalg.det(m[:, :2]))))


def _read(root: Path, **kw) -> mf.Manifest:
    source, _ = read.load_dataset(DatasetConfig(format="celeba", root=str(root), **kw), "train", None)
    return source


def _subset(source: mf.Manifest, df: pd.DataFrame) -> mf.Manifest:
    return mf.Manifest("images", df.reset_index(drop=True), source.root, source.meta)


def _crops(result) -> dict[str, np.ndarray]:
    """{sample_id: (64, 64, 3) float image} of an align result."""
    a = result.aligned
    return {sid: cv2.imread(str(a.root / p)).astype(np.float64) for sid, p in zip(a.df["sample_id"], a.df["path"])}


def _by_name(result, source: mf.Manifest) -> dict[str, np.ndarray]:
    """{image file name: crop} of an align result over ``source``."""
    name_of = dict(zip(source.df["sample_id"], source.df["path"].str.rsplit("/", n=1).str[-1]))
    return {name_of[sid]: crop for sid, crop in _crops(result).items()}


def test_fulltext_readers_exact_and_count_line_logged(celeba_fulltext, caplog):
    ids = celeba.read_identities(celeba_fulltext / celeba.IDENTITY_FILE)
    part = celeba.read_partition(celeba_fulltext / celeba.PARTITION_FILE)
    assert len(ids) == len(part) == 202599
    assert ids["000001.jpg"] == 2880 and ids["202599.jpg"] == 10101
    # the official partition: 162,770 train / 19,867 val / 19,962 test
    assert pd.Series(part).value_counts().to_dict() == {"train": 162770, "test": 19962, "val": 19867}
    with caplog.at_level(logging.WARNING, logger="augment.read"):
        names, rows = celeba.read_attributes(celeba_fulltext / celeba.ATTR_FILE)
    assert names == celeba.CELEBA_ATTRIBUTES and len(rows) == 20000  # not the 202,599 the count line says
    assert "count line says 202599 rows but the file has 20000" in caplog.text
    # row 1 of the official file, value by value
    first = "-1 1 1 -1 -1 -1 -1 -1 -1 -1 -1 1 -1 -1 -1 -1 -1 -1 1 1 -1 1 -1 -1 1 -1 -1 1 -1 -1 -1 1 1 -1 1 -1 1 -1 -1 1"
    np.testing.assert_array_equal(rows["000001.jpg"], [int(v) for v in first.split()])
    assert rows["020000.jpg"].dtype == np.int8 and "020001.jpg" not in rows


def test_prealigned_crops_of_the_89x109_copy(celeba_aligned_10k, tmp_path, caplog):
    source = _read(celeba_aligned_10k, max_images=24, split="by_identity")
    assert set(source.df["split"]) == {"train", "val", "test"}  # the partition file has only train
    assert source.df["landmarks"].isna().all() and "landmark_frame" not in source.meta.get("extra", {})
    with caplog.at_level(logging.INFO, logger="augment.align"):
        res = align_dataset(source, ALIGN, "landmarks", tmp_path / "o", progress=False,
                            missing_landmarks="prealigned")
    assert "24 without one (missing_landmarks: prealigned): 24 -> prealigned" in caplog.text
    assert res.stats["missing_landmarks"] == {"policy": "prealigned", "prealigned": 24}
    assert res.stats["modes"] == {"prealigned": 24} and len(res.aligned) == 24 and len(res.rejects) == 0
    crops = _crops(res)
    assert all(c.shape == (64, 64, 3) for c in crops.values())
    # SaGAN's crop scaled with the image: the centre 85 of 89 px (170 of 178) -> 64 px,
    # and CelebA's mean landmarks of an 89x109 image land exactly on the template
    for t in res.aligned.df["transform"]:
        assert _scale(t) == pytest.approx(64 / 85, rel=1e-6)
        np.testing.assert_allclose(apply(np.reshape(t, (2, 3)), prealigned_points(89, 109)), template("sagan", 64),
                                   atol=1e-6)


def test_missing_landmark_policies_on_celeba_identities(celeba_identities, tmp_path, caplog):
    source = _read(celeba_identities)
    assert len(source) == 6031 and int(source.df["landmarks"].notna().sum()) == 183
    assert source.meta["extra"]["landmark_frame"] == [178, 218]
    df = source.df
    sub = _subset(source, pd.concat([df[df["landmarks"].notna()].iloc[:4], df[df["landmarks"].isna()].iloc[:4]]))
    got = {}
    for policy in ("prealigned", "mtcnn", "reject", "auto"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="augment.align"):
            res = align_dataset(sub, ALIGN, "landmarks", tmp_path / policy, progress=False, missing_landmarks=policy)
        got[policy] = res
        way = "reject" if policy in ("reject", "auto") else policy
        assert f"4 with a landmark row; 4 without one (missing_landmarks: {policy}): 4 -> {way}" in caplog.text
        assert res.stats["missing_landmarks"] == {"policy": policy, way: 4}
        assert res.stats["landmarks_rescaled"] == {"count": 0, "from": [178, 218]}  # 178x218 already
    for policy in ("prealigned", "mtcnn"):
        assert len(got[policy].aligned) == 8 and len(got[policy].rejects) == 0
        assert all(c.shape == (64, 64, 3) for c in _crops(got[policy]).values())
    assert got["mtcnn"].stats["modes"] == {"landmarks": 4, "mtcnn": 4}
    assert got["mtcnn"].stats["detected_images"] == 4
    for policy in ("reject", "auto"):
        rej = got[policy].rejects.df
        assert len(got[policy].aligned) == 4 and list(rej["reason"]) == ["no_landmarks"] * 4
        assert set(rej["sample_id"]) == set(sub.df["sample_id"][4:]) and "missing_landmarks" in rej["detail"][0]
    # the landmark rows are aligned by their own points: the same crops under every policy
    lm_ids = list(sub.df["sample_id"][:4])
    a, b = _crops(got["prealigned"]), _crops(got["reject"])
    assert all(np.array_equal(a[s], b[s]) for s in lm_ids)


def _downscaled_copy(identities: Path, small_root: Path, out: Path, n: int) -> list[str]:
    """A CelebA folder of the 89x109 copies (symlinks, not copies) of ``n`` images that
    have a landmark row in the 178x218 set, with those (178x218) landmark rows."""
    lines = (identities / celeba.LANDMARK_FILE).read_text().splitlines()
    small = set(os.listdir(small_root / "img_align_celeba"))
    rows = [ln for ln in lines[2:] if ln.split()[0] in small][:n]
    names = [ln.split()[0] for ln in rows]
    (out / "img_align_celeba").mkdir(parents=True)
    for name in names:
        (out / "img_align_celeba" / name).symlink_to((small_root / "img_align_celeba" / name).resolve())
    (out / celeba.LANDMARK_FILE).write_text(f"{len(rows)}\n{lines[1]}\n" + "\n".join(rows) + "\n")
    ids = celeba.read_identities(identities / celeba.IDENTITY_FILE)
    (out / celeba.IDENTITY_FILE).write_text("".join(f"{m} {ids[m]}\n" for m in names))
    return names


def test_landmarks_scale_with_the_image(celeba_identities, celeba_aligned_10k, tmp_path, caplog):
    names = _downscaled_copy(celeba_identities, celeba_aligned_10k, tmp_path / "small", 8)
    small = _read(tmp_path / "small")
    big = _read(celeba_identities)
    big = _subset(big, big.df[big.df["path"].isin([f"img_align_celeba/{m}" for m in names])])
    assert len(small) == len(big) == 8
    with caplog.at_level(logging.INFO, logger="augment.align"):
        rs = align_dataset(small, ALIGN, "landmarks", tmp_path / "os", progress=False)
    rb = align_dataset(big, ALIGN, "landmarks", tmp_path / "ob", progress=False)
    rp = align_dataset(big, ALIGN, "prealigned", tmp_path / "op", progress=False)
    assert rs.stats["landmarks_rescaled"] == {"count": 8, "from": [178, 218]}
    assert "8 image(s) are not 178x218: their landmarks were scaled" in caplog.text
    # the 89x109 copy's transform is the 178x218 one at twice the scale
    for ts, tb in zip(rs.aligned.df["transform"], rb.aligned.df["transform"]):
        assert _scale(ts) == pytest.approx(2 * _scale(tb), rel=1e-6)
    # and its crop is the same face, up to the copy's downscale and JPEG: within a few
    # grey levels, where the mean-landmark crop of the same image is not (5-21 measured)
    cs, cb, cp = _by_name(rs, small), _by_name(rb, big), _by_name(rp, big)
    diff_scaled = [np.abs(cs[n] - cb[n]).mean() for n in names]
    diff_mean = [np.abs(cp[n] - cb[n]).mean() for n in names]
    assert max(diff_scaled) < 8.0, diff_scaled
    assert np.mean(diff_scaled) < 0.5 * np.mean(diff_mean), (diff_scaled, diff_mean)
