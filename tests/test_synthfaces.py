"""SynthFaces: formats the readers load, exact counterfactuals, locality, reproducibility, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from augment import manifest as mf
from augment.cli import cli
from augment.data import celeba, lfw
from augment.data.synthfaces import Settings, describe, synthesize
from augment.data.synthfaces import dataset as ds
from augment.data.synthfaces import layout

SMALL = Settings(identities=10, images_per_identity=3, lfw_identities=10, lfw_images_per_identity=2, size=64, seed=3)


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "small"
    synthesize(out, SMALL, workers=1, progress=False)
    return out


def test_cli_must_show(tmp_path):
    """The issue's numbers: 50 identities x 10 photos read back by the CelebA reader."""
    out = tmp_path / "s"
    run = CliRunner().invoke(cli, ["synth", str(out), "--identities", "50", "--images-per-identity", "10",
                                   "--seed", "1", "--size", "64", "--lfw-identities", "10",
                                   "--lfw-images-per-identity", "2",
                                   "--workers", "1"])
    assert run.exit_code == 0, run.output
    info = json.loads(CliRunner().invoke(cli, ["datasets", "describe", "celeba", str(out / "celeba"), "--json"]).output)
    assert (info["images"], info["identities"], info["with_attributes"], info["with_landmarks"]) == (500, 50, 500, 500)
    assert info["partition_file"] and set(info["splits"]) == {"train", "val", "test"}
    info = json.loads(CliRunner().invoke(cli, ["datasets", "describe", "lfw", str(out / "lfw"), "--pairs",
                                               "pairs.txt", "--json"]).output)
    assert info["folds"] == 10 and info["identities"] == 10 and info["same"] == info["different"] > 0


def test_celeba_part_reads_back(small):
    data = celeba.load(small / "celeba")
    f = data.frame
    assert len(f) == 30 and f["identity"].nunique() == 10
    assert f["path"].str.match(r"img_align_celeba/\d{6}\.png").all()
    # identity-disjoint partition
    ids = f.groupby("split")["identity"].apply(set)
    assert not (ids["train"] & ids["test"]) and not (ids["train"] & ids["val"]) and not (ids["val"] & ids["test"])
    attrs = np.stack(f["attributes"])
    rendered = [celeba.attribute_index(a) for a in ds.ATTRIBUTES]
    others = np.setdiff1d(np.arange(40), rendered)
    assert (attrs[:, others] == -1).all()
    assert set(np.unique(attrs[:, rendered])) == {-1, 1}
    assert Image.open(data.image_dir / "000001.png").size == (64, 64)
    lms = np.stack(f["landmarks"])
    assert lms.shape == (30, 10)
    # aligned-crop geometry: eyes about 0.38 S from the top, 0.3 S apart, mouth about 0.75 S
    eye_y = (lms[:, 1] + lms[:, 3]) / 2 / 64
    assert abs(np.median(eye_y) - 0.38) < 0.03
    assert abs(np.median(lms[:, 2] - lms[:, 0]) / 64 - 0.3) < 0.04
    assert abs(np.median((lms[:, 7] + lms[:, 9]) / 2) / 64 - 0.75) < 0.05


def test_lfw_part_reads_back(small):
    tree = lfw.load_tree(small / "lfw")
    assert len(tree.frame) == 20 and tree.frame["identity"].nunique() == 10
    assert Image.open(small / "lfw" / tree.frame["path"][0]).size == (250, 250)
    pairs = lfw.match_extensions(lfw.read_pairs(small / "lfw" / "pairs.txt"), set(tree.frame["path"]))
    lfw.check_pairs_exist(pairs, small / "lfw", set(tree.frame["path"]))
    assert pairs["fold"].nunique() == 10
    assert pairs.groupby("fold")["same"].sum().nunique() == 1
    lms = celeba.read_landmarks(small / "lfw" / "lfw_landmarks.txt")
    assert set(lms) == set(tree.frame["path"])
    # deep-funneled placement: eyes about 46 px apart near the middle
    eyes = np.array([lm[2] - lm[0] for lm in lms.values()])
    assert 38 < np.median(eyes) < 54
    # identities disjoint from the CelebA part: different names and different people (traits)
    assert not set(tree.frame["identity_name"]) & {str(i) for i in range(1, 11)}


