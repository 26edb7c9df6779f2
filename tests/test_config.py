from pathlib import Path

import pytest

from augment.config import ConfigError, PipelineConfig, parse_overrides
from augment.validate import load_config


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


# --------------------------------------------------------------------------- #
# Checks at load: ranges, network sizes, synth settings, edit filters, paths
# --------------------------------------------------------------------------- #

ALL_STAGES = "stages=synth,read,align,train_classifier,train_sagan,edit,train_recognition,evaluate,eval_sagan,report"


def _out_of_range(key: str) -> str:
    import typing

    from augment.validate import RANGES

    lo, hi = RANGES[key]
    section, name = key.split(".")
    tp = typing.get_type_hints(type(getattr(PipelineConfig(), section)))[name]
    if lo is not None:
        return str(lo - 1 if tp is int else lo - 0.5)
    return str(hi + 0.5)


def _range_keys() -> list[str]:
    from augment.validate import RANGES

    return list(RANGES)


@pytest.mark.parametrize("key", _range_keys())
def test_out_of_range_value_is_refused_at_load_naming_the_key(key):
    value = _out_of_range(key)
    with pytest.raises(ConfigError, match=rf"<defaults>: key '{key}' must be (at least|within) .*, got {value}"):
        load_config(None, [ALL_STAGES, f"{key}={value}"], check_paths=False)


def test_ranges_cover_only_the_sections_of_the_stages_that_run():
    cfg = load_config(None, ["stages=synth,read", "edit.chunk_size=0"], check_paths=False)
    assert cfg.edit.chunk_size == 0  # no edit stage: nothing depends on it


@pytest.mark.parametrize("sets, key, message", [
    (["synth.identities=1"], "synth.identities", "must be at least 2"),
    (["synth.habit_by_attribute={Halo: 0.5}"], "synth.habit_by_attribute", "'Halo' is not a rendered attribute"),
    (["synth.lfw_habit_strength=2"], "synth.lfw_habit_strength", r"must be within \[0, 1\]"),
    (["train_sagan.image_size=50"], "train_sagan.image_size", "must be divisible by"),
    (["train_sagan.g_width=-4"], "train_sagan.g_width", "g_width must be >= 1"),
    (["train_sagan.preset=paper", "train_sagan.image_size=100"], "train_sagan.image_size", "must be divisible by"),
    (["train_recognition.image_size=100"], "train_recognition.image_size", "multiple of 16"),
    (["train_sagan.mask_soft_steps=100"], "train_sagan.mask_soft_steps", "only applies to train_sagan.mask_scale 'hard'"),
    (["train_recognition.backbone=inception_resnet_v1"], "train_recognition.image_size", "at least 80"),
    (["train_sagan.per_attribute.Smiling.steps=10"], "train_sagan.per_attribute.Smiling",
     "names an attribute that train_sagan.attributes does not train"),
    (["train_sagan.per_attribute.Eyeglasses.steps=0"], "train_sagan.per_attribute.Eyeglasses.steps",
     "must be at least 1, got 0"),
    (["train_sagan.per_attribute.Eyeglasses.d_smudge_fraction=2"],
     "train_sagan.per_attribute.Eyeglasses.d_smudge_fraction", r"must be within \[0, 1\], got 2.0"),
    (["train_sagan.per_attribute.Eyeglasses.stepz=10"], "train_sagan.per_attribute.Eyeglasses.stepz",
     "did you mean 'train_sagan.per_attribute.Eyeglasses.steps'"),
])
def test_settings_the_stages_cannot_take_are_refused_at_load(sets, key, message):
    with pytest.raises(ConfigError, match=rf"key '{key}'.*{message}"):
        load_config(None, [ALL_STAGES, *sets], check_paths=False)


def test_bad_value_exits_2_before_any_stage_runs(tmp_path):
    from click.testing import CliRunner

    from augment.cli import cli

    p = write(tmp_path, f"workdir: {tmp_path / 'work'}\nstages: [synth, read, align, train_sagan, edit]\n")
    for flag, key in (("edit.chunk_size=0", "edit.chunk_size"), ("train_sagan.image_size=50", "train_sagan.image_size"),
                      ("synth.size=8", "synth.size")):
        r = CliRunner().invoke(cli, ["run", str(p), "--set", flag])
        assert r.exit_code == 2 and f"key '{key}'" in r.output, r.output
        assert "Traceback" not in r.output
    assert not (tmp_path / "work").exists()


def test_edit_filters_without_their_judge_are_refused(tmp_path):
    base = ["stages=read,align,edit", "edit.generators=runs/earlier"]
    with pytest.raises(ConfigError, match="key 'edit.min_attr_prob' is 0.5, but no classifier scores the edits"):
        load_config(None, [*base, "edit.min_attr_prob=0.5"], check_paths=False)
    with pytest.raises(ConfigError, match="key 'edit.min_attr_prob'"):  # trained after edit: no scores either
        load_config(None, ["stages=read,align,train_sagan,edit,train_classifier", "edit.min_attr_prob=0.5"],
                    check_paths=False)
    with pytest.raises(ConfigError, match="key 'edit.min_id_similarity' is 0.3, but 'edit.recognizer' is empty"):
        load_config(None, [*base, "edit.min_id_similarity=0.3"], check_paths=False)
    # with their judge they load
    assert load_config(None, [*base, "edit.min_attr_prob=0.5", "edit.classifier=runs/earlier"],
                       check_paths=False).edit.min_attr_prob == 0.5
    assert load_config(None, ["stages=read,align,train_classifier,train_sagan,edit", "edit.min_attr_prob=0.5"],
                       check_paths=False).edit.min_attr_prob == 0.5
    assert load_config(None, [*base, "edit.min_id_similarity=0.3", "edit.recognizer=runs/rec"],
                       check_paths=False).edit.min_id_similarity == 0.3


@pytest.mark.parametrize("key, stages", [("train_recognition.pretrained", "synth,read,align,train_recognition"),
                                         ("edit.recognizer", "synth,read,align,train_sagan,edit")])
def test_model_paths_must_exist(tmp_path, key, stages):
    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(ConfigError, match=f"key '{key}' names a path that does not exist: {missing}"):
        load_config(None, [f"stages={stages}", f"{key}={missing}"])
    missing.write_bytes(b"x")
    assert str(load_config(None, [f"stages={stages}", f"{key}={missing}"]).train_recognition.pretrained or
               load_config(None, [f"stages={stages}", f"{key}={missing}"]).edit.recognizer) == str(missing)


def test_eval_sagan_before_the_recognizer_it_uses_is_refused(tmp_path):
    """Its identity figures would otherwise depend on the order of ``stages``."""
    with pytest.raises(ConfigError, match=r"'eval_sagan' comes before 'train_recognition' and 'evaluate'.*move"):
        load_config(None, ["stages=synth,read,align,train_classifier,train_sagan,eval_sagan,edit,"
                           "train_recognition,evaluate"], check_paths=False)
    cfg = load_config(None, ["stages=synth,read,align,train_classifier,train_sagan,edit,train_recognition,"
                             "evaluate,eval_sagan"], check_paths=False)
    assert cfg.stages[-1] == "eval_sagan"
