"""The report's edit grids: eval_sagan picks the rows (wearers first, so the grid
shows the attribute drawn and taken away) and writes the images; the report
embeds those files, and says so when no eval_sagan ran."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import augment.workdir
from augment.config import PipelineConfig
from augment.data.celeba import CELEBA_ATTRIBUTES, attribute_index
from augment.data.errors import DatasetError
from augment.io import save_png
from augment.report.doc import png
from augment.report.stage import read_grids, run_stage
from augment.sagan.evaluate import grid_rows


def _rows(labels: list[int | None], split: str = "test") -> pd.DataFrame:
    i = attribute_index("Eyeglasses")
    attrs = []
    for v in labels:
        if v is None:
            attrs.append(None)
        else:
            a = [-1] * len(CELEBA_ATTRIBUTES)
            a[i] = 1 if v else -1
            attrs.append(a)
    return pd.DataFrame({"path": [f"{split}/{k}.png" for k in range(len(labels))], "split": split,
                         "attributes": attrs})


def test_half_with_half_without_the_attribute():
    df = pd.concat([_rows([0] * 30 + [1] * 5 + [None] * 5), _rows([1] * 10, "train")], ignore_index=True)
    pick = grid_rows(df, "Eyeglasses", 8)
    assert len(pick) == 8 and set(pick["split"]) == {"test"}
    wearers = [p for p in pick["path"] if 30 <= int(p.split("/")[1][:-4]) < 35]
    assert pick["path"].tolist()[:4] == wearers  # the 4 wearers first, then 4 without
    assert all(int(p.split("/")[1][:-4]) < 30 for p in pick["path"].tolist()[4:])


def test_fewer_wearers_than_half_and_no_labels():
    pick = grid_rows(_rows([0] * 20 + [1] * 2), "Eyeglasses", 8)
    assert len(pick) == 8 and sum(int(p.split("/")[1][:-4]) >= 20 for p in pick["path"]) == 2
    pick = grid_rows(_rows([None] * 20), "Eyeglasses", 6)  # nothing labelled: evenly spaced
    assert pick["path"].tolist() == [f"test/{k}.png" for k in (0, 3, 6, 9, 12, 15)]
    assert grid_rows(_rows([0, 1] * 4), "Eyeglasses", 0).empty  # report.grid_images 0: no grid


def _eval_sagan_dir(tmp_path, attributes=("Eyeglasses", "Bald")):
    """A folder as eval_sagan leaves it: grids/<attribute>.png and grids.json."""
    folder = tmp_path / "eval_sagan"
    rng = np.random.default_rng(0)
    pixels, entries = {}, []
    for a in attributes:
        pixels[a] = rng.integers(0, 256, (2 * 18 + 2, 4 * 18 + 2, 3), dtype=np.uint8)
        entries.append({"attribute": a, "file": f"grids/{a}.png", "rows": 2,
                        "sha256": save_png(pixels[a], folder / "grids" / f"{a}.png")})
    (folder / "grids.json").write_text(json.dumps(entries))
    return folder / "grids.json", pixels


def _report(tmp_path, monkeypatch, inputs):
    monkeypatch.setattr(augment.workdir, "states", lambda cfg: [])
    cfg = replace(PipelineConfig(), workdir=str(tmp_path / "work"))
    run_dir = tmp_path / "work" / "report"
    run_dir.mkdir(parents=True)
    run_stage(cfg, inputs, run_dir)
    return run_dir


def test_the_report_embeds_the_grids_eval_sagan_wrote(tmp_path, monkeypatch):
    index, pixels = _eval_sagan_dir(tmp_path)
    run_dir = _report(tmp_path, monkeypatch, {"sagan_grids": index})
    html, md = (run_dir / "report.html").read_text(), (run_dir / "report.md").read_text()
    assert html.index("edit grid Eyeglasses") < html.index("edit grid Bald")  # eval_sagan's order
    for a, want in pixels.items():
        b64 = base64.b64encode(png(Image.fromarray(want))).decode()
        assert f'<img alt="edit grid {a}" src="data:image/png;base64,{b64}">' in html
        assert f"![edit grid {a}](grid_{a}.png)" in md.split("\n## ", 2)[1]  # in the summary, the first section
        assert np.array_equal(np.asarray(Image.open(run_dir / f"grid_{a}.png")), want)  # the copy md links
    assert "not among this pipeline's stages" not in html


def test_without_eval_sagan_the_report_says_so(tmp_path, monkeypatch):
    run_dir = _report(tmp_path, monkeypatch, {})
    md = (run_dir / "report.md").read_text()
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0]  # the grids' place is in the summary
    assert "### The edits" in summary
    assert "No edit grids: eval_sagan, which draws them, is not among this pipeline's stages." in summary
    assert not list(run_dir.glob("grid_*.png"))


def test_a_grid_changed_or_outside_eval_sagans_folder_is_refused(tmp_path):
    index, pixels = _eval_sagan_dir(tmp_path)
    assert list(read_grids(index)) == ["Eyeglasses", "Bald"]
    save_png(255 - pixels["Bald"], index.parent / "grids" / "Bald.png")
    with pytest.raises(DatasetError, match="sha256 differs"):
        read_grids(index)
    entries = json.loads(index.read_text())
    entries[1]["file"] = "../elsewhere.png"
    index.write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match="outside"):
        read_grids(index)