def test_pairs_person_disjoint_folds_and_attribute_changes():
    rng = np.random.default_rng(0)
    # as rendered: habitual values kept with probability 0.85, five attributes
    images = {f"P{k:02d}": [{"index": j + 1, "attrs": {a: int(rng.uniform() < 0.15) for a in "ABCDE"}}
                            for j in range(4)] for k in range(23)}
    n, pairs = layout.make_pairs(0, images)
    assert n == min(300, *(sum(1 for p in pairs if p[0] == f and p[1]) for f in range(10)))
    folds = pd.DataFrame([(f, same, a, b) for f, same, (a, _, b, _) in pairs], columns=["fold", "same", "a", "b"])
    people = folds.groupby("fold").apply(lambda g: set(g["a"]) | set(g["b"]), include_groups=False)
    for f in range(10):
        for g in range(f + 1, 10):
            assert not people[f] & people[g]  # as in LFW View 2
    same = [(a, i, b, j) for _, s_, (a, i, b, j) in pairs if s_]
    attrs = {(k, s_["index"]): s_["attrs"] for k, v in images.items() for s_ in v}
    differ = sum(attrs[(a, i)] != attrs[(b, j)] for a, i, b, j in same)
    assert differ >= len(same) / 2 and len(set(same)) == len(same)
    # a second call gives the same pairs (seeded)
    assert layout.make_pairs(0, images) == (n, pairs)


def test_groundtruth_exact_outside_mask(small):
    gt = mf.read(small / "groundtruth" / "index.parquet", "groundtruth")
    test_images = celeba.load(small / "celeba").frame.query("split == 'test'")
    assert len(gt) == (len(test_images) + 20) * 5
    assert gt.root.resolve() == small.resolve()
    for row in gt.df.itertuples():
        src, cf = load(gt.root / row.image), load(gt.root / row.counterfactual)
        mask = load(gt.root / row.mask) > 0
        assert mask.shape == src.shape[:2]
        differs = (src != cf).any(axis=2)
        assert mask.any(), f"{row.counterfactual}: toggling {row.attribute} changed nothing"
        np.testing.assert_array_equal(differs, mask, err_msg=row.counterfactual)


def test_jpeg_masks_mark_decoded_differences(tmp_path):
    out = tmp_path / "j"
    synthesize(out, Settings(identities=3, images_per_identity=2, lfw_identities=5, lfw_images_per_identity=3,
                             size=48, jpeg_quality=90, seed=5), workers=1, progress=False)
    assert (out / "celeba" / "img_align_celeba" / "000001.jpg").is_file()
    gt = mf.read(out / "groundtruth" / "index.parquet", "groundtruth")
    for row in gt.df.itertuples():
        src, cf = load(out / row.image), load(out / row.counterfactual)
        np.testing.assert_array_equal((src != cf).any(axis=2), load(out / row.mask) > 0)
    assert describe(out)["lfw_folds"] == 10  # .jpg names in pairs.txt resolve


def _frame(lm: np.ndarray):
    """Eye midpoint, unit vector along the eyes, inter-ocular distance."""
    le, re = lm[0:2], lm[2:4]
    mid, axis = (le + re) / 2, re - le
    iod = float(np.hypot(*axis))
    return mid, axis / iod, iod


