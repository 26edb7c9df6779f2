"""CelebA and LFW readers: official formats, partial copies, malformed lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from augment.cli import cli
from augment.data import celeba, lfw
from augment.data.errors import DatasetError

NAMES = " ".join(celeba.CELEBA_ATTRIBUTES)


def make_celeba(root: Path, n_images=6, attr_rows=None, partition=True, landmarks=True) -> Path:
    (root / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, n_images + 1)]
    for n in names:
        (root / "img_align_celeba" / n).write_bytes(b"x")
    (root / "identity_CelebA.txt").write_text("".join(f"{n} {10 + i // 2}\n" for i, n in enumerate(names)))
    rows = names if attr_rows is None else names[:attr_rows]
    body = "".join(f"{n}  " + "  ".join("1" if (i + j) % 3 == 0 else "-1" for j in range(40)) + "\n" for i, n in enumerate(rows))
    (root / "list_attr_celeba.txt").write_text(f"999999\n{NAMES} \n{body}")
    if partition:
        (root / "list_eval_partition.txt").write_text("".join(f"{n} {min(i // 2, 2)}\n" for i, n in enumerate(names)))
    if landmarks:
        head = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n"
        (root / "list_landmarks_align_celeba.txt").write_text(
            f"{len(names)}\n{head}" + "".join(f"{n} 69 109 106 113 77 142 73 152 108 154\n" for n in names)
        )
    return root


def test_celeba_full(tmp_path):
    data = celeba.load(make_celeba(tmp_path))
    f = data.frame
    assert len(f) == 6 and f["identity"].nunique() == 3
    assert list(f["split"]) == ["train", "train", "val", "val", "test", "test"]
    assert data.with_attributes == 6
    assert f["attributes"][0].dtype == np.int8 and set(np.unique(f["attributes"][0])) <= {-1, 1}
    np.testing.assert_array_equal(f["landmarks"][0][:2], [69, 109])


def test_celeba_partial_attributes_are_unknown_not_negative(tmp_path):
    data = celeba.load(make_celeba(tmp_path, attr_rows=2, partition=False, landmarks=False))
    assert data.with_attributes == 2
    assert data.frame["attributes"][3] is None
    # no partition file: an identity-disjoint split
    by_split = data.frame.groupby("split")["identity"].apply(set)
    for a in by_split.index:
        for b in by_split.index:
            if a != b:
                assert not (by_split[a] & by_split[b])


def test_celeba_missing_identity_file_names_path(tmp_path):
    make_celeba(tmp_path)
    (tmp_path / "identity_CelebA.txt").unlink()
    with pytest.raises(DatasetError, match="identity_CelebA.txt.*identity file"):
        celeba.load(tmp_path)


def test_celeba_missing_image_folder_names_both_options(tmp_path):
    tmp_path.joinpath("identity_CelebA.txt").write_text("")
    with pytest.raises(DatasetError, match="img_align_celeba.*img_celeba"):
        celeba.load(tmp_path)


def test_celeba_short_attribute_row_names_file_and_line(tmp_path):
    make_celeba(tmp_path)
    p = tmp_path / "list_attr_celeba.txt"
    lines = p.read_text().splitlines()
    lines[4] = lines[4].rsplit(" ", 3)[0]  # drop values from the third row
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"list_attr_celeba.txt:5: expected an image name and 40 values"):
        celeba.load(tmp_path)


def test_celeba_bad_value_and_bad_identity(tmp_path):
    make_celeba(tmp_path)
    p = tmp_path / "list_attr_celeba.txt"
    p.write_text(p.read_text().replace("000002.jpg  -1", "000002.jpg  7", 1))
    with pytest.raises(DatasetError, match=":4: values must be 1 or -1"):
        celeba.load(tmp_path)
    make_celeba(tmp_path / "b")
    q = tmp_path / "b" / "identity_CelebA.txt"
    q.write_text(q.read_text() + "000009.jpg x\n")
    with pytest.raises(DatasetError, match="identity_CelebA.txt:7"):
        celeba.load(tmp_path / "b")


def make_lfw(root: Path, people=("Ann_A", "Bob_B", "Cy_C"), per=3) -> Path:
    for p in people:
        (root / p).mkdir(parents=True)
        for i in range(1, per + 1):
            (root / p / f"{p}_{i:04d}.jpg").write_bytes(b"x")
    return root


def test_lfw_view2_folds(tmp_path):
    make_lfw(tmp_path / "lfw")
    lines = ["2\t2"]
    for _ in range(2):
        lines += ["Ann_A\t1\t2", "Bob_B\t1\t3", "Ann_A\t1\tBob_B\t2", "Bob_B\t3\tCy_C\t1"]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    pf = lfw.read_pairs(tmp_path / "pairs.txt")
    assert len(pf) == 8 and pf["fold"].nunique() == 2
    assert list(pf["same"][:4]) == [True, True, False, False]
    assert pf["path_a"][2] == "Ann_A/Ann_A_0001.jpg" and pf["path_b"][2] == "Bob_B/Bob_B_0002.jpg"
    lfw.check_pairs_exist(pf, tmp_path / "lfw")


def test_lfw_view1_and_missing_images(tmp_path):
    make_lfw(tmp_path / "lfw")
    (tmp_path / "dev.txt").write_text("1\nAnn_A 1 9\nAnn_A 1 Zed_Z 1\n")
    pf = lfw.read_pairs(tmp_path / "dev.txt")
    assert pf["fold"].nunique() == 1 and len(pf) == 2
    with pytest.raises(DatasetError, match="2 image\\(s\\) named by the pairs are missing.*Ann_A_0009"):
        lfw.check_pairs_exist(pf, tmp_path / "lfw")


def test_lfw_pairs_malformed(tmp_path):
    (tmp_path / "p.txt").write_text("1\nAnn_A 1\nAnn_A 1 Bob_B 1\n")
    with pytest.raises(DatasetError, match="p.txt:2: expected 'name i j'"):
        lfw.read_pairs(tmp_path / "p.txt")
    (tmp_path / "q.txt").write_text("2\t1\nAnn_A 1 2\nAnn_A 1 Bob_B 1\n")
    with pytest.raises(DatasetError, match="2 fold\\(s\\).*found 2 pair lines"):
        lfw.read_pairs(tmp_path / "q.txt")


def test_describe_cli(tmp_path):
    make_celeba(tmp_path / "c", attr_rows=4)
    r = CliRunner().invoke(cli, ["datasets", "describe", "celeba", str(tmp_path / "c"), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert (info["images"], info["identities"], info["with_attributes"]) == (6, 3, 4)


# ---- real data (skips when ../shared/data is absent) ----


def test_real_celeba_wild_sample(celeba_wild):
    r = CliRunner().invoke(cli, ["datasets", "describe", "celeba", str(celeba_wild), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert (info["images"], info["identities"], info["with_attributes"]) == (784, 40, 70)
    assert info["image_dir"] == "img_celeba"


def test_real_lfw_view1_pairs(lfw_sample):
    root = lfw_sample / "lfw-deepfunneled"
    r = CliRunner().invoke(
        cli, ["datasets", "describe", "lfw", str(root), "--pairs", str(lfw_sample / "pairsDevTest.txt"), "--json"]
    )
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    # The file's header N=500 means 500 same + 500 different pairs (LFW README, View 1).
    assert (info["pairs"], info["same"], info["different"], info["folds"]) == (1000, 500, 500, 1)
    assert info["images"] == 1549


def test_lfw_root_one_level_too_high_names_the_subfolder_with_the_images(tmp_path):
    """LFW's archive unpacks into lfw-deepfunneled/: given its parent, the error says so."""
    from augment.data import lfw

    person = tmp_path / "lfw-deepfunneled" / "Ann_Lee"
    person.mkdir(parents=True)
    (person / "Ann_Lee_0001.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"lfw-deepfunneled has them: give that folder"):
        lfw.load_tree(tmp_path)
    assert len(lfw.load_tree(tmp_path / "lfw-deepfunneled").frame) == 1
