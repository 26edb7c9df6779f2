"""Pipelines that edit new photos with generators (and a classifier) trained earlier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augment import manifest as mf
from augment import trained
from augment.config import ConfigError
from augment.validate import load_config
from augment.pipeline import run_pipeline
from augment.workdir import states
from tests.generator_files import save_generator


def photos(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(n):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"img{k}.png")
    return folder


def pipeline(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(f"name: reuse\nworkdir: {tmp_path / 'work'}\ndevice: cpu\n" + body)
    return p


BODY = """stages: [read, align, edit]
data:
  train: {{format: folder, root: {root}, align: none}}
align: {{template: arcface, size: 32, workers: 1}}
edit: {{generators: {gen}, directions: both, batch_size: 4}}
"""


def test_read_align_edit_runs_without_training_stages(tmp_path):
    gen = save_generator(tmp_path / "gen" / "generator")
    root = photos(tmp_path / "new", 5)
    cfg = load_config(pipeline(tmp_path, BODY.format(root=root, gen=tmp_path / "gen")))
    assert run_pipeline(cfg) == {"read": "ran", "align": "ran", "edit": "ran"}
    edits = mf.read(Path(cfg.workdir) / "edit" / "edits.parquet")
    assert len(edits) == 5 * 2 and set(edits.df["target_value"]) == {0, 1}
    assert set(edits.df["generator_id"]) == {trained.resolve(gen, "generators").df["generator_id"].iloc[0]}
    assert [s for _, s, _ in states(cfg)] == ["done"] * 3
    assert not (Path(cfg.workdir) / "train_sagan").exists()


def test_generator_aligned_otherwise_is_refused_naming_both(tmp_path):
    save_generator(tmp_path / "gen" / "generator")  # arcface at 32 px
    root = photos(tmp_path / "new", 2)
    body = BODY.format(root=root, gen=tmp_path / "gen").replace("size: 32", "size: 48")
    with pytest.raises(ConfigError, match=r"template 'arcface' at 32 px.*template 'arcface' at 48 px"):
        load_config(pipeline(tmp_path, body))


def test_edit_needs_one_source_of_generators(tmp_path):
    root = photos(tmp_path / "new", 1)
    body = BODY.format(root=root, gen="''")
    with pytest.raises(ConfigError, match="add 'train_sagan' to 'stages' or set 'edit.generators'"):
        load_config(pipeline(tmp_path, body))
    save_generator(tmp_path / "gen" / "generator")
    both = BODY.format(root=root, gen=tmp_path / "gen").replace("[read, align, edit]",
                                                                "[read, align, train_sagan, edit]")
    with pytest.raises(ConfigError, match="'edit.generators' is set, but 'train_sagan' is in 'stages'"):
        load_config(pipeline(tmp_path, both))


def test_resolve_finds_models_in_runs_stage_folders_manifests_and_checkpoints(tmp_path):
    gen = save_generator(tmp_path / "run" / "train_sagan" / "Eyeglasses" / "generator")
    from_ckpt = trained.resolve(gen, "generators")
    assert from_ckpt.df["attribute"].tolist() == ["Eyeglasses"] and (from_ckpt.root / from_ckpt.df["path"][0]) == gen
    stage = tmp_path / "run" / "train_sagan"
    mf.write(mf.Manifest("generators", from_ckpt.df.assign(path="Eyeglasses/generator"), stage),
             stage / "generators.parquet")
    for p in (tmp_path / "run", stage, stage / "generators.parquet", gen.parent):
        m = trained.resolve(p, "generators")
        assert (m.root / m.df["path"].iloc[0]).resolve() == gen.resolve(), p
        assert trained.alignment(m, m.df.iloc[0]) == {"template": "arcface", "size": 32}
    with pytest.raises(ConfigError, match="holds no classifiers.parquet"):
        trained.resolve(tmp_path / "run", "classifiers")


def test_train_sagan_records_the_alignment_in_the_generator_export(tmp_path):
    from augment import checkpoint as ckpt
    from augment.sagan.generators import export_generator
    from augment.align.dataset import alignment_of as training_alignment

    aligned = mf.Manifest("images", mf.frame("images", []), tmp_path,
                          {"extra": {"template": "sagan", "size": 128, "modes": {}}})
    align = training_alignment(aligned)
    assert align == {"template": "sagan", "size": 128}
    assert training_alignment(mf.Manifest("images", mf.frame("images", []), tmp_path)) is None
    full = save_generator(tmp_path / "step_0000001", align=None)  # stands for a full training checkpoint
    out = export_generator(full, tmp_path / "generator", align)
    assert ckpt.read_meta(out)["align"] == align
    m = trained.resolve(out, "generators")
    assert trained.alignment(m, m.df.iloc[0]) == align
