"""Alignment: templates, the similarity fit, the warp, face choice, the stage
(rejects, eval fallback, resume, determinism), the CLI, and MTCNN on real photos."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from augment import manifest as mf
from augment.align import chunk
from augment.align import dataset as stage
from augment.align.detect import Face, choose, detection_size
from augment.align.templates import ARCFACE_112, CELEBA_ALIGNED_MEAN, template
from augment.align.warp import apply, centre_square, scale_of, similarity, warp
from augment.config import AlignConfig
from augment.validate import load_config
from augment.pipeline import run_pipeline
from augment.stages import STAGES, Stage
from tests.image_files import flat_png

# --------------------------------------------------------------------------- #
# Templates and transforms
# --------------------------------------------------------------------------- #


def test_arcface_template_is_the_standard_one_and_scales():
    assert np.allclose(template("arcface", 112), ARCFACE_112)
    t224 = template("arcface", 224)
    assert np.allclose(t224, (ARCFACE_112 + 0.5) * 2 - 0.5)


def test_sagan_template_is_celeba_aligned_through_sagans_crop():
    t = template("sagan", 128)
    # eyes level, ~29 px apart at y ~65; mouth at y ~96: a loose crop
    assert abs(t[0, 1] - t[1, 1]) < 1e-9 and 29 < t[1, 0] - t[0, 0] < 30
    assert 64 < t[0, 1] < 67 and 95 < t[3, 1] < 97
    # CelebA's mean aligned landmarks map onto it by exactly "crop the centre 170, resize to 128"
    m = similarity(CELEBA_ALIGNED_MEAN, t)
    k = 128 / 170
    assert np.allclose(m, [[k, 0, (0.5 - 4) * k - 0.5], [0, k, (0.5 - 24) * k - 0.5]], atol=1e-9)


def test_unknown_template_and_tiny_size():
    with pytest.raises(ValueError, match="unknown alignment template"):
        template("ffhq", 128)
    with pytest.raises(ValueError, match="at least 16"):
        template("sagan", 8)


def _similar(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.radians(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def test_similarity_recovers_a_known_transform_and_agrees_with_opencv():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 300, (5, 2))
    m_true = _similar(17.0, 0.37, 12.5, -40.0)
    m = similarity(src, apply(m_true, src))
    assert np.allclose(m, m_true, atol=1e-9)
    cv_m, _ = cv2.estimateAffinePartial2D(src.astype(np.float32), apply(m_true, src).astype(np.float32))
    assert np.allclose(m, cv_m, atol=1e-3)


def test_similarity_is_least_squares_and_never_mirrors():
    src = template("arcface", 112)
    mirrored = src.copy()
    mirrored[:, 0] = 112 - mirrored[:, 0]
    m = similarity(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0  # a proper rotation, not a reflection
    with pytest.raises(ValueError, match="coincide"):
        similarity(np.ones((5, 2)), src)


def test_warp_identity_and_centre_square():
    img = np.random.default_rng(1).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    assert np.array_equal(warp(img, np.eye(2, 3), 40), img[:, :40])
    m = centre_square(60, 40, 40)  # the centre 40x40 at 1:1
    assert np.array_equal(warp(img, m, 40), img[:, 10:50])


def test_strong_minification_is_area_averaged_not_aliased():
    yy, xx = np.mgrid[0:1000, 0:1000]
    stripes = (((xx // 2) % 2) * 255).astype(np.uint8)  # 4-px period: aliases under plain bilinear
    img = np.repeat(stripes[:, :, None], 3, axis=2)
    m = np.array([[0.1, 0, 0], [0, 0.1, 0]])  # 1000 -> 100
    out = warp(img, m, 100).astype(float)
    assert abs(out.mean() - 127.5) < 3 and out.std() < 6  # flat grey, as area averaging gives
    direct = cv2.warpAffine(img, m, (100, 100), flags=cv2.INTER_LINEAR).astype(float)
    assert direct.std() > 50  # what we avoid


def test_warp_puts_landmarks_on_the_template():
    dst = template("sagan", 128)
    m_true = _similar(-12.0, 0.5, 20.0, 35.0)  # the source is a bigger, rotated face
    src_lm = apply(cv2.invertAffineTransform(m_true), dst)
    img = np.zeros((400, 400, 3), np.uint8)
    for x, y in src_lm:
        cv2.circle(img, (round(x), round(y)), 6, (255, 255, 255), -1)
    m = similarity(src_lm, dst)
    assert np.allclose(apply(m, src_lm), dst, atol=1e-6)
    out = warp(img, m, 128)
    for x, y in dst:
        assert out[round(y), round(x)].min() > 200
    assert abs(scale_of(m) - 0.5) < 1e-9


# --------------------------------------------------------------------------- #
# Choosing faces
# --------------------------------------------------------------------------- #


def _face(x1, y1, x2, y2, prob=0.99):
    pts = np.array([[x1 + 0.3 * (x2 - x1), y1 + 0.4 * (y2 - y1)], [x1 + 0.7 * (x2 - x1), y1 + 0.4 * (y2 - y1)],
                    [(x1 + x2) / 2, y1 + 0.6 * (y2 - y1)], [x1 + 0.35 * (x2 - x1), y1 + 0.8 * (y2 - y1)],
                    [x1 + 0.65 * (x2 - x1), y1 + 0.8 * (y2 - y1)]])
    return Face(np.array([x1, y1, x2, y2], float), pts, prob)


def test_choose_by_size_centre_or_probability():
    big = _face(0, 0, 100, 100, 0.95)
    central = _face(160, 160, 240, 240, 0.97)
    sure = _face(320, 300, 390, 380, 0.9999)
    faces = [central, sure, big]
    assert choose(faces, 400, 400, select="largest").faces == [big]
    assert choose(faces, 400, 400, select="central").faces == [central]
    assert choose(faces, 400, 400, select="probable").faces == [sure]
    assert choose(faces, 400, 400, select="largest", keep_all=True).faces == [big, central, sure]


def test_choose_reasons():
    assert choose([], 100, 100).reason == "no_face"
    low = choose([_face(0, 0, 50, 50, 0.6)], 100, 100, min_prob=0.9)
    assert low.reason == "low_probability" and "0.600" in low.detail
    small = choose([_face(0, 0, 12, 12, 0.99)], 100, 100, min_face=20)
    assert small.reason == "too_small" and not small.faces
    # a probable small face and an improbable big one: neither passes
    assert choose([_face(0, 0, 12, 12, 0.99), _face(0, 0, 80, 80, 0.5)], 100, 100).reason == "too_small"


def test_extra_faces_get_ids_of_their_own():
    item = chunk.Item(0, "abc123", "celeba", "img/1.jpg", "/x/img/1.jpg", "mtcnn", None)
    assert chunk.face_id(item, 0) == "abc123"
    assert chunk.face_id(item, 1) == mf.sample_id("celeba", "img/1.jpg#face1") != "abc123"
    assert chunk.out_path("train", "abc123", "png") == "train/ab/abc123.png"


def test_detection_size():
    assert detection_size(250, 250, 640) == (250, 250)
    assert detection_size(5616, 3744, 640) == (640, 427)
    assert detection_size(5616, 3744, 0) == (5616, 3744)


# --------------------------------------------------------------------------- #
# The stage on tiny synthetic manifests
# --------------------------------------------------------------------------- #


def _dots(path: Path, lm: np.ndarray, size=(300, 260)) -> None:
    """A dark image with a white dot at each landmark."""
    img = np.full((size[1], size[0], 3), 40, np.uint8)
    for x, y in lm.reshape(5, 2):
        cv2.circle(img, (round(x), round(y)), 5, (255, 255, 255), -1)
    cv2.imwrite(str(path), img)



def _source(root: Path, n: int = 10, bad: bool = False, blank: int = 0, source: str = "folder") -> mf.Manifest:
    """n images with landmark rows (dots at the landmarks), optional bad files and
    ``blank`` images without landmarks (nothing to detect)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        m = _similar(rng.uniform(-15, 15), rng.uniform(0.6, 1.2), rng.uniform(10, 40), rng.uniform(10, 40))
        lm = apply(cv2.invertAffineTransform(m), template("sagan", 128))
        rel = f"p{i % 3}/img{i:03d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        _dots(root / rel, lm)
        rows.append({"path": rel, "identity": i % 3, "landmarks": lm.reshape(-1).astype(np.float32)})
    for i in range(blank):
        rel = f"blank/b{i}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), np.full((120, 100, 3), 90 + i, np.uint8))
        rows.append({"path": rel, "identity": 9, "landmarks": None})
    if bad:
        (root / "bad").mkdir(exist_ok=True)
        (root / "bad/empty.jpg").write_bytes(b"")
        (root / "bad/text.jpg").write_text("hello\n")
        flat_png(root / "bad/huge.png", 12000, 12000)
        for name in ("empty.jpg", "text.jpg", "huge.png"):
            rows.append({"path": f"bad/{name}", "identity": 8, "landmarks": None})
    frame = mf.frame("images", [
        {"sample_id": mf.sample_id(source, r["path"]), "path": r["path"], "identity": r["identity"],
         "identity_name": str(r["identity"]), "split": "train", "source": source, "landmarks": r["landmarks"]}
        for r in rows
    ])
    return mf.Manifest("images", frame, root)


