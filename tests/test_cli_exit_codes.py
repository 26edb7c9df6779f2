"""A command that produced nothing it was asked for exits 1, saying why per input:
``align`` where no image gave a face, ``export`` of manifests without a row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from augment import manifest as mf
from augment.cli import cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def faceless(root: Path) -> Path:
    """Two flat grey photos (no face) and one file that is not an image, in <identity>/ folders."""
    for i in range(2):
        (root / f"p{i}").mkdir(parents=True)
        Image.fromarray(np.full((80, 80, 3), 120 + 20 * i, np.uint8)).save(root / f"p{i}" / f"img{i}.jpg")
    (root / "p0" / "broken.jpg").write_bytes(b"not an image")
    return root


def test_align_where_no_face_is_found_exits_1_naming_each_skipped_image(tmp_path):
    out = tmp_path / "aligned"
    r = CliRunner().invoke(cli, ["align", str(faceless(tmp_path / "photos")), "--out", str(out), "--workers", "1",
                                 "--device", "cpu"])
    assert r.exit_code == 1, r.output  # it exited 0 with an empty aligned.parquet
    for line in ("skipped: p0/broken.jpg: unreadable", "skipped: p0/img0.jpg: no_face",
                 "skipped: p1/img1.jpg: no_face"):
        assert line in r.output
    assert "nothing aligned: none of the 3 image(s)" in r.output and "--min-prob" in r.output
    assert (out / "rejects.parquet").is_file()  # the reasons stay on disk too


def test_align_for_evaluation_exits_1_only_when_no_image_could_be_read(tmp_path):
    photos = tmp_path / "photos"
    (photos / "p0").mkdir(parents=True)
    (photos / "p0" / "a.jpg").write_bytes(b"not an image")
    r = CliRunner().invoke(cli, ["align", str(photos), "--out", str(tmp_path / "a"), "--role", "eval",
                                 "--workers", "1", "--device", "cpu"])
    assert r.exit_code == 1 and "skipped: p0/a.jpg: unreadable" in r.output
    # one readable photo without a face: centre-cropped for evaluation, a result (exit 0)
    Image.fromarray(np.full((80, 80, 3), 128, np.uint8)).save(photos / "p0" / "b.jpg")
    r = CliRunner().invoke(cli, ["align", str(photos), "--out", str(tmp_path / "b"), "--role", "eval",
                                 "--workers", "1", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "1 centre-cropped without a face" in r.output


def manifest(tmp_path: Path, name: str, rows: int) -> Path:
    """An images manifest of ``rows`` tiny PNGs of two people."""
    root = tmp_path / name
    entries = []
    for i in range(rows):
        rel = f"{i % 2}/{i}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / rel)
        entries.append({"sample_id": mf.sample_id("folder", rel), "path": rel, "identity": i % 2,
                        "identity_name": f"id{i % 2}", "split": "train", "source": "folder"})
    return mf.write(mf.Manifest("images", mf.frame("images", entries), root), root / "images.parquet")


def test_export_of_manifests_without_a_row_exits_1_naming_each_and_writes_nothing(tmp_path):
    empty_a, empty_b = manifest(tmp_path, "a", 0), manifest(tmp_path, "b", 0)
    out = tmp_path / "set"
    r = CliRunner().invoke(cli, ["export", str(empty_a), str(empty_b), "--format", "csv", "--out", str(out)])
    assert r.exit_code == 1, r.output  # it exited 0: "exported 0 image(s)", an empty list and labels.csv
    assert "nothing to export" in r.output
    assert f"{empty_a}: 0 rows" in r.output and f"{empty_b}: 0 rows" in r.output
    assert not out.exists()
    # an empty manifest beside one with rows: those rows are exported
    r = CliRunner().invoke(cli, ["export", str(empty_a), str(manifest(tmp_path, "c", 4)), "--format", "csv",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "exported 4 image(s)" in r.output
