"""Shipped generators (augment/pretrained/): shipping a run's, listing them, ``augment
edit`` without --generators, ``edit.generators: pretrained`` in a pipeline.

The shipped folder is a tmp dir (``AUGMENT_PRETRAINED``); the generator is the
tests' tiny random one (tests/generator_files.py), shipped from a fake finished
run that has what ``ship`` reads: generators.parquet, eval_sagan's metrics.json,
the training log and config.yaml.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from augment import checkpoint as ckpt
from augment import manifest as mf
from augment import pretrained, trained
from augment.cli import cli
from augment.config import ConfigError
from augment.pipeline import run_pipeline
from augment.sagan.generators import load_generator as load_checkpoint
from augment.validate import load_config
from augment.workdir import Runner
from tests.generator_files import save_generator
from tests.test_photo_edit import fake_detector, photo  # noqa: F401 (a fixture, and a photo maker)

QUALITY = {"generator_id": None, "split": "test", "images": 6, "edit_success": 0.5, "classifier_accuracy": 0.9,
           "id_kept": 0.83, "mask_area": 0.2, "psnr_vs_truth": 20.0,
           "add": {"images": 2, "edit_success": 0.75, "id_kept": 1.0}, "remove": {"images": 4, "edit_success": 0.25}}


def finished_run(root: Path, seed: int = 0) -> Path:
    """A run folder as train_sagan and eval_sagan leave it, with one Eyeglasses generator."""
    gen = save_generator(root / "train_sagan" / "Eyeglasses" / "generator", seed=seed)
    df = trained.resolve(gen, "generators").df.assign(path="Eyeglasses/generator", train_images=40, train_positive=9)
    mf.write(mf.Manifest("generators", df, root / "train_sagan"), root / "train_sagan" / "generators.parquet")
    log = [{"step": 10, "step_cpu_s": 0.36, "step_time_s": 0.2}, {"step": 30, "step_cpu_s": 0.18, "step_time_s": 0.1}]
    (gen.parent / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    (root / "eval_sagan").mkdir()
    q = {**QUALITY, "generator_id": df["generator_id"].iloc[0]}
    (root / "eval_sagan" / "metrics.json").write_text(json.dumps({"Eyeglasses": q}))
    (root / "config.yaml").write_text("name: pretrain\ndevice: cpu\ndata:\n  train: {format: celeba, root: "
                                      "../shared/data/celeba-aligned-10k, split: by_identity, align: prealigned}\n"
                                      "train_sagan: {threads: 1}\n")
    return root


@pytest.fixture
def shipped_dir(tmp_path, monkeypatch) -> Path:
    """An empty shipped folder, used in place of the package's."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    monkeypatch.setenv(pretrained.ENV, str(folder))
    return folder


@pytest.fixture
def shipped(tmp_path, shipped_dir) -> Path:
    """The shipped folder holding the Eyeglasses generator of ``finished_run``."""
    trained.ship(finished_run(tmp_path / "run"))
    return shipped_dir