def test_masks_are_local(small):
    gt = mf.read(small / "groundtruth" / "index.parquet", "groundtruth").df
    lms = {f"celeba/img_align_celeba/{k}": v
           for k, v in celeba.read_landmarks(small / "celeba" / "list_landmarks_align_celeba.txt").items()}
    lms.update({f"lfw/{k}": v for k, v in celeba.read_landmarks(small / "lfw" / "lfw_landmarks.txt").items()})
    for row in gt.itertuples():
        lm = lms[row.image]
        mid, ex, iod = _frame(lm)
        ey = np.array([-ex[1], ex[0]])  # down the face
        ys, xs = np.nonzero(load(small / row.mask))
        p = np.stack([xs, ys], 1) - mid
        along, down = p @ ex / iod, p @ ey / iod  # face coordinates, in inter-ocular distances
        mouth = ((lm[6:8] + lm[8:10]) / 2 - mid) @ np.stack([ex, ey], 1) / iod
        if row.attribute == "Eyeglasses":
            assert np.abs(down).max() < 0.55 and np.abs(along).max() < 1.45, row.mask
        elif row.attribute in ("Smiling", "Mouth_Slightly_Open"):
            r = np.hypot(along - mouth[0], down - mouth[1])
            assert r.max() < 0.8, row.mask
            assert abs(np.median(down) - mouth[1]) < 0.3
        elif row.attribute == "No_Beard":
            assert down.min() > 0.1, row.mask  # below the eyes
        elif row.attribute == "Bangs":
            assert down.max() < -0.15 and down.min() > -1.6, row.mask  # the forehead, above the brows


def test_eye_landmarks_sit_on_dark_pupils(tmp_path):
    out = tmp_path / "e"
    synthesize(out, Settings(identities=4, images_per_identity=2, lfw_identities=5, lfw_images_per_identity=3,
                             size=128, seed=11), workers=1, progress=False)
    for name, lm in celeba.read_landmarks(out / "celeba" / "list_landmarks_align_celeba.txt").items():
        img = load(out / "celeba" / "img_align_celeba" / name).astype(float).mean(2)
        for x, y in (lm[0:2], lm[2:4]):
            pupil = img[int(round(y)), int(round(x))]
            around = img[int(round(y)) - 6:int(round(y)) + 7, int(round(x)) - 6:int(round(x)) + 7]
            assert pupil < np.median(around) - 10, name


def test_same_seed_same_bytes_any_worker_count(tmp_path):
    s = Settings(identities=9, images_per_identity=2, lfw_identities=5, lfw_images_per_identity=3, size=40, seed=7)
    synthesize(tmp_path / "a", s, workers=1, progress=False)
    synthesize(tmp_path / "b", s, workers=2, progress=False)
    a, b = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b")
    assert a == b and len(a) > 50
    other = Settings(**{**s.__dict__, "seed": 8})
    synthesize(tmp_path / "c", other, workers=1, progress=False)
    c = tree_digest(tmp_path / "c")
    assert c["celeba/img_align_celeba/000001.png"] != a["celeba/img_align_celeba/000001.png"]


def test_resume_after_interrupt_gives_same_bytes(tmp_path, monkeypatch):
    s = Settings(identities=9, images_per_identity=2, lfw_identities=5, lfw_images_per_identity=3, size=40, seed=2)
    synthesize(tmp_path / "fresh", s, workers=1, progress=False)
    real = ds.render_chunk
    calls = []

    def flaky(out, s_, part, ids, names):
        calls.append(part)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(out, s_, part, ids, names)

    monkeypatch.setattr(ds, "render_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        synthesize(tmp_path / "resumed", s, workers=1, progress=False)
    assert ds.read_stamp(tmp_path / "resumed") is None  # not marked complete
    monkeypatch.setattr(ds, "render_chunk", real)
    synthesize(tmp_path / "resumed", s, workers=1, progress=False)
    assert tree_digest(tmp_path / "resumed") == tree_digest(tmp_path / "fresh")
    # complete with the same settings: nothing is rendered again
    monkeypatch.setattr(ds, "render_chunk", lambda *a: pytest.fail("re-rendered a complete dataset"))
    synthesize(tmp_path / "resumed", s, workers=1, progress=False)


def test_habits(tmp_path):
    out = tmp_path / "h"
    synthesize(out, Settings(identities=6, images_per_identity=6, lfw_identities=5, lfw_images_per_identity=3,
                             size=32, habit_strength=1.0, seed=4), workers=1, progress=False)
    f = celeba.load(out / "celeba").frame
    per_id = f.groupby("identity")["attributes"].apply(lambda s: len({tuple(a) for a in s}))
    assert (per_id == 1).all()  # everyone always shows their habits
    assert len({tuple(a) for a in f["attributes"]}) > 1  # but people differ


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--identities", "1"], "--identities"),
        (["--size", "16"], "--size"),
        (["--habit-strength", "1.5"], "--habit-strength"),
        (["--lfw-images-per-identity", "1"], "--lfw-images-per-identity"),
    ],
)
def test_bad_arguments_exit_2(tmp_path, args, flag):
    run = CliRunner().invoke(cli, ["synth", str(tmp_path / "o"), *args])
    assert run.exit_code == 2 and flag in run.output, run.output
    assert not (tmp_path / "o" / "celeba").exists()


