"""A run folder moves as a whole: a copy reads its own files, never the original's."""

from __future__ import annotations

import shutil
from pathlib import Path

from augment import manifest as mf
from augment.pipeline import run_pipeline
from augment.validate import load_config
from augment.workdir import states

REPO = Path(__file__).resolve().parents[1]


def test_a_copied_run_is_done_and_resolves_inside_the_copy_after_the_original_is_deleted(tmp_path):
    original, copy = tmp_path / "original", tmp_path / "copy"
    sets = ["stages=synth,read,align", f"workdir={original}", "align.workers=1"]
    run_pipeline(load_config(REPO / "pipelines" / "smoke.yaml", sets))
    shutil.copytree(original, copy)
    shutil.rmtree(original)
    cfg = load_config(REPO / "pipelines" / "smoke.yaml", [*sets[:1], f"workdir={copy}", *sets[2:]])
    assert [s for _, s, _ in states(cfg)] == ["done", "done", "done"]
    manifests = sorted(copy.rglob("*.parquet"))
    assert len(manifests) >= 5
    for path in manifests:
        if path.parent.name == "parts":
            continue
        m = mf.read(path)
        assert copy in m.root.resolve().parents or m.root.resolve() == copy, (path, m.root)
        column = {"pairs": "path_a", "groundtruth": "image"}.get(m.kind, "path")
        if m.kind in ("images", "pairs", "groundtruth") and len(m):
            first = m.abspath(m.df[column].iloc[0]) if column == "path" else m.root / m.df[column].iloc[0]
            assert first.is_file(), (path, first)