def test_landmark_mode_puts_every_face_on_the_template(tmp_path):
    src = _source(tmp_path / "data", n=6)
    res = stage.align_dataset(src, AlignConfig(), "auto", tmp_path / "out", progress=False)
    a = res.aligned
    assert len(a) == 6 and len(res.rejects) == 0 and res.stats["modes"] == {"landmarks": 6}
    dst = template("sagan", 128)
    for _, row in a.df.iterrows():
        f = a.root / row["path"]
        assert hashlib.sha256(f.read_bytes()).hexdigest() == row["sha256"]
        m = np.asarray(row["transform"], float).reshape(2, 3)
        assert np.allclose(apply(m, np.asarray(row["landmarks"]).reshape(5, 2)), dst, atol=0.01)
        out = cv2.imread(str(f))
        assert out.shape == (128, 128, 3) and row["width"] == 128 and row["det_prob"] is None
        for x, y in dst:
            assert out[round(y), round(x)].min() > 200  # each dot landed on its template point
    assert a.df["sample_id"].tolist() == src.df["sample_id"].tolist()  # source order, ids kept
    assert a.df["path"].iloc[0] == f"train/{src.df['sample_id'].iloc[0][:2]}/{src.df['sample_id'].iloc[0]}.png"
    assert (a.df["identity"] == src.df["identity"]).all()