def test_ship_writes_float16_weights_that_load_and_the_run_s_figures(tmp_path, shipped):
    from safetensors import safe_open

    weights, meta_file = shipped / "Eyeglasses.safetensors", shipped / "Eyeglasses.json"
    assert sorted(p.name for p in shipped.iterdir()) == [meta_file.name, weights.name]
    with safe_open(str(weights), framework="pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert torch.float16 in dtypes and torch.float32 not in dtypes
    meta = json.loads(meta_file.read_text())
    assert meta["weights_sha256"] == mf.file_digest(weights) and meta["dtype"] == "float16"
    assert weights.stat().st_mode & 0o444 == 0o444  # readable by all, as package data
    assert meta["align"] == {"template": "arcface", "size": 32} and meta["kind"] == "sagan_generator"
    assert meta["quality"]["add"] == {"images": 2, "edit_success": 0.75, "id_kept": 1.0}
    assert meta["quality"]["remove"]["edit_success"] == 0.25 and meta["quality"]["split"] == "test"
    assert "psnr_vs_truth" not in meta["quality"]  # the figures kept, not all of metrics.json
    t = meta["training"]
    assert t["cpu_hours"] == pytest.approx((10 * 0.36 + 20 * 0.18) / 3600, abs=1e-4)
    assert t["dataset"]["name"] == "celeba-aligned-10k" and t["images"] == 40 and t["positive"] == 9
    assert t["steps"] == 1 and t["threads"] == 1 and "CelebA" in meta["licence"]

    gens = trained.shipped()
    row = trained.pick(gens, "Eyeglasses")
    assert row["generator_id"] == meta["weights_sha256"][:16] and row["path"] == weights.name
    G, gmeta = trained.load_generator(gens, row)
    original, _ = load_checkpoint(tmp_path / "run" / "train_sagan" / "Eyeglasses" / "generator")
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    c = torch.ones(2, 1)
    with torch.no_grad():
        assert next(G.parameters()).dtype == torch.float32
        torch.testing.assert_close(G(x, c)[0], original(x, c)[0], atol=2e-2, rtol=0)
    # renamed, the pair is a checkpoint folder again
    folder = tmp_path / "as_checkpoint"
    folder.mkdir()
    (folder / ckpt.WEIGHTS).write_bytes(weights.read_bytes())
    (folder / ckpt.META).write_bytes(meta_file.read_bytes())
    assert load_checkpoint(folder, "Eyeglasses")[1]["attribute"] == "Eyeglasses"


def test_path_for_and_available_read_json_only(shipped):
    assert [m["attribute"] for m in pretrained.available()] == ["Eyeglasses"]
    assert pretrained.path_for("Eyeglasses") == shipped / "Eyeglasses.safetensors"
    with pytest.raises(pretrained.NotShipped, match=r"no generator is shipped for 'Smiling' \(shipped: Eyeglasses\)"):
        pretrained.path_for("Smiling")
    with pytest.raises(pretrained.NotShipped):
        pretrained.path_for("../Eyeglasses")  # a name that is no file name is simply not shipped
    (shipped / "Eyeglasses.safetensors").write_bytes(b"\x80pickle?")  # listing never opens the weights
    assert pretrained.attributes() == ["Eyeglasses"]
    gens = trained.shipped()
    with pytest.raises(ckpt.CheckpointError, match="do not match the sha256"):
        trained.load_generator(gens, gens.df.iloc[0])


def test_cli_generators_lists_what_is_shipped(shipped):
    r = CliRunner().invoke(cli, ["generators"])
    assert r.exit_code == 0, r.output
    header, row = r.output.splitlines()[1:3]
    assert header.split("  ")[0] == "attribute" and "success add" in header and "identity kept" in header
    assert row.split("  ")[:3] == ["Eyeglasses", "16 px (arcface crop, 32 px)", "1"]
    assert "0.75" in row and "0.25" in row and "0.83" in row and "non-commercial" in row
    r = CliRunner().invoke(cli, ["generators", "--json"])
    listed = json.loads(r.output)
    assert r.exit_code == 0 and [m["attribute"] for m in listed] == ["Eyeglasses"]
    assert "structure" not in listed[0] and listed[0]["quality"]["add"]["edit_success"] == 0.75


def test_cli_generators_with_nothing_shipped_says_so_in_one_line(shipped_dir):
    r = CliRunner().invoke(cli, ["generators"])
    assert r.exit_code == 0 and len(r.output.splitlines()) == 1
    assert "No generators are shipped" in r.output and "pipelines/pretrain.yaml" in r.output
    r = CliRunner().invoke(cli, ["generators", "--json"])
    assert r.exit_code == 0 and json.loads(r.output) == []


def test_cli_generators_ship_copies_a_run(tmp_path, shipped_dir):
    run = finished_run(tmp_path / "run")
    r = CliRunner().invoke(cli, ["generators", "ship", str(run), "--attribute", "Eyeglasses", "--licence", "CC0"])
    assert r.exit_code == 0, r.output
    assert json.loads((shipped_dir / "Eyeglasses.json").read_text())["licence"] == "CC0"
    r = CliRunner().invoke(cli, ["generators", "ship", str(run), "--attribute", "Smiling"])
    assert r.exit_code == 2 and "no generator for Smiling" in r.output
    (run / "eval_sagan" / "metrics.json").unlink()
    r = CliRunner().invoke(cli, ["generators", "ship", str(run)])
    assert r.exit_code == 2 and "eval_sagan/metrics.json" in r.output


def test_cli_edit_without_generators_uses_the_shipped_one(tmp_path, shipped, fake_detector):  # noqa: F811
    p = photo(tmp_path / "a.png", 0)
    out = tmp_path / "o"
    r = CliRunner().invoke(cli, ["edit", str(p), "--attribute", "Eyeglasses", "--value", "1", "--out", str(out),
                                 "--device", "cpu"])
    assert r.exit_code == 0, r.output
    edits = mf.read(out / "edits.parquet")
    sha = json.loads((shipped / "Eyeglasses.json").read_text())["weights_sha256"]
    assert edits.df["generator_id"].tolist() == [sha[:16]]
    assert edits.meta["extra"]["generator"].endswith("Eyeglasses.safetensors")
    assert edits.meta["extra"]["template"] == "arcface" and edits.meta["extra"]["size"] == 32
    assert (out / "edited" / "a.Eyeglasses=1.png").is_file()


def test_cli_edit_missing_shipped_attribute_exits_2_naming_it(tmp_path, shipped, fake_detector):  # noqa: F811
    p = photo(tmp_path / "a.png", 0)
    r = CliRunner().invoke(cli, ["edit", str(p), "--attribute", "Smiling", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    assert "'Smiling'" in r.output and "shipped: Eyeglasses" in r.output and "--generators RUN" in r.output
    assert not (tmp_path / "o").exists()
    for f in shipped.iterdir():
        f.unlink()
    r = CliRunner().invoke(cli, ["edit", str(p), "--attribute", "Smiling", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "'Smiling'" in r.output and "shipped: none" in r.output


BODY = """stages: [read, align, edit]
data:
  train: {{format: folder, root: {root}, align: none}}
align: {{template: arcface, size: 32, workers: 1}}
edit: {{generators: pretrained, directions: both, batch_size: 4}}
"""


def _pipeline(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / f"img{k}.png")
    p = tmp_path / "p.yaml"
    p.write_text(f"name: shipped\nworkdir: {tmp_path / 'work'}\ndevice: cpu\n" + BODY.format(root=root))
    return p


def test_pipeline_edits_with_the_shipped_generators_and_reruns_when_they_change(tmp_path, shipped):
    yaml_file = _pipeline(tmp_path)
    cfg = load_config(yaml_file)  # no train_sagan in stages: valid
    assert cfg.edit.generators == f"pretrained@{pretrained.digest()}"
    assert run_pipeline(cfg) == {"read": "ran", "align": "ran", "edit": "ran"}
    edits = mf.read(Path(cfg.workdir) / "edit" / "edits.parquet")
    assert len(edits) == 3 * 2 and set(edits.df["generator_id"]) == {set(trained.shipped().df["generator_id"]).pop()}
    assert Runner(load_config(yaml_file)).state("edit") == "done"

    trained.ship(finished_run(tmp_path / "other", seed=1))  # other weights shipped in their place
    runner = Runner(load_config(yaml_file))
    assert runner.state("edit") == "stale" and "edit.generators" in runner.why_stale("edit")
    assert runner.state("align") == "done"
    with pytest.raises(ConfigError, match="have changed since"):
        load_config(yaml_file, [f"edit.generators={cfg.edit.generators}"])  # the old pin


def test_pipeline_rules_for_the_shipped_generators(tmp_path, shipped_dir):
    yaml_file = _pipeline(tmp_path)
    with pytest.raises(ConfigError, match=r"key 'edit.generators': no generators are shipped"):
        load_config(yaml_file)
    assert load_config(yaml_file, check_paths=False).edit.generators.startswith("pretrained@")  # augment stages
    trained.ship(finished_run(tmp_path / "run"))
    with pytest.raises(ConfigError, match="'edit.generators' is set, but 'train_sagan' is in 'stages'"):
        load_config(yaml_file, ["stages=read,align,train_sagan,edit"])
    with pytest.raises(ConfigError, match=r"template 'arcface' at 32 px.*template 'arcface' at 48 px"):
        load_config(yaml_file, ["align.size=48"])
