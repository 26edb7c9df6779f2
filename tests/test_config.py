from pathlib import Path

import pytest

from augment.config import ConfigError, PipelineConfig, load_config, parse_overrides


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


def test_defaults_then_yaml_then_set(tmp_path):
    p = write(tmp_path, "seed: 3\nsynth:\n  identities: 7\n  size: 64\n")
    cfg = load_config(p, ["synth.size=96", "stages=synth,read"], check_paths=False)
    assert isinstance(cfg, PipelineConfig)
    assert cfg.seed == 3  # YAML over default
    assert cfg.synth.identities == 7
    assert cfg.synth.size == 96  # --set over YAML
    assert cfg.synth.images_per_identity == PipelineConfig().synth.images_per_identity  # default kept
    assert cfg.stages == ("synth", "read")
    with pytest.raises(Exception):
        cfg.seed = 4  # frozen


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    p = write(tmp_path, "synth:\n  identites: 7\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, check_paths=False)
    msg = str(e.value)
    assert str(p) in msg and "synth.identites" in msg and "did you mean 'synth.identities'" in msg


def test_unknown_top_level_key_suggests(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'workdir'"):
        load_config(write(tmp_path, "wrkdir: x\n"), check_paths=False)


def test_wrong_type_names_key_and_expected_type(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "synth:\n  identities: many\n"), check_paths=False)
    assert "synth.identities" in str(e.value) and "int" in str(e.value)
    with pytest.raises(ConfigError, match="data.train.format.*one of"):
        load_config(write(tmp_path, "data:\n  train:\n    format: imagenet\n"), check_paths=False)
    with pytest.raises(ConfigError, match="'seed' must be int"):
        load_config(write(tmp_path, "seed: true\n"), check_paths=False)


def test_set_override_errors_name_the_flag(tmp_path):
    p = write(tmp_path, "")
    with pytest.raises(ConfigError, match="--set synth.sze.*did you mean 'synth.size'"):
        load_config(p, ["synth.sze=3"], check_paths=False)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["novalue"])


def test_missing_path_names_key_and_path(tmp_path):
    p = write(tmp_path, f"stages: [read]\ndata:\n  train:\n    format: celeba\n    root: {tmp_path}/nope\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "data.train.root" in str(e.value) and "nope" in str(e.value)


def test_unknown_stage_suggests(tmp_path):
    with pytest.raises(ConfigError, match="stages\\[1\\].*did you mean 'read'"):
        load_config(write(tmp_path, "stages: [synth, raed]\n"), check_paths=False)


def test_invalid_yaml_names_line(tmp_path):
    with pytest.raises(ConfigError, match=r"p.yaml: line \d+ is not valid YAML"):
        load_config(write(tmp_path, "seed: 1\nsynth: [\n"), check_paths=False)


def test_every_shipped_pipeline_loads():
    repo = Path(__file__).resolve().parents[1]
    files = sorted((repo / "pipelines").glob("*.yaml"))
    assert files, "no pipelines shipped"
    for f in files:
        load_config(f, check_paths=False)
