"""``augment pairs``, ``augment evaluate`` and ``datasets describe`` find the images
a pairs file or attribute CSV names in every folder and manifest the tool writes
(one rule, ``recognition.matching``), and when they do not, the error names the
file and says where the images are: a folder nearby, or their extension."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from augment import manifest as mf
from augment.cli import cli
from augment.data.lfw import read_pairs
from tests.test_evaluate_raw_photos import recognizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """A small SynthFaces folder (its LFW part: 12 people x 6 PNGs, lfw_attributes.csv, pairs.txt)."""
    out = tmp_path_factory.mktemp("synth") / "sf"
    r = CliRunner().invoke(cli, ["synth", str(out), "--identities", "2", "--images-per-identity", "2",
                                 "--lfw-identities", "12", "--lfw-images-per-identity", "6", "--size", "32",
                                 "--workers", "1"])
    assert r.exit_code == 0, r.output
    return out


def pairs_args(images, source, out: Path) -> list[str]:
    return ["pairs", str(images), "--attribute", "Eyeglasses", "--attributes-from", str(source), "--out", str(out),
            "--folds", "2"]


def one_line(output: str) -> str:
    return " ".join(output.split())  # click wraps nothing, but paths may be long: compare without line breaks


def jpg_csv(synth: Path, out: Path) -> Path:
    """The SynthFaces attribute CSV naming .jpg, as LFW's names do (the folder holds .png)."""
    out.write_text((synth / "lfw" / "lfw_attributes.csv").read_text().replace(".png,", ".jpg,"))
    return out


def test_pairs_on_the_synthfaces_root_suggests_its_lfw_folder(synth, tmp_path):
    csv = synth / "lfw" / "lfw_attributes.csv"
    r = CliRunner().invoke(cli, pairs_args(synth, csv, tmp_path / "p.txt"))
    assert r.exit_code == 1
    # it used to suggest celeba/ (the first subfolder with images), where none of the CSV's images are
    assert f"{synth / 'lfw'} holds them: give {synth / 'lfw'} as IMAGES" in one_line(r.output)
    assert str(csv) in one_line(r.output)


def test_pairs_on_a_folder_that_lacks_the_csvs_images_names_the_csv_and_the_folder_that_has_them(synth, tmp_path):
    csv = jpg_csv(synth, tmp_path / "attrs.csv")
    r = CliRunner().invoke(cli, pairs_args(synth / "celeba", csv, tmp_path / "p.txt"))
    assert r.exit_code == 1
    text = one_line(r.output)
    # it used to end in "found 0 with both values": the CSV's names had matched nothing, silently
    assert f"72 of the 72 image(s) named by {csv} are not in {synth / 'celeba'}" in text
    assert f"{synth / 'lfw'} holds them" in text


def test_pairs_of_an_aligned_manifest_name_the_photos_like_the_folders_pairs(synth, tmp_path):
    """The CSV names .jpg photos; the folder has .png; the aligned manifest's crops are named by sample id."""
    csv = jpg_csv(synth, tmp_path / "attrs.csv")
    r = CliRunner().invoke(cli, pairs_args(synth / "lfw", csv, tmp_path / "folder.txt"))
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["align", str(synth / "lfw"), "--out", str(tmp_path / "al"), "--dataset", "lfw",
                                 "--mode", "none", "--size", "32", "--workers", "1"])
    assert r.exit_code == 0, r.output
    aligned = tmp_path / "al" / "aligned.parquet"
    assert not mf.read(aligned, "images").df["path"].str.contains("_0001").any()  # crops: named by sample id
    r = CliRunner().invoke(cli, pairs_args(aligned, csv, tmp_path / "aligned.txt"))
    assert r.exit_code == 0, r.output  # it used to match none of the crops: no image labelled
    assert (tmp_path / "aligned.txt").read_text() == (tmp_path / "folder.txt").read_text()