def test_bad_files_become_rejects_and_the_run_goes_on(tmp_path):
    src = _source(tmp_path / "data", n=3, bad=True)
    res = stage.align_dataset(src, AlignConfig(), "auto", tmp_path / "out", progress=False)
    assert len(res.aligned) == 3
    got = dict(zip(res.rejects.df["path"], res.rejects.df["reason"]))
    assert got == {"bad/empty.jpg": "unreadable", "bad/text.jpg": "unreadable", "bad/huge.png": "too_large"}
    assert res.rejects.root == src.root
    assert all(res.rejects.df["detail"].str.len() > 0)


def test_landmarks_mode_without_landmarks_and_none_mode(tmp_path):
    src = _source(tmp_path / "data", n=2, blank=1)
    res = stage.align_dataset(src, AlignConfig(), "landmarks", tmp_path / "a", progress=False)
    assert len(res.aligned) == 2 and res.rejects.df["reason"].tolist() == ["no_landmarks"]
    res = stage.align_dataset(src, AlignConfig(size=64), "none", tmp_path / "b", progress=False)
    assert len(res.aligned) == 3 and res.stats["modes"] == {"none": 3}
    img = cv2.imread(str(src.root / src.df["path"].iloc[0]))  # 300x260: the centre 260 square
    want = cv2.resize(img[:, 20:280], (64, 64), interpolation=cv2.INTER_AREA).astype(int)
    got = cv2.imread(str(res.aligned.root / res.aligned.df["path"].iloc[0])).astype(int)
    assert np.abs(got - want).mean() < 3


