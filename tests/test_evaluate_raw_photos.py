"""``augment evaluate --images FOLDER`` on raw photos: they are aligned as the
recognizers' training faces were (MTCNN + the recorded template and size), and
the output says so; aligned crops are used as they are."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from augment import checkpoint as ckpt
from augment import manifest as mf
from augment.cli import cli
from augment.config import TrainRecognitionConfig
from augment.data.errors import DatasetError
from recognition.raw_images import Alignment, looks_aligned, models_alignment
from recognition.sources import Model
from recognition.train import KIND, build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ALIGNMENT = {"template": "sagan", "size": 64}


def recognizer(folder: Path, name: str, alignment: dict | None = ALIGNMENT) -> Path:
    """A random-init recognizer checkpoint (tiny ResNet-18) with the metadata training writes."""
    rec_cfg = TrainRecognitionConfig(width=4, embedding_size=16, image_size=32)
    model = build_model(rec_cfg, num_classes=3)
    meta = {"kind": KIND, "name": name, "attributes": [], "backbone": "resnet18", "embedding_size": 16,
            "image_size": 32, "width": 4, "dropout": 0.0, "head": "softmax", "classes": 3}
    if alignment is not None:
        meta["alignment"] = alignment
    return ckpt.save(folder / name, {"backbone": model.backbone.state_dict()}, meta)


def view1_pairs(lfw_sample: Path, out: Path, n: int = 2) -> Path:
    """The first n same and n different pairs of the sample's View 1 test pairs."""
    lines = (lfw_sample / "pairsDevTest.txt").read_text().splitlines()
    total = int(lines[0])
    body = lines[1 : 1 + n] + lines[1 + total : 1 + total + n]
    out.write_text(f"{n}\n" + "\n".join(body) + "\n")
    return out


def test_raw_photos_are_aligned_like_the_training_faces(lfw_sample, tmp_path):
    base, aug = recognizer(tmp_path, "baseline"), recognizer(tmp_path, "+Eyeglasses")
    pairs = view1_pairs(lfw_sample, tmp_path / "pairs.txt")
    from augment.data.lfw import read_pairs

    frame = read_pairs(pairs)
    photos = len(set(frame["path_a"]) | set(frame["path_b"]))  # 7: one photo is in two pairs
    out = tmp_path / "eval"
    res = CliRunner().invoke(cli, [
        "evaluate", "--baseline", str(base), "--augmented", str(aug), "--pairs", str(pairs),
        "--images", str(lfw_sample / "lfw-deepfunneled"), "--out", str(out), "--bootstrap", "0",
        "--device", "cpu",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "raw photos (250x250), not 64x64 'sagan' crops" in res.output
    assert f"aligned {photos} with MTCNN" in res.output
    note = json.loads((out / "metrics.json").read_text())["images_aligned"]
    # only the photos the 4 pairs name are aligned, each to one 64 px face
    assert photos == 7 and note["images"] == photos
    assert note["aligned"] + note["centre_cropped"] == photos and note["rejects"] == 0
    aligned = mf.read(out / "aligned" / "aligned.parquet", "images")
    assert len(aligned) == photos and {int(w) for w in aligned.df["width"]} == {64}
    assert {p.split("/")[0] for p in aligned.df["path"]} == {"eval"}
    for f in aligned.df["path"][:2]:
        assert Image.open(out / "aligned" / f).size == (64, 64)

    # --align never: the same photos scored as they are, and nothing said about aligning
    res = CliRunner().invoke(cli, [
        "evaluate", "--baseline", str(base), "--pairs", str(pairs), "--images", str(lfw_sample / "lfw-deepfunneled"),
        "--out", str(tmp_path / "never"), "--bootstrap", "0", "--device", "cpu", "--align", "never",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "raw photos" not in res.output
    assert "images_aligned" not in json.loads((tmp_path / "never" / "metrics.json").read_text())


def test_crops_of_the_training_size_are_used_as_they_are(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["1"]
    for person in ("Ann_A", "Bob_B"):
        (tmp_path / "faces" / person).mkdir(parents=True)
        for j in (1, 2):
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
                tmp_path / "faces" / person / f"{person}_{j:04d}.jpg")
    lines += ["Ann_A\t1\t2", "Ann_A\t1\tBob_B\t2"]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    base = recognizer(tmp_path, "baseline")
    res = CliRunner().invoke(cli, [
        "evaluate", "--baseline", str(base), "--pairs", str(tmp_path / "pairs.txt"),
        "--images", str(tmp_path / "faces"), "--out", str(tmp_path / "out"), "--bootstrap", "0", "--device", "cpu",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "raw photos" not in res.output and not (tmp_path / "out" / "aligned").exists()
    # --align always with no recorded alignment: a clear error, exit 2
    old = recognizer(tmp_path / "old", "baseline", alignment=None)
    res = CliRunner().invoke(cli, [
        "evaluate", "--baseline", str(old), "--pairs", str(tmp_path / "pairs.txt"),
        "--images", str(tmp_path / "faces"), "--out", str(tmp_path / "out2"), "--align", "always",
    ])  # fmt: skip
    assert res.exit_code == 2 and "record no alignment" in res.output


def test_looks_aligned_and_disagreeing_models(tmp_path):
    for i, size in enumerate([(64, 64), (64, 64), (80, 64)]):
        Image.new("RGB", size).save(tmp_path / f"{i}.png")
    files = [str(tmp_path / f"{i}.png") for i in range(3)]
    assert looks_aligned(files[:2], 64) == (True, "64x64")
    assert looks_aligned(files, 64) == (False, "64x64, 80x64")
    a = Model("a", checkpoint=tmp_path, alignment=Alignment("sagan", 64, "a/meta.json"))
    b = Model("b", checkpoint=tmp_path, alignment=Alignment("arcface", 64, "b/meta.json"))
    assert models_alignment([a, Model("c", table=tmp_path)]) == a.alignment
    with pytest.raises(DatasetError, match="aligned differently"):
        models_alignment([a, b])
