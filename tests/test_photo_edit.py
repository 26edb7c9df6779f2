"""``augment edit`` on photos: alignment from the generator's record, paste-back, rejects, CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from augment import manifest as mf
from augment import photo_edit
from augment.align.detect import Face
from augment.align.templates import template
from augment.align.warp import similarity
from augment.cli import cli
from augment.config import ConfigError
from augment.data.images import load_rgb
from tests.generator_files import save_generator

# Where the 5 landmarks sit in the test photos (x, y): a face of about 40 px.
POINTS = np.array([[50.0, 40.0], [74.0, 41.0], [62.0, 55.0], [53.0, 68.0], [72.0, 68.0]])


def photo(path: Path, seed: int, w: int = 120, h: int = 100) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)  # PNG: exact pixels
    return path


@pytest.fixture
def fake_detector(monkeypatch):
    """MTCNN replaced by fixed landmarks; photos 77 px wide have no face."""
    def detect(images, **kw):
        return [[Face(np.array([40.0, 25.0, 85.0, 80.0]), POINTS.copy(), 0.99)] for _ in images]

    monkeypatch.setattr(photo_edit.det, "detect", detect)
    real_choose = photo_edit.det.choose

    def choose(faces, w, h, **kw):
        return real_choose([] if w == 77 else faces, w, h, **kw)  # 77 px wide = "no face"

    monkeypatch.setattr(photo_edit.det, "choose", choose)


def footprint(m: np.ndarray, crop: int, w: int, h: int) -> np.ndarray:
    """Photo pixels the crop square maps onto (bilinear support of the inverse warp)."""
    ones = np.ones((crop, crop), np.float32)
    return cv2.warpAffine(ones, cv2.invertAffineTransform(m), (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0


def test_paste_changes_only_the_masked_region():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    m = similarity(POINTS, template("arcface", 32))
    edit = np.full((32, 32, 3), 255.0, np.float32)
    mask = np.zeros((32, 32), np.float32)
    mask[8:24, 8:24] = 1.0
    out, mask_full = photo_edit.paste(img, m, edit, mask)
    assert out.shape == img.shape and out.dtype == np.uint8
    outside = mask_full == 0
    assert outside.sum() > 0.8 * outside.size
    assert np.array_equal(out[outside], img[outside])
    inside = mask_full > 0.999
    assert inside.sum() > 50 and (out[inside] == 255).all()


def test_edit_photos_writes_full_size_photos_equal_outside_the_face(tmp_path, fake_detector):
    gen = save_generator(tmp_path / "gen")
    photos = tmp_path / "photos"
    photos.mkdir()
    files = [photo(photos / f"p{k}.png", k) for k in range(2)]
    photo(photos / "noface.png", 9, w=77)
    out = tmp_path / "out"
    res = photo_edit.edit_photos([photos], gen, "Eyeglasses", "both", out, progress=False)
    assert len(res.edits) == 4 and len(res.aligned) == 2
    assert res.rejects.df["reason"].tolist() == ["no_face"]
    assert res.rejects.df["path"].iloc[0].endswith("noface.png")
    m = similarity(POINTS, template("arcface", 32))
    foot = footprint(m, 32, 120, 100)
    for row in res.edits.df.itertuples():
        src = load_rgb(photos / f"{row.identity_name}.png")
        got = np.asarray(Image.open(out / row.path).convert("RGB"))
        assert got.shape == src.shape
        assert np.array_equal(got[~foot], src[~foot])  # every pixel outside the pasted region
        assert (got != src).any()  # and the face region was edited
        assert row.width == 120 and row.height == 100 and row.target_value in (0, 1)
        np.testing.assert_allclose(np.asarray(row.transform).reshape(2, 3), m, atol=1e-4)
    crop = np.asarray(Image.open(out / "aligned" / "p0.png"))
    assert crop.shape == (32, 32, 3)
    mask = np.asarray(Image.open(out / "mask" / "p0.Eyeglasses.png"))
    assert mask.shape == (32, 32)
    with open(out / "index.csv") as fh:
        index = list(csv.DictReader(fh))
    assert len(index) == 4 and all((out / r["edited"]).is_file() and (out / r["mask"]).is_file() for r in index)
    assert {Path(r["input"]).name for r in index} == {f.name for f in files}
    for name in ("edits", "aligned", "rejects"):
        assert len(mf.read(out / f"{name}.parquet")) == {"edits": 4, "aligned": 2, "rejects": 1}[name]


def test_generator_without_recorded_alignment_needs_the_flags(tmp_path, fake_detector):
    gen = save_generator(tmp_path / "old", align=None)
    p = photo(tmp_path / "a.png", 0)
    with pytest.raises(ConfigError, match="does not record the alignment"):
        photo_edit.edit_photos([p], gen, "Eyeglasses", "1", tmp_path / "o1")
    res = photo_edit.edit_photos([p], gen, "Eyeglasses", "1", tmp_path / "o2", template="arcface", crop_size=32)
    assert res.edits.df["target_value"].tolist() == [1]
    recorded = save_generator(tmp_path / "new")
    with pytest.raises(ConfigError, match="trained on template 'arcface' at 32 px"):
        photo_edit.edit_photos([p], recorded, "Eyeglasses", "1", tmp_path / "o3", template="sagan", crop_size=32)


def test_cli_edit_and_its_usage_errors(tmp_path, fake_detector):
    gen = save_generator(tmp_path / "gen")
    p = photo(tmp_path / "a.png", 0)
    out = tmp_path / "o"
    r = CliRunner().invoke(cli, ["edit", str(p), "--generators", str(gen), "--attribute", "Eyeglasses",
                                 "--value", "0", "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "1 face(s) found, 1 edited photo(s) written, 0 photo(s) skipped" in r.output
    assert (out / "edited" / "a.Eyeglasses=0.png").is_file()
    r = CliRunner().invoke(cli, ["edit", str(p), "--generators", str(gen), "--attribute", "Smiling",
                                 "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 2 and "no generator for 'Smiling'" in r.output and "Eyeglasses" in r.output
    r = CliRunner().invoke(cli, ["edit", str(p), "--generators", str(tmp_path), "--attribute", "Eyeglasses",
                                 "--out", str(out)])
    assert r.exit_code == 2 and "generators.parquet" in r.output


def test_real_photo_edit_keeps_everything_outside_the_face(tmp_path, celeba_wild):
    gen = save_generator(tmp_path / "gen", {"template": "sagan", "size": 64})
    src_file = sorted((celeba_wild / "img_celeba").glob("*.jpg"))[0]
    res = photo_edit.edit_photos([src_file], gen, "Eyeglasses", "1", tmp_path / "o", progress=False)
    assert len(res.edits) == 1, res.rejects.df.to_dict("records")
    row = res.edits.df.iloc[0]
    src = load_rgb(src_file)
    got = np.asarray(Image.open(tmp_path / "o" / row["path"]).convert("RGB"))
    foot = footprint(np.asarray(row["transform"], np.float64).reshape(2, 3), 64, src.shape[1], src.shape[0])
    assert got.shape == src.shape and np.array_equal(got[~foot], src[~foot])
    assert (got[foot] != src[foot]).any()


def test_edge_taper_closes_the_mask_at_the_crop_border():
    t = photo_edit.edge_taper(64)
    assert t.shape == (64, 64) and t.min() >= 0 and t.max() == 1
    assert (t[2:-2, 2:-2] == 1).all()  # 64 // 32 = 2 px band
    assert t[0, 32] < 0.5 and t[0, 0] < 0.5 and t[1, 32] > t[0, 32]


def test_cli_edit_exits_non_zero_when_no_photo_has_a_face(tmp_path, fake_detector):
    """A folder of unreadable and faceless photos: every photo is named with its reason,
    and the exit status says nothing was made."""
    gen = save_generator(tmp_path / "gen")
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"not an image")
    Image.fromarray(np.zeros((40, 77, 3), np.uint8)).save(folder / "blank.png")  # 77 px wide: no face
    r = CliRunner().invoke(cli, ["edit", str(folder), "--generators", str(gen), "--attribute", "Eyeglasses",
                                 "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert r.exit_code == 1, r.output
    assert "0 face(s) found, 0 edited photo(s) written, 2 photo(s) skipped" in r.output
    assert "broken.jpg" in r.output and "blank.png" in r.output and "nothing edited" in r.output


def test_cli_edit_warns_when_a_generator_trained_on_synthetic_faces_edits_photos(tmp_path, fake_detector):
    p = photo(tmp_path / "a.png", 0)
    args = ["--attribute", "Eyeglasses", "--value", "1", "--device", "cpu"]
    synthetic = save_generator(tmp_path / "synth", data={"sources": ["synthfaces"], "images": 10})
    r = CliRunner().invoke(cli, ["edit", str(p), "--generators", str(synthetic), "--out", str(tmp_path / "o1"), *args])
    assert r.exit_code == 0, r.output
    assert "Warning: this generator was trained on synthfaces (synthetic faces) and is applied to photos" in r.output
    real = save_generator(tmp_path / "real", data={"sources": ["celeba"], "images": 10})
    r = CliRunner().invoke(cli, ["edit", str(p), "--generators", str(real), "--out", str(tmp_path / "o2"), *args])
    assert r.exit_code == 0 and "Warning" not in r.output