def test_eval_images_without_a_face_are_centre_cropped_not_dropped(tmp_path):
    src = _source(tmp_path / "data", n=4, blank=2, source="lfw")
    res = stage.align_dataset(src, AlignConfig(), "auto", tmp_path / "ev", prefix="eval", role="eval",
                              progress=False)
    assert len(res.aligned) == 6 and len(res.rejects) == 0  # the two blanks are kept
    fb = res.stats["centre_crop_fallback"]
    assert fb["count"] == 2 and fb["sample_ids"] == src.df["sample_id"].iloc[4:].tolist()
    assert "median landmarks" in fb["layout"]
    blank_rows = res.aligned.df.iloc[4:]
    assert blank_rows["det_prob"].isna().all() and blank_rows["landmarks"].isna().all()
    assert blank_rows["transform"].notna().all()
    # the same images in training are rejects
    tr = stage.align_dataset(src, AlignConfig(), "auto", tmp_path / "tr", progress=False)
    assert len(tr.aligned) == 4 and tr.rejects.df["reason"].tolist() == ["no_face", "no_face"]
    off = stage.align_dataset(src, AlignConfig(eval_fallback="reject"), "auto", tmp_path / "off",
                              prefix="eval", role="eval", progress=False)
    assert len(off.aligned) == 4 and len(off.rejects) == 2
    # nothing detected in the whole set: the measured LFW face position is used
    blanks = _source(tmp_path / "blanks", n=0, blank=2, source="lfw")
    res = stage.align_dataset(blanks, AlignConfig(), "auto", tmp_path / "bl", prefix="eval", role="eval",
                              progress=False)
    assert len(res.aligned) == 2 and "LFW median" in res.stats["centre_crop_fallback"]["layout"]


def test_empty_manifest(tmp_path):
    res = stage.align_dataset(mf.empty("images", tmp_path), AlignConfig(), "auto", tmp_path / "o", progress=False)
    assert len(res.aligned) == 0 and len(res.rejects) == 0
    mf.write(res.aligned, tmp_path / "o/aligned.parquet")


def test_same_input_same_manifest_bytes(tmp_path):
    src = _source(tmp_path / "data", n=5)
    a = stage.align_dataset(src, AlignConfig(), "auto", tmp_path / "a", progress=False)
    b = stage.align_dataset(src, AlignConfig(), "auto", tmp_path / "b", progress=False)
    pa, pb = mf.write(a.aligned, tmp_path / "a/aligned.parquet"), mf.write(b.aligned, tmp_path / "b/aligned.parquet")
    assert mf.file_digest(pa) == mf.file_digest(pb)


def test_changed_settings_clear_old_parts(tmp_path):
    src = _source(tmp_path / "data", n=3)
    stage.align_dataset(src, AlignConfig(size=64), "auto", tmp_path / "o", progress=False)
    old = sorted((tmp_path / "o/train").rglob("*.png"))
    res = stage.align_dataset(src, AlignConfig(size=96), "auto", tmp_path / "o", progress=False)
    assert all(cv2.imread(str(res.aligned.root / p)).shape == (96, 96, 3) for p in res.aligned.df["path"])
    assert len(sorted((tmp_path / "o/train").rglob("*.png"))) == len(old) == 3


# --------------------------------------------------------------------------- #
# Through the runner: outputs, and resume after an interrupt
# --------------------------------------------------------------------------- #


@pytest.fixture
def pipeline(tmp_path, monkeypatch):
    train = _source(tmp_path / "data/train", n=11)
    ev = _source(tmp_path / "data/eval", n=3, blank=1, bad=True, source="lfw")

    def fake_read(cfg, inputs, run_dir):
        return {"source": train, "eval_source": ev}

    monkeypatch.setitem(STAGES, "read", Stage(name="read", target=fake_read, sections=("data",),
                                                  outputs={"source": "images", "eval_source": "images"}))
    monkeypatch.setattr(stage, "CHUNK_ROWS", 4)  # 3 chunks for 11 training rows

    def cfg(workdir: str):
        p = tmp_path / f"{workdir}.yaml"
        p.write_text(f"name: t\nworkdir: {tmp_path / workdir}\nstages: [read, align]\ndevice: cpu\n"
                     "data: {train: {format: folder, root: x}, eval: {format: lfw, root: y}}\n"
                     "align: {workers: 1, size: 64}\n")
        return load_config(p, check_paths=False)

    return cfg, train, ev


def test_stage_through_the_runner(pipeline):
    cfg_of, train, ev = pipeline
    cfg = cfg_of("w")
    assert run_pipeline(cfg) == {"read": "ran", "align": "ran"}
    d = Path(cfg.workdir) / "align"
    aligned = mf.read(d / "aligned.parquet", "images")
    eval_aligned = mf.read(d / "eval_aligned.parquet", "images")
    rejects = mf.read(d / "rejects.parquet", "rejects")
    assert len(aligned) == 11 and aligned.root.resolve() == d.resolve()
    assert all((aligned.root / p).is_file() for p in aligned.df["path"])
    assert len(eval_aligned) == 4  # 3 with landmarks + 1 centre-cropped blank
    assert eval_aligned.meta["extra"]["centre_crop_fallback"]["count"] == 1
    assert sorted(rejects.df["reason"]) == ["too_large", "unreadable", "unreadable"]
    assert all(Path(p).is_absolute() and Path(p).exists() for p in rejects.df["path"])  # eval rows: absolute
    assert run_pipeline(cfg) == {"read": "skipped", "align": "skipped"}


