"""Photo folders (format: folder): flat, identity subfolders, identities CSV; their split; describe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from augment.cli import cli
from augment.config import DatasetConfig
from augment.data import folder
from augment.data.errors import DatasetError
from augment.data.read import load_dataset


def img(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)


def test_flat_folder_is_one_identity_per_photo(tmp_path):
    for n in ("b.jpg", "a.png", "c.jpeg"):
        img(tmp_path / n)
    (tmp_path / "notes.txt").write_text("not an image")
    f = folder.load(tmp_path)
    assert f.layout == "flat"
    assert f.frame["path"].tolist() == ["a.png", "b.jpg", "c.jpeg"]
    assert f.frame["identity"].tolist() == [0, 1, 2]
    assert f.frame["identity_name"].tolist() == ["a", "b", "c"]


def test_subfolders_are_identities(tmp_path):
    for p in ("ann/1.png", "ann/2.png", "bo/1.png"):
        img(tmp_path / p)
    f = folder.load(tmp_path)
    assert f.layout == "tree" and f.frame["identity_name"].tolist() == ["ann", "ann", "bo"]


def test_mixed_layout_is_an_error(tmp_path):
    img(tmp_path / "x.png")
    img(tmp_path / "ann" / "1.png")
    with pytest.raises(DatasetError, match="directly .* and in identity subfolders"):
        folder.load(tmp_path)


def test_identities_from_a_csv(tmp_path):
    for n in ("p1.png", "p2.png", "p3.png", "extra.png"):
        img(tmp_path / n)
    (tmp_path / "ids.csv").write_text("path,identity\np1.png,Ann\np2.png,Bo\np3.png,Ann\n")
    f = folder.load(tmp_path, "ids.csv")
    assert f.layout == "csv" and f.unlisted == 1
    assert dict(zip(f.frame["path"], f.frame["identity_name"])) == {"p1.png": "Ann", "p2.png": "Bo", "p3.png": "Ann"}
    assert f.frame.set_index("path")["identity"].to_dict() == {"p1.png": 0, "p2.png": 1, "p3.png": 0}
    (tmp_path / "ints.csv").write_text("path,identity\np1.png,17\np2.png,4\n")
    assert folder.load(tmp_path, str(tmp_path / "ints.csv")).frame["identity"].tolist() == [17, 4]
    (tmp_path / "bad.csv").write_text("path,identity\np1.png,Ann\ngone.png,Bo\n")
    with pytest.raises(DatasetError, match="missing .*gone.png"):
        folder.load(tmp_path, "bad.csv")
    (tmp_path / "nohead.csv").write_text("p1.png,Ann\n")
    with pytest.raises(DatasetError, match=r"nohead.csv:1: expected the header 'path,identity'"):
        folder.load(tmp_path, "nohead.csv")


def test_folder_training_split_is_all_train_unless_configured(tmp_path):
    for k in range(10):
        img(tmp_path / f"{k}.png")
    m, pairs = load_dataset(DatasetConfig(format="folder", root=str(tmp_path)), "train", None)
    assert pairs is None and set(m.df["split"]) == {"train"} and len(m) == 10
    m2, _ = load_dataset(DatasetConfig(format="folder", root=str(tmp_path), split="by_identity"), "train", None)
    assert m2.df["split"].value_counts().to_dict() == {"train": 8, "val": 1, "test": 1}
    ev, _ = load_dataset(DatasetConfig(format="folder", root=str(tmp_path)), "eval", None)
    assert set(ev.df["split"]) == {"test"}


def test_datasets_describe_folder(tmp_path):
    for k in range(3):
        img(tmp_path / f"{k}.png")
    r = CliRunner().invoke(cli, ["datasets", "describe", "folder", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["layout"] == "flat" and info["images"] == 3 and info["identities"] == 3
    assert info["splits"] == {"train": 3}