def test_unwritable_or_foreign_out_exit_2(tmp_path):
    (tmp_path / "file").write_text("x")
    run = CliRunner().invoke(cli, ["synth", str(tmp_path / "file" / "sub"), "--identities", "2"])
    assert run.exit_code == 2 and "OUT" in run.output, run.output
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    run = CliRunner().invoke(cli, ["synth", str(tmp_path / "mine")])
    assert run.exit_code == 2 and "not empty" in run.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_preview_sheet(tmp_path):
    out = tmp_path / "o"
    sheet = tmp_path / "sheet.png"
    run = CliRunner().invoke(cli, ["synth", str(out), "--identities", "3", "--images-per-identity", "1",
                                   "--lfw-identities", "5", "--lfw-images-per-identity", "3", "--size", "48",
                                   "--workers", "1", "--preview", str(sheet)])
    assert run.exit_code == 0, run.output
    img = Image.open(sheet)
    assert img.width == 48 * 6 and img.height > 48 * 6


def test_pipeline_stage_then_read(tmp_path):
    from augment.validate import load_config
    from augment.pipeline import run_pipeline

    repo = Path(__file__).resolve().parents[1]
    cfg = load_config(repo / "pipelines" / "demo.yaml", [
        f"workdir={tmp_path / 'run'}", "stages=[synth, read]", "synth.identities=4", "synth.images_per_identity=2",
        "synth.lfw_identities=5", "synth.lfw_images_per_identity=3", "synth.size=48", "synth.workers=1",
    ])
    assert run_pipeline(cfg) == {"synth": "ran", "read": "ran"}
    gt = mf.read(tmp_path / "run" / "synth" / "groundtruth.parquet", "groundtruth")
    assert gt.root.resolve() == (tmp_path / "run" / "synth" / "data").resolve()
    assert (gt.root / gt.df["counterfactual"][0]).is_file()
    source = mf.read(tmp_path / "run" / "read" / "source.parquet", "images")
    assert len(source) == 8 and source.df["attributes"].notna().all() and source.df["landmarks"].notna().all()
    pairs = mf.read(tmp_path / "run" / "read" / "pairs.parquet", "pairs")
    assert pairs.df["fold"].nunique() == 10
    assert run_pipeline(cfg) == {"synth": "skipped", "read": "skipped"}


def test_photo_does_not_depend_on_its_batch(small):
    """A photo rendered alone equals the one written (drawn in a batch with others)."""
    from augment.data.synthfaces.params import sample_identity, sample_shot
    from augment.data.synthfaces.render import FaceRender

    numbers = ds.celeba_numbers(SMALL)
    for k, j in [(0, 0), (0, 2), (9, 1)]:
        ident = sample_identity(SMALL.seed, "celeba", k)
        shot = sample_shot(SMALL.seed, "celeba", ident, k, j, (64, 64), SMALL.habit_strength)
        alone = FaceRender(ident, shot, 64, 64).image()
        written = load(small / "celeba" / "img_align_celeba" / layout.celeba_name(numbers[(k, j)], "png"))
        np.testing.assert_array_equal(alone, written)


