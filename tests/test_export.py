"""export (imagefolder / lst / csv) and inspect on a small hand-made manifest."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from augment import manifest as mf
from augment.cli import cli
from augment.export import ExportError, check_paths_inside


def make_manifest(tmp_path: Path, n: int = 6) -> Path:
    root = tmp_path / "run"
    rows = []
    for i in range(n):
        rel = f"shard0/{i}.png"
        (root / "shard0").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), i * 10, np.uint8)).save(root / rel)
        edit = i % 2 == 1
        rows.append({
            "sample_id": mf.sample_id("t", rel), "path": rel, "identity": 100 + i // 2, "identity_name": f"p{i // 2}",
            "split": "train", "source": "sagan" if edit else "synthfaces",
            "attribute": "Eyeglasses" if edit else None, "target_value": (i // 2) % 2 if edit else None,
            "attr_prob": 0.1 * i if edit else None, "mask_area": 0.05 * i if edit else None,
        })
    return mf.write(mf.Manifest("images", mf.frame("images", rows), root,
                                {"extra": {"dropped": {"min_attr_prob": 2}}}), root / "edits.parquet")


def test_imagefolder_has_one_folder_per_identity_with_every_row(tmp_path):
    path = make_manifest(tmp_path)
    r = CliRunner().invoke(cli, ["export", str(path), "--format", "imagefolder", "--out", str(tmp_path / "if")])
    assert r.exit_code == 0, r.output
    folders = sorted(p.name for p in (tmp_path / "if").iterdir() if p.is_dir())
    assert folders == ["p0", "p1", "p2"]  # identity names, not ids padded to the largest one
    files = sorted(p.name for p in (tmp_path / "if").rglob("*.png"))
    m = mf.read(path)
    assert files == sorted(f"{s}.png" for s in m.df["sample_id"])
    # bytes identical to the source
    for sid, rel, name in zip(m.df["sample_id"], m.df["path"], m.df["identity_name"]):
        assert (tmp_path / "if" / name / f"{sid}.png").read_bytes() == (m.root / rel).read_bytes()


def test_lst_parses_with_contiguous_labels(tmp_path):
    path = make_manifest(tmp_path)
    r = CliRunner().invoke(cli, ["export", str(path), "--format", "lst", "--out", str(tmp_path / "lst")])
    assert r.exit_code == 0, r.output
    lines = (tmp_path / "lst" / "edits.lst").read_text().splitlines()
    assert len(lines) == 6
    labels = set()
    for k, line in enumerate(lines):
        idx, label, src = line.split("\t")
        assert int(idx) == k and Path(src).is_absolute() and Path(src).is_file()
        labels.add(int(label))
    assert labels == {0, 1, 2}
    with open(tmp_path / "lst" / "labels.csv") as fh:
        assert list(csv.DictReader(fh))[0] == {"label": "0", "identity": "100", "identity_name": "p0", "folder": "p0"}


def test_csv_has_every_column(tmp_path):
    path = make_manifest(tmp_path)
    r = CliRunner().invoke(cli, ["export", str(path), "--format", "csv", "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    with open(tmp_path / "c" / "edits.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and set(mf.IMAGES.names) <= set(rows[0])
    assert all(Path(r["abspath"]).is_file() for r in rows)


@pytest.mark.parametrize("bad", ["../outside.png", "/etc/passwd", "a/../../b.png"])
def test_export_refuses_paths_that_escape_the_root(tmp_path, bad):
    path = make_manifest(tmp_path, 2)
    m = mf.read(path)
    m.df.loc[0, "path"] = bad
    with pytest.raises(ExportError, match="escapes the manifest root"):
        check_paths_inside(m)
    mf.write(m, path)
    r = CliRunner().invoke(cli, ["export", str(path), "--format", "imagefolder", "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "escapes the manifest root" in r.output
    check_paths_inside(m, allow_outside=True)  # explicit opt-in


def test_inspect_counts_attributes_and_drops(tmp_path):
    path = make_manifest(tmp_path)
    r = CliRunner().invoke(cli, ["inspect", str(path)])
    assert r.exit_code == 0, r.output
    assert "rows         6" in r.output and "identities   3" in r.output
    assert "Eyeglasses" in r.output and "min_attr_prob: 2" in r.output
    import re

    counts = [int(n) for n in re.findall(r"attr_prob \[Eyeglasses -> \d\] \(n=(\d+)", r.output)]
    assert sum(counts) == 3, r.output  # one histogram per target value, the edits' 3 scores in all


def test_export_split_keeps_only_that_split_and_name_is_refused_for_imagefolder(tmp_path):
    path = make_manifest(tmp_path)
    m = mf.read(path)
    m.df.loc[m.df.index[:2], "split"] = "test"  # the first person is a test person
    mf.write(m, path)
    r = CliRunner().invoke(cli, ["export", str(path), "--format", "csv", "--split", "train", "--out",
                                 str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert "exported 4 image(s) of 2 identities" in r.output and "split(s) train" in r.output
    import pandas as pd

    rows = pd.read_csv(next((tmp_path / "c").glob("*.csv")))
    assert len(rows) == 4
    r = CliRunner().invoke(cli, ["export", str(path), "--format", "csv", "--split", "val", "--out", str(tmp_path / "v")])
    assert r.exit_code == 2 and "no row" in r.output and "test, train" in r.output
    r = CliRunner().invoke(cli, ["export", str(path), "--format", "imagefolder", "--name", "x", "--out",
                                 str(tmp_path / "i")])
    assert r.exit_code == 2 and "--name" in r.output and not (tmp_path / "i").exists()
    r = CliRunner().invoke(cli, ["export", str(path), "--format", "imagefolder", "--json", "--out", str(tmp_path / "j")])
    import json

    assert r.exit_code == 0 and json.loads(r.output)["rows"] == 6