def test_pairs_from_dataset_on_a_folder_points_at_the_csv_synth_wrote(synth, tmp_path):
    r = CliRunner().invoke(cli, pairs_args(synth / "lfw", "dataset", tmp_path / "p.txt"))
    assert r.exit_code == 1
    assert f"--attributes-from {synth / 'lfw' / 'lfw_attributes.csv'}" in one_line(r.output)


def evaluate_args(tmp_path: Path, pairs: Path, images: Path) -> list[str]:
    base = recognizer(tmp_path / "models", "baseline")
    return ["evaluate", "--baseline", str(base), "--pairs", str(pairs), "--images", str(images), "--out",
            str(tmp_path / "ev"), "--bootstrap", "0", "--device", "cpu", "--align", "never"]


@pytest.mark.parametrize("given", [".", "celeba", "celeba/img_align_celeba", "groundtruth/lfw"])
def test_evaluate_on_the_wrong_folder_suggests_the_one_holding_the_pairs_images(synth, tmp_path, given):
    pairs = synth / "lfw" / "pairs.txt"
    r = CliRunner().invoke(cli, evaluate_args(tmp_path, pairs, synth / given))
    assert r.exit_code == 1
    text = one_line(r.output)
    assert f"{synth / 'lfw'} holds them: give --images {synth / 'lfw'}" in text, text
    assert str(pairs) in text


def test_evaluate_finds_png_for_jpg_pairs_and_checks_before_embedding(synth, tmp_path):
    pairs = synth / "lfw" / "pairs.txt"
    assert read_pairs(pairs)["path_a"].str.endswith(".jpg").all()
    r = CliRunner().invoke(cli, evaluate_args(tmp_path, pairs, synth / "lfw"))
    assert r.exit_code == 0, r.output


def test_images_stored_under_an_extension_not_read_are_named_so(tmp_path):
    rng = np.random.default_rng(0)
    for person in ("Ann_A", "Bob_B"):
        (tmp_path / "faces" / person).mkdir(parents=True)
        for j in (1, 2):
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
                tmp_path / "faces" / person / f"{person}_{j:04d}.tif")
    (tmp_path / "pairs.txt").write_text("1\nAnn_A\t1\t2\nAnn_A\t1\tBob_B\t2\n")
    r = CliRunner().invoke(cli, evaluate_args(tmp_path, tmp_path / "pairs.txt", tmp_path / "faces"))
    assert r.exit_code == 1
    assert f"{tmp_path / 'faces'} holds them as .tif, which is not read as an image" in one_line(r.output)


def test_describe_lfw_with_pairs_of_another_folder_says_where_they_are(synth):
    r = CliRunner().invoke(cli, ["datasets", "describe", "lfw", str(synth / "celeba"), "--pairs",
                                 str(synth / "lfw" / "pairs.txt")])
    assert r.exit_code == 1
    assert f"{synth / 'lfw'} holds them: give {synth / 'lfw'} as ROOT" in one_line(r.output)


def test_a_csv_naming_photos_labels_their_aligned_crops(tmp_path):
    """The evaluate stage's strata and attr-shift values read a CSV against aligned rows."""
    import pandas as pd

    from recognition.attribute_values import values_for

    photos = ["Ann_A/Ann_A_0001.jpg", "Ann_A/Ann_A_0002.jpg", "Bob_B/Bob_B_0001.jpg"]
    frame = pd.DataFrame({"path": [f"eval/{i:02d}/crop{i}.png" for i in range(3)],
                          "sample_id": [mf.sample_id("lfw", p) for p in photos], "source": "lfw"})
    csv = tmp_path / "a.csv"
    csv.write_text("image,attribute,value\nAnn_A/Ann_A_0001.png,Eyeglasses,1\nBob_B/Bob_B_0001.jpg,Eyeglasses,0\n")
    assert values_for(frame, "Eyeglasses", str(csv)).tolist() == [1, -1, 0]  # it used to be all -1