def test_interrupted_stage_resumes_with_the_same_rows(pipeline, monkeypatch):
    cfg_of, _, _ = pipeline
    run_pipeline(cfg_of("clean"))
    clean = mf.read(Path(cfg_of("clean").workdir) / "align/aligned.parquet").df

    real_write, writes = stage._Parts.write, []

    def interrupt_after_first(self, chunk, records):
        if writes:
            raise KeyboardInterrupt
        writes.append(chunk)
        real_write(self, chunk, records)

    monkeypatch.setattr(stage._Parts, "write", interrupt_after_first)
    cfg = cfg_of("w")
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg)
    assert not (Path(cfg.workdir) / "align/aligned.parquet").exists()
    monkeypatch.setattr(stage._Parts, "write", real_write)

    done_chunks = []
    real_chunk = stage.align_chunk

    def counting(items, s, out_dir, prefix):
        done_chunks.append((prefix, items[0].row))
        return real_chunk(items, s, out_dir, prefix)

    monkeypatch.setattr(stage, "align_chunk", counting)
    assert run_pipeline(cfg) == {"read": "skipped", "align": "ran"}
    # the training chunk recorded before the interrupt is not redone; the rest is
    assert done_chunks == [("train", 4), ("train", 8), ("eval", 0), ("eval", 4)]
    resumed = mf.read(Path(cfg.workdir) / "align/aligned.parquet").df
    pd.testing.assert_frame_equal(resumed, clean)


# --------------------------------------------------------------------------- #
# The command line
# --------------------------------------------------------------------------- #


def _celeba_like(root: Path, n: int = 4) -> None:
    """A tiny CelebA copy of in-the-wild images with CelebA's landmark file for them."""
    (root / "img_celeba").mkdir(parents=True)
    rng = np.random.default_rng(5)
    ids, lms = [], []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        m = _similar(rng.uniform(-10, 10), rng.uniform(0.5, 0.8), rng.uniform(0, 30), rng.uniform(0, 30))
        lm = apply(cv2.invertAffineTransform(m), template("sagan", 128))
        _dots(root / "img_celeba" / name, lm)
        ids.append(f"{name} {i % 2 + 1}")
        lms.append(name + " " + " ".join(str(int(round(v))) for v in lm.reshape(-1)))
    (root / "identity_CelebA.txt").write_text("\n".join(ids) + "\n")
    (root / "list_landmarks_celeba.txt").write_text(f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                                                    "leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n"
                                                    + "\n".join(lms) + "\n")


