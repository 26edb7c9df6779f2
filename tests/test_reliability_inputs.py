"""Hostile inputs through the whole front of the pipeline (``augment run``: read,
then align), not just through the decoder: awkward and broken image files,
non-ASCII names and spaces in every path, partial or malformed dataset files,
and bad pipeline YAML. Each one ends in aligned rows, reject rows with a reason,
or a one-line error naming the file, line or key, with the documented exit
status. Decoder-level cases live in test_images.py, parser-level ones in
test_readers.py and test_config.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from augment import manifest as mf
from augment.cli import cli
from augment.data import celeba
from augment.data.images import decode
from tests.image_files import flat_png

NAMES = " ".join(celeba.CELEBA_ATTRIBUTES)


def _face(h: int = 60, w: int = 50) -> np.ndarray:
    rng = np.random.default_rng(h * w)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)



def _good_files(d: Path) -> dict[str, str]:
    """Awkward but valid images: name -> what is awkward about it."""
    Image.fromarray(_face()).save(d / "000001_plain rgb.jpg", quality=90)
    rgba = np.dstack([_face(), np.full((60, 50), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(d / "000002_rgba.png")
    Image.fromarray(_face()[..., 0], "L").save(d / "000003_gris.png")
    Image.new("CMYK", (50, 60), (0, 255, 255, 0)).save(d / "000004_cmyk.jpg", quality=95)
    assert cv2.imwrite(str(d / "000005_16bit.png"), (_face()[..., 0].astype(np.uint16) * 257))
    im = Image.fromarray(_face(40, 70))
    exif = im.getexif()
    exif[0x0112] = 6  # displayed turned by 90 degrees
    im.save(d / "000006_exif_gedreht.jpg", exif=exif, quality=95)
    Image.fromarray(_face()).save(d / "000007_Ünïcødé 名前.png")
    return {"000001_plain rgb.jpg": "spaces", "000002_rgba.png": "RGBA", "000003_gris.png": "grayscale",
            "000004_cmyk.jpg": "CMYK", "000005_16bit.png": "16-bit", "000006_exif_gedreht.jpg": "EXIF-rotated",
            "000007_Ünïcødé 名前.png": "non-ASCII"}


def _bad_files(d: Path) -> dict[str, str]:
    """Broken images: name -> the reject reason expected."""
    Image.fromarray(_face()).save(d / "000008_truncated.jpg", quality=90)
    data = (d / "000008_truncated.jpg").read_bytes()
    (d / "000008_truncated.jpg").write_bytes(data[: len(data) // 2])
    (d / "000009_empty.jpg").write_bytes(b"")
    (d / "000010_text.jpg").write_text("name,identity\nnot,an image\n" * 10)
    flat_png(d / "000011_bomb.png", 12000, 12000)  # 144 Mpx > the 100 Mpx limit
    return {"000008_truncated.jpg": "unreadable", "000009_empty.jpg": "unreadable", "000010_text.jpg": "unreadable",
            "000011_bomb.png": "too_large"}


def _pipeline(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "pipé line.yaml"
    p.write_text(f"name: hostile\nworkdir: {tmp_path / 'wörk dir'}\ndevice: cpu\n{body}", encoding="utf-8")
    return p


def _run(p: Path, *args: str):
    return CliRunner().invoke(cli, ["run", str(p), *args])


# --------------------------------------------------------------------------- #
# Image files: read + align through `augment run`
# --------------------------------------------------------------------------- #


def test_awkward_and_broken_images_in_a_non_ascii_folder_tree(tmp_path):
    """A folder tree (``<identity>/<image>``) under a path with spaces and
    non-ASCII: valid images of every awkward kind are aligned and decode; broken
    ones become reject rows with the reason; the run goes on."""
    root = tmp_path / "données de test" / "visages ✓"
    person = root / "José Ñúñez"
    person.mkdir(parents=True)
    good = _good_files(person)
    bad = _bad_files(person)
    other = root / "Zoë"
    other.mkdir()
    Image.fromarray(_face()).save(other / "zoë 1.png")
    p = _pipeline(tmp_path, f"stages: [read, align]\ndata:\n  train: {{format: folder, root: '{root}', align: none}}\n"
                            "align: {workers: 1, size: 32}\n")
    r = _run(p)
    assert r.exit_code == 0, r.output
    work = tmp_path / "wörk dir"
    aligned = mf.read(work / "align" / "aligned.parquet", "images")
    rejects = mf.read(work / "align" / "rejects.parquet", "rejects")
    src = mf.read(work / "read" / "source.parquet", "images")
    assert len(src) == len(good) + len(bad) + 1
    got_rejects = {Path(p).name: reason for p, reason in zip(rejects.df["path"], rejects.df["reason"])}
    assert got_rejects == bad
    assert all(len(d) > 0 for d in rejects.df["detail"])
    bomb = rejects.df.loc[rejects.df["path"].str.endswith("bomb.png"), "detail"].item()
    assert "12000x12000" in bomb  # the reason says why
    assert len(aligned) == len(good) + 1 and aligned.df["sample_id"].is_unique
    src_names = dict(zip(src.df["sample_id"], src.df["path"]))
    assert {Path(src_names[s]).name for s in aligned.df["sample_id"]} == {*good, "zoë 1.png"}
    assert set(aligned.df["identity_name"]) == {"José Ñúñez", "Zoë"}
    for rel in aligned.df["path"]:
        img = decode(aligned.abspath(rel))
        assert img.pixels.shape == (32, 32, 3)


# --------------------------------------------------------------------------- #
# Dataset files: partial and malformed
# --------------------------------------------------------------------------- #


def _celeba(root: Path, n: int = 6) -> list[str]:
    (root / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for k, name in enumerate(names):
        Image.fromarray(_face(218, 178)).save(root / "img_align_celeba" / name)
    (root / "identity_CelebA.txt").write_text("".join(f"{nm} {k // 2 + 1}\n" for k, nm in enumerate(names)))
    body = "".join(f"{nm} " + " ".join("1" if (k + j) % 2 else "-1" for j in range(40)) + "\n"
                   for k, nm in enumerate(names))
    (root / "list_attr_celeba.txt").write_text(f"{n}\n{NAMES}\n{body}")
    return names


def test_identity_file_missing_rows_leaves_those_images_out_with_a_warning(tmp_path, caplog):
    root = tmp_path / "celeba"
    names = _celeba(root)
    ident = root / "identity_CelebA.txt"
    ident.write_text("".join(ln + "\n" for ln in ident.read_text().splitlines()[:4]))  # rows for 4 of 6
    p = _pipeline(tmp_path, f"stages: [read]\ndata:\n  train: {{format: celeba, root: '{root}'}}\n")
    with caplog.at_level(logging.WARNING, logger="augment"):
        r = _run(p)
    assert r.exit_code == 0, r.output
    src = mf.read(tmp_path / "wörk dir" / "read" / "source.parquet")
    assert sorted(Path(p).name for p in src.df["path"]) == names[:4]
    assert "2 image(s) in img_align_celeba have no row in identity_CelebA.txt" in caplog.text


def test_attribute_file_with_a_short_row_stops_the_run_naming_file_and_line(tmp_path):
    root = tmp_path / "celeba"
    _celeba(root)
    attr = root / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    lines[4] = " ".join(lines[4].split()[:-5])  # the third image's row lost its last 5 values
    attr.write_text("\n".join(lines) + "\n")
    p = _pipeline(tmp_path, f"stages: [read]\ndata:\n  train: {{format: celeba, root: '{root}'}}\n")
    r = _run(p)
    assert r.exit_code == 1, r.output
    assert "list_attr_celeba.txt:5:" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "wörk dir" / "read" / "source.parquet").exists()


def test_pairs_naming_missing_images_stop_the_run_naming_them(tmp_path):
    lfw = tmp_path / "lfw"
    for person in ("Ann_A", "Bob_B"):
        (lfw / person).mkdir(parents=True)
        for i in (1, 2):
            Image.fromarray(_face()).save(lfw / person / f"{person}_{i:04d}.jpg")
    (tmp_path / "pairs.txt").write_text("2\nAnn_A 1 2\nBob_B 1 7\nAnn_A 1 Bob_B 2\nAnn_A 3 Cyd_C 1\n")
    p = _pipeline(tmp_path, f"stages: [read]\ndata:\n  train: {{format: folder, root: '{lfw}'}}\n"
                            f"  eval: {{format: lfw, root: '{lfw}', pairs: '{tmp_path / 'pairs.txt'}'}}\n")
    r = _run(p)
    assert r.exit_code == 1, r.output
    assert "3 image(s) named by the pairs are missing" in r.output
    for name in ("Ann_A/Ann_A_0003.jpg", "Bob_B/Bob_B_0007.jpg", "Cyd_C/Cyd_C_0001.jpg"):
        assert name in r.output


# --------------------------------------------------------------------------- #
# Pipeline YAML: `augment run` exits 2 naming the file and the key
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("body,expect", [
    ("synth:\n  identites: 7\n", ["synth.identites", "did you mean 'synth.identities'"]),
    ("wrkdir: x\n", ["wrkdir", "did you mean 'workdir'"]),
    ("synth:\n  identities: many\n", ["synth.identities", "int"]),
    ("train_sagan:\n  steps: [1, 2]\n", ["train_sagan.steps"]),
    ("stages: [read]\ndata:\n  train: {format: celeba, root: /nonexistent/celeba}\n",
     ["data.train.root", "/nonexistent/celeba"]),
    ("seed: 1\nsynth: [\n", ["line", "not valid YAML"]),
], ids=["unknown-key", "unknown-top-level-key", "wrong-type", "list-for-int", "missing-path", "invalid-yaml"])
def test_bad_yaml_exits_2_naming_file_and_key(tmp_path, body, expect):
    p = tmp_path / "bad.yaml"
    p.write_text(body)
    r = _run(p)
    assert r.exit_code == 2, r.output
    assert "bad.yaml" in r.output and "Traceback" not in r.output
    for text in expect:
        assert text in r.output
    assert not (tmp_path / "runs").exists()


def test_bad_set_override_exits_2_naming_the_flag(tmp_path):
    p = _pipeline(tmp_path, "stages: [synth]\n")
    r = _run(p, "--set", "synth.size=big")
    assert r.exit_code == 2 and "synth.size" in r.output, r.output
