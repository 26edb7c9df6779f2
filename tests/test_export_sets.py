"""Exports that merge into correct training sets: stable labels, several manifests, refusals."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from augment import manifest as mf
from augment.cli import cli


def manifest(root: Path, name: str, identities: list[int], names: dict[int, str] | None = None,
             size: int = 8) -> Path:
    """An images manifest ``root/name.parquet``: one small PNG per entry of ``identities``."""
    rows = []
    for k, ident in enumerate(identities):
        rel = f"{name}/{k}.png"
        (root / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((size, size, 3), (k * 37) % 255, np.uint8)).save(root / rel)
        rows.append({"sample_id": mf.sample_id(name, rel), "path": rel, "identity": ident,
                     "identity_name": (names or {}).get(ident, str(ident)), "split": "train", "source": name,
                     "width": size, "height": size})
    return mf.write(mf.Manifest("images", mf.frame("images", rows), root), root / f"{name}.parquet")


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def labels_of(lst: Path, label_col: int, path_col: int) -> dict[str, int]:
    out = {}
    for line in lst.read_text().splitlines():
        cols = line.split("\t")
        out[cols[path_col]] = int(cols[label_col])
    return out


def identity_by_path(*manifests: Path) -> dict[str, int]:
    out = {}
    for p in manifests:
        m = mf.read(p)
        for rel, ident in zip(m.df["path"], m.df["identity"]):
            out[str((m.root / rel).resolve())] = int(ident)
    return out


def test_two_lst_exports_into_one_folder_give_one_label_per_identity(tmp_path):
    a = manifest(tmp_path, "a", [7, 7, 12, 40])
    b = manifest(tmp_path, "b", [40, 3, 7, 10000])  # other identities too, and a larger id
    out = tmp_path / "set"
    r1 = run("export", a, "--format", "lst", "--out", out)
    assert r1.exit_code == 0, r1.output
    refused = run("export", b, "--format", "lst", "--out", out)
    assert refused.exit_code == 2 and "not empty" in refused.output and "--append" in refused.output
    r2 = run("export", b, "--format", "lst", "--out", out, "--append")
    assert r2.exit_code == 0, r2.output
    ident = identity_by_path(a, b)
    label_of_identity: dict[int, set[int]] = {}
    for lst in ("a.lst", "b.lst"):
        for path, label in labels_of(out / lst, 1, 2).items():
            label_of_identity.setdefault(ident[path], set()).add(label)
    assert {i: len(v) for i, v in label_of_identity.items()} == {3: 1, 7: 1, 12: 1, 40: 1, 10000: 1}
    assert len({next(iter(v)) for v in label_of_identity.values()}) == 5  # different people, different labels
    with open(out / "labels.csv") as fh:
        assert [int(r["identity"]) for r in csv.DictReader(fh)] == [7, 12, 40, 3, 10000]  # first export first


def test_imagefolder_of_two_manifests_is_one_training_set(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    aligned = manifest(tmp_path, "aligned", [1, 1, 2, 3], {1: "Ann", 2: "Bo", 3: "Cy"})
    edits = manifest(tmp_path, "edits", [1, 2, 2, 3, 3, 3], {1: "Ann", 2: "Bo", 3: "Cy"})
    out = tmp_path / "set"
    r = run("export", aligned, edits, "--format", "imagefolder", "--out", out)
    assert r.exit_code == 0, r.output
    ds = torchvision.datasets.ImageFolder(str(out))
    assert ds.classes == ["Ann", "Bo", "Cy"]
    assert len(ds.samples) == 4 + 6
    per_class = np.bincount([t for _, t in ds.samples])
    assert per_class.tolist() == [3, 3, 4]


def test_class_folders_do_not_depend_on_the_largest_id(tmp_path):
    small = manifest(tmp_path, "small", [7, 8])
    big = manifest(tmp_path, "big", [7, 123456])
    out = tmp_path / "set"
    assert run("export", small, "--format", "imagefolder", "--out", out).exit_code == 0
    r = run("export", big, "--format", "imagefolder", "--out", out, "--append")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["123456", "7", "8"]
    assert len(list((out / "7").iterdir())) == 2


def test_insightface_list_has_its_readers_column_order_grouped_by_label(tmp_path):
    m = manifest(tmp_path, "m", [5, 9, 5, 9, 2], size=12)
    out = tmp_path / "if"
    r = run("export", m, "--format", "insightface", "--out", out)
    assert r.exit_code == 0, r.output
    lines = [ln.split("\t") for ln in (out / "m.lst").read_text().splitlines()]
    assert all(len(c) == 3 and c[0] == "1" and Path(c[1]).is_file() for c in lines)  # aligned, path, label
    labels = [int(c[2]) for c in lines]
    assert labels == sorted(labels)  # one run per label: face2rec2.read_list makes identity ranges of runs
    ident = identity_by_path(m)
    assert {ident[c[1]]: int(c[2]) for c in lines} == {2: 0, 5: 1, 9: 2}  # new identities in id order
    assert (out / "property").read_text().strip() == "3,12,12"


def test_missing_images_fail_naming_the_paths(tmp_path):
    m = manifest(tmp_path, "m", [1, 2, 3])
    (tmp_path / "m" / "1.png").unlink()
    for fmt in ("lst", "csv", "insightface", "imagefolder"):
        r = run("export", m, "--format", fmt, "--out", tmp_path / fmt)
        assert r.exit_code == 1 and "missing" in r.output and "1.png" in r.output, (fmt, r.output)
        assert not (tmp_path / fmt).exists()


def test_given_label_map_is_used_and_must_cover_every_identity(tmp_path):
    m = manifest(tmp_path, "m", [4, 6])
    fixed = tmp_path / "labels_in.csv"
    fixed.write_text("label,identity\n10,6\n11,4\n")
    r = run("export", m, "--format", "lst", "--out", tmp_path / "a", "--labels", fixed)
    assert r.exit_code == 0, r.output
    ident = identity_by_path(m)
    assert {ident[p]: lab for p, lab in labels_of(tmp_path / "a" / "m.lst", 1, 2).items()} == {4: 11, 6: 10}
    fixed.write_text("label,identity\n0,4\n")
    r = run("export", m, "--format", "lst", "--out", tmp_path / "b", "--labels", fixed)
    assert r.exit_code == 2 and "not in the given label map" in r.output and "6" in r.output


def test_append_refuses_another_sets_identities_and_an_overwrite(tmp_path):
    a = manifest(tmp_path, "a", [1], {1: "Ann"})
    b = manifest(tmp_path, "b", [1], {1: "Zed"})
    out = tmp_path / "set"
    assert run("export", a, "--format", "lst", "--out", out).exit_code == 0
    r = run("export", b, "--format", "lst", "--out", out, "--append")
    assert r.exit_code == 2 and "'Zed'" in r.output and "'Ann'" in r.output
    r = run("export", a, "--format", "lst", "--out", out, "--append")  # a.lst exists
    assert r.exit_code == 2 and "never overwrites" in r.output
    other = tmp_path / "other"
    (other / "x").mkdir(parents=True)
    r = run("export", a, "--format", "lst", "--out", other, "--append")
    assert r.exit_code == 2 and "labels.csv" in r.output
