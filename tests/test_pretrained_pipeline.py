"""pipelines/pretrain.yaml, shrunken (one attribute, 1,000 images, a few steps), on the
real celeba-aligned-10k: two runs with the same seed and thread count train the same
weights, and ``ship`` turns a run into shipped files that load (slow: about a minute
a run on 2 shared cores; skipped without ../shared/data)."""

from __future__ import annotations

import json

import pytest

from augment import manifest as mf
from augment import pretrained, trained
from augment.pipeline import run_pipeline
from augment.validate import load_config
from tests.conftest import REPO

IMAGES = 1000


def shrunken(workdir, root) -> list[str]:
    return [
        f"workdir={workdir}", "device=cpu", f"data.train.root={root}", f"data.train.max_images={IMAGES}",
        "train_classifier.attributes=Eyeglasses", "train_classifier.steps=20", "train_classifier.threads=1",
        "train_sagan.attributes=Eyeglasses", "train_sagan.steps=6", "train_sagan.per_attribute.Eyeglasses.steps=6",
        "train_sagan.checkpoint_every=3",
        "train_sagan.sample_every=3", "train_sagan.log_every=3", "train_sagan.threads=1",
        "eval_sagan.max_images=16", "report.grid_images=2",
    ]  # fmt: skip


@pytest.mark.slow
def test_pretrain_pipeline_is_reproducible_and_ships(celeba_aligned_10k, tmp_path, monkeypatch):
    weights = []
    for name in ("a", "b"):
        cfg = load_config(REPO / "pipelines" / "pretrain.yaml", shrunken(tmp_path / name, celeba_aligned_10k))
        assert set(run_pipeline(cfg).values()) == {"ran"}
        gens = mf.read(tmp_path / name / "train_sagan" / "generators.parquet", "generators")
        assert gens.df["attribute"].tolist() == ["Eyeglasses"] and int(gens.df["image_size"].iloc[0]) == 64
        weights.append((gens.root / gens.df["path"].iloc[0] / "weights.safetensors").read_bytes())
    assert weights[0] == weights[1]  # same seed, same threads: the same bytes

    shipped = tmp_path / "shipped"
    monkeypatch.setenv(pretrained.ENV, str(shipped))
    trained.ship(tmp_path / "a")
    meta = json.loads((shipped / "Eyeglasses.json").read_text())
    assert meta["align"] == {"template": "sagan", "size": 64} and meta["step"] == 6
    assert meta["training"]["people"] > 0 and meta["training"]["dataset"]["name"] == "celeba-aligned-10k"
    assert meta["training"]["cpu_hours"] > 0 and meta["quality"]["split"] == "test"
    assert set(meta["quality"]) >= {"add", "remove", "edit_success"}
    gens = trained.shipped()
    G, _ = trained.load_generator(gens, gens.df.iloc[0])
    assert G.cfg.image_size == 64 and gens.df["step"].tolist() == [6]