def test_batch_renders_equal_single_renders():
    """Batched drawing (windows that are unions over the batch, layers drawn for
    the photos that show them, painting over the cached base on the last render)
    gives each photo and counterfactual the bytes it has when drawn alone. (A
    layer cut off where its window ends would change a few pixels by a level in
    about a third of these renders.)"""
    from augment.data.synthfaces.params import ATTRIBUTES, sample_identity, sample_shot
    from augment.data.synthfaces.render import BatchRender, FaceRender, toggle

    size, items = 128, []
    for k in range(4):  # mixed people; habit strength 0.5 mixes each attribute within a person
        ident = sample_identity(9, "celeba", k)
        items += [(ident, sample_shot(9, "celeba", ident, k, j, (size, size), 0.5)) for j in range(3)]
    batch = BatchRender(items, size, size)
    photos = batch.images()
    toggled = {a: batch.images(batch.toggled(a), last=True) for a in ATTRIBUTES}  # base rebuilt each time
    again = batch.images(last=True)
    np.testing.assert_array_equal(again, photos)
    shown = {a: {s.attrs[a] for _, s in items} for a in ATTRIBUTES}
    assert all(v == {0, 1} for v in shown.values()), shown  # every attribute on in some photos, off in others
    for n, (ident, shot) in enumerate(items):
        alone = FaceRender(ident, shot, size, size)
        np.testing.assert_array_equal(alone.image(), photos[n])
        for a in ATTRIBUTES:
            np.testing.assert_array_equal(alone.image(toggle(shot.attrs, a)), toggled[a][n], err_msg=f"{n} {a}")


def test_renders_the_committed_preview():
    """The faces look as in docs/synthfaces_preview.png (seed 0, 112 px): a change
    to the rendering that alters them must come with a new preview (and a word to
    whoever trains on the images). Tags and titles (font rendering) are left out."""
    from augment.data.synthfaces.params import ATTRIBUTES, sample_identity, sample_shot
    from augment.data.synthfaces.render import BatchRender

    size, rows = 112, 6
    sheet = load(Path(__file__).resolve().parents[1] / "docs" / "synthfaces_preview.png").astype(int)
    head = max(14, size // 7)
    items = []
    for r in range(rows):
        ident = sample_identity(0, "celeba", r)
        items.append((ident, sample_shot(0, "celeba", ident, r, 0, (size, size), 0.85)))
    render = BatchRender(items, size, size)
    cells = [render.images()] + [render.images(render.toggled(a)) for a in ATTRIBUTES]
    keep = size - 30  # above the tags
    for c, imgs in enumerate(cells):
        for r in range(rows):
            ref = sheet[head + r * size:head + r * size + keep, c * size:(c + 1) * size]
            diff = np.abs(imgs[r][:keep].astype(int) - ref)
            # identical on this machine; a little slack for other CPUs' float rounding
            assert diff.max() <= 2 and (diff > 0).mean() < 0.002, (r, c, diff.max(), (diff > 0).mean())


def test_settings_and_the_synth_command_follow_the_config_section():
    """SynthConfig is the one definition: Settings takes its fields (but out and workers,
    and an int seed), and the synth command has one option per field with its default."""
    import dataclasses

    from augment.config import SynthConfig
    from augment.validate import load_config
    from augment.data.synthfaces import settings_from_config

    section = {f.name: f for f in dataclasses.fields(SynthConfig)}
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    assert set(fields) == set(section) - {"out", "workers"}
    defaults = Settings()
    for name in fields:
        if name != "seed":
            assert getattr(defaults, name) == getattr(SynthConfig(), name), name
    options = {p.name: p for p in cli.commands["synth"].params}
    assert set(fields) | {"workers"} <= set(options)
    for name in set(fields) - {"seed"} | {"workers"}:
        want = getattr(SynthConfig(), name)
        if isinstance(want, dict):  # repeatable ATTRIBUTE=P options, none by default
            assert want == {} and options[name].multiple, name
            continue
        got = options[name].default
        if name == "groundtruth_splits":
            got = tuple(got.split(","))
        assert got == want, name
    cfg = load_config(None, ["synth.identities=7", "synth.habit_by_attribute={Eyeglasses: 1.0}", "seed=4"],
                      check_paths=False)
    s = settings_from_config(cfg)
    assert (s.identities, s.habit_by_attribute, s.seed) == (7, {"Eyeglasses": 1.0}, 4)