def test_cli_align_a_celeba_folder(tmp_path):
    from augment.cli import cli

    _celeba_like(tmp_path / "celeba")
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["align", str(tmp_path / "celeba"), "--out", str(out), "--template", "arcface",
                                 "--size", "112", "--workers", "1", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "4 image(s) -> 4 aligned face(s), 0 reject(s)" in r.output
    a = mf.read(out / "aligned.parquet", "images")
    assert len(a) == 4 and (out / "rejects.parquet").is_file()
    assert a.meta["extra"]["modes"] == {"landmarks": 4} and a.meta["extra"]["template"] == "arcface"
    assert all(cv2.imread(str(a.root / p)).shape == (112, 112, 3) for p in a.df["path"])
    again = CliRunner().invoke(cli, ["align", str(tmp_path / "celeba"), "--out", str(out), "--template", "arcface",
                                     "--size", "112", "--workers", "1", "--device", "cpu"])
    assert again.exit_code == 0 and mf.read(out / "aligned.parquet").df.equals(a.df)


def test_cli_align_bad_flags(tmp_path):
    from augment.cli import cli

    _celeba_like(tmp_path / "celeba", n=1)
    r = CliRunner().invoke(cli, ["align", str(tmp_path / "celeba"), "--out", str(tmp_path / "o"), "--size", "4"])
    assert r.exit_code == 2 and "--size" in r.output
    r = CliRunner().invoke(cli, ["align", str(tmp_path / "celeba/identity_CelebA.txt"), "--out",
                                 str(tmp_path / "o"), "--device", "cpu"])
    assert r.exit_code == 1 and "identity_CelebA.txt: expected a dataset folder or an images manifest" in r.output
    r = CliRunner().invoke(cli, ["align", str(tmp_path / "celeba"), "--out", str(tmp_path / "o"),
                                 "--dataset", "synthfaces", "--device", "cpu"])
    assert r.exit_code == 1 and "Error:" in r.output and "celeba" in r.output  # no SynthFaces parts there


# --------------------------------------------------------------------------- #
# MTCNN on real photos (skipped without ../shared/data)
# --------------------------------------------------------------------------- #


EYE_CHECK_BORDER = 24


def eye_error(aligned: mf.Manifest, border: int = EYE_CHECK_BORDER) -> tuple[float, int]:
    """(mean distance in px between the arcface template's eyes and the eyes MTCNN
    finds again on the aligned 112x112 crops, number of crops where it finds no face).

    The crop is detected on a ``border``-px replicated frame: MTCNN's box runs
    below the chin, past the bottom of a tight 112 crop, and facenet-pytorch
    fills the part of the box outside the image with zeros, which drags every
    landmark 2-3 px down. The frame only gives the detector's box room; the
    crop's own pixels are unchanged.
    """
    from augment.align.detect import detect

    crops = [cv2.cvtColor(cv2.imread(str(aligned.root / p)), cv2.COLOR_BGR2RGB) for p in aligned.df["path"]]
    if border:
        crops = [cv2.copyMakeBorder(c, *[border] * 4, cv2.BORDER_REPLICATE) for c in crops]
    found = detect(crops, max_side=0)
    dst = template("arcface", 112)[:2] + border
    errs, missed = [], 0
    for faces in found:
        if not faces:
            missed += 1
            continue
        best = min(faces, key=lambda f: np.hypot(*(f.points[:2].mean(0) - dst.mean(0))))
        errs.extend(np.hypot(*(best.points[:2] - dst).T))
    return float(np.mean(errs)), missed


def test_real_photos_detect_and_align_consistently(celeba_wild, tmp_path, monkeypatch):
    from augment.data.read import load_celeba_like

    src = load_celeba_like(celeba_wild, "img_celeba", "celeba", max_images=16)
    monkeypatch.setattr(stage, "CHUNK_ROWS", 8)  # two chunks, so the worker-process path runs
    res = stage.align_dataset(src, AlignConfig(template="arcface", size=112), "auto", tmp_path / "o",
                              workers=2, progress=False)
    assert res.stats["modes"] == {"mtcnn": 16}
    assert res.stats["detected_images"] >= 15
    a = res.aligned
    assert a.df["det_prob"].min() >= 0.9 and a.df["bbox"].notna().all()
    lm = np.stack(a.df["landmarks"].to_numpy()).reshape(-1, 5, 2)
    box = np.stack(a.df["bbox"].to_numpy())
    # landmarks are in source pixels: inside their (full-resolution) box
    assert ((lm[..., 0] >= box[:, None, 0] - 5) & (lm[..., 0] <= box[:, None, 2] + 5)).all()
    err, missed = eye_error(a)
    assert err < 3.0 and missed == 0


@pytest.mark.slow
def test_detection_rate_celeba_wild(celeba_wild, tmp_path):
    from augment.data.read import load_celeba_like
    from augment.runtime import workers

    src = load_celeba_like(celeba_wild, "img_celeba", "celeba")
    res = stage.align_dataset(src, AlignConfig(template="arcface", size=112), "mtcnn", tmp_path / "o",
                              workers=workers(0), progress=False)
    assert len(src) == 784
    assert res.stats["detection_rate"] >= 0.97, res.stats
    err, missed = eye_error(res.aligned)
    assert err < 3.0 and missed <= 0.01 * len(res.aligned)


@pytest.mark.slow
def test_detection_rate_lfw(lfw_sample, tmp_path):
    from augment.data.read import load_lfw_like
    from augment.runtime import workers

    src, _ = load_lfw_like(lfw_sample / "lfw-deepfunneled", "", "lfw")
    res = stage.align_dataset(src, AlignConfig(template="arcface", size=112), "mtcnn", tmp_path / "o",
                              prefix="eval", role="eval", workers=workers(0), progress=False)
    assert len(src) == 1549
    assert res.stats["detection_rate"] >= 0.99, res.stats
    assert len(res.aligned) == 1549  # misses are centre-cropped, never dropped
