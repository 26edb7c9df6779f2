"""The stage runner, on toy stages that count their runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from augment import manifest as mf
from augment.cli import cli
from augment.validate import load_config
from augment.pipeline import PipelineError, run_pipeline
from augment.workdir import Runner, states
from augment.stages import STAGES, Stage

CALLS: list[str] = []


def _rows(n, tag):
    return mf.frame("pairs", [{"fold": 0, "path_a": f"{tag}{i}", "path_b": "b", "same": True} for i in range(n)])


def stage_a(cfg, inputs, run_dir):
    CALLS.append("a")
    return {"pa": mf.Manifest("pairs", _rows(cfg.synth.identities, "a"), run_dir)}


def stage_b(cfg, inputs, run_dir):
    CALLS.append("b")
    n = len(inputs["pa"]) + cfg.data.train.max_images
    return {"pb": mf.Manifest("pairs", _rows(n, "b"), run_dir)}


def stage_c(cfg, inputs, run_dir):
    CALLS.append("c")
    marker = run_dir / "partial.txt"
    if cfg.name == "crash" and not marker.exists():
        marker.write_text("half")
        raise KeyboardInterrupt
    return {"pc": mf.Manifest("pairs", _rows(len(inputs["pb"]), "c"), run_dir)}


@pytest.fixture
def toy(monkeypatch, tmp_path):
    monkeypatch.setitem(STAGES, "a", Stage(name="a", target=stage_a, sections=("synth",), outputs={"pa": "pairs"}))
    monkeypatch.setitem(STAGES, "b", Stage(name="b", target=stage_b, sections=("data",), inputs=("pa",),
                                             outputs={"pb": "pairs"}))
    monkeypatch.setitem(STAGES, "c", Stage(name="c", target=stage_c, sections=(), inputs=("pb",),
                                             outputs={"pc": "pairs"}))
    CALLS.clear()
    p = tmp_path / "p.yaml"
    p.write_text(f"name: toy\nworkdir: {tmp_path}/work\nstages: [a, b, c]\nsynth: {{identities: 3}}\n")

    def cfg(*sets):
        return load_config(p, sets, check_paths=False)

    return cfg


def test_second_run_skips_every_stage(toy):
    assert run_pipeline(toy()) == {"a": "ran", "b": "ran", "c": "ran"}
    assert run_pipeline(toy()) == {"a": "skipped", "b": "skipped", "c": "skipped"}
    assert CALLS == ["a", "b", "c"]
    assert [s for _, s, _ in states(toy())] == ["done"] * 3


def test_changed_config_reruns_that_stage_and_downstream(toy):
    run_pipeline(toy())
    CALLS.clear()
    cfg = toy("data.train.max_images=2")
    assert [s for _, s, _ in states(cfg)] == ["done", "stale", "stale"]
    assert run_pipeline(cfg) == {"a": "skipped", "b": "ran", "c": "ran"}
    assert CALLS == ["b", "c"]
    assert len(mf.read(Path(cfg.workdir) / "c" / "pc.parquet")) == 5


def test_force_reruns_and_unchanged_output_keeps_downstream(toy):
    run_pipeline(toy())
    CALLS.clear()
    assert run_pipeline(toy(), force=["a"]) == {"a": "ran", "b": "skipped", "c": "skipped"}
    assert CALLS == ["a"]  # same bytes out of a, so b and c stay valid


def test_stages_and_until_select(toy):
    assert run_pipeline(toy(), until="b") == {"a": "ran", "b": "ran"}
    assert [s for _, s, _ in states(toy())] == ["done", "done", "not run"]
    assert run_pipeline(toy(), only=["c"]) == {"c": "ran"}
    with pytest.raises(PipelineError, match="not in this pipeline"):
        run_pipeline(toy(), only=["zzz"])


def test_missing_upstream_is_an_error(toy):
    with pytest.raises(PipelineError, match="needs the outputs of 'b'"):
        run_pipeline(toy(), only=["c"])


def test_missing_declared_input_fails_naming_the_stage_before_anything_runs(toy):
    with pytest.raises(PipelineError, match="stage 'c' needs the input 'pb', which 'b' makes: add 'b'"):
        run_pipeline(toy("stages=a,c"))
    with pytest.raises(PipelineError, match="stage 'c' needs the input 'pb', which 'b' makes: move 'b' before"):
        run_pipeline(toy("stages=a,c,b"))
    assert CALLS == []  # refused before any stage ran


def test_real_stage_without_its_input_fails_naming_it(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(f"workdir: {tmp_path}/work\nstages: [read, align, evaluate]\n")
    with pytest.raises(PipelineError, match="stage 'evaluate' needs the input 'recognizers', which 'train_rec"):
        run_pipeline(load_config(p, check_paths=False))
    assert not (tmp_path / "work" / "read").exists()


def _returns(outs):
    def stage(cfg, inputs, run_dir):
        return outs(run_dir)

    return stage


@pytest.mark.parametrize("outs, message", [
    (lambda d: {"pc": mf.Manifest("pairs", _rows(1, "c"), d), "px": mf.Manifest("pairs", _rows(1, "x"), d)},
     r"stage 't' returned undeclared outputs \['px'\]"),
    (lambda d: {}, r"stage 't' did not return its declared outputs \['pc'\]"),
    (lambda d: {"pc": mf.Manifest("images", mf.frame("images", []), d)},
     "stage 't' output 'pc' is declared as 'pairs' but is 'images'"),
])
def test_stage_returning_against_its_declaration_fails_naming_it(monkeypatch, tmp_path, outs, message):
    monkeypatch.setitem(STAGES, "t", Stage(name="t", target=_returns(outs), sections=(), outputs={"pc": "pairs"}))
    p = tmp_path / "p.yaml"
    p.write_text(f"workdir: {tmp_path}/work\nstages: [t]\n")
    with pytest.raises(PipelineError, match=message):
        run_pipeline(load_config(p, check_paths=False))
    assert not (tmp_path / "work" / "t" / ".done.json").exists()


def test_optional_output_may_be_absent_and_a_stage_sees_only_what_it_declares(monkeypatch, tmp_path):
    seen = {}

    def maker(cfg, inputs, run_dir):
        return {"pa": mf.Manifest("pairs", _rows(2, "a"), run_dir)}  # "pz" is optional

    def reader(cfg, inputs, run_dir):
        seen.update(inputs)
        return {}

    monkeypatch.setitem(STAGES, "m", Stage(name="m", target=maker, sections=(),
                                           outputs={"pa": "pairs", "pz": "pairs", "pq": "pairs"},
                                           optional_outputs=("pz", "pq")))
    monkeypatch.setitem(STAGES, "r", Stage(name="r", target=reader, sections=(), uses=("pz",), outputs={}))
    p = tmp_path / "p.yaml"
    p.write_text(f"workdir: {tmp_path}/work\nstages: [m, r]\n")
    assert run_pipeline(load_config(p, check_paths=False)) == {"m": "ran", "r": "ran"}
    assert seen == {}  # "pa" was made, but r does not declare it


def test_stage_declarations():
    from augment.stages import StageContractError, producers

    made = producers(STAGES.values())
    assert len(made) == sum(len(s.outputs) for s in STAGES.values())
    for s in STAGES.values():
        assert set(s.inputs) | set(s.uses) <= set(made), s.name
        assert s.name not in {made[x] for x in (*s.inputs, *s.uses)}, s.name
    with pytest.raises(StageContractError, match="declared by both 'read' and 'x'"):
        producers([*STAGES.values(), Stage(name="x", target="m:f", sections=(), outputs={"pairs": "pairs"})])
    with pytest.raises(StageContractError, match="output 'o' has an unknown kind 'picture'"):
        Stage(name="x", target="m:f", sections=(), outputs={"o": "picture"})
    with pytest.raises(TypeError):
        Stage("x", "m:f", (), {})  # keywords only


def test_every_stage_function_is_a_stage_fn():
    from augment import stages

    for s in STAGES.values():
        fn = s.load()
        assert fn.__annotations__ == {"cfg": "PipelineConfig", "inputs": "StageInputs", "run_dir": "Path",
                                      "return": "StageOutputs"}, s.name
        assert (fn.__globals__["StageInputs"], fn.__globals__["StageOutputs"]) == (stages.StageInputs,
                                                                                 stages.StageOutputs), s.name


def test_interrupted_stage_leaves_no_marker_and_resumes(toy):
    cfg = toy("name=crash")
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg)
    work = Path(cfg.workdir)
    assert not (work / "c" / ".done.json").exists()
    assert not (work / "c" / "pc.parquet").exists()
    assert (work / "c" / "partial.txt").exists()
    assert [s for _, s, _ in states(cfg)] == ["done", "done", "interrupted"]
    assert run_pipeline(cfg) == {"a": "skipped", "b": "skipped", "c": "ran"}  # resumed with its partial work


def test_stale_partial_work_is_cleared(toy, caplog):
    cfg = toy("name=crash")
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg)
    cfg2 = toy("name=crash", "data.train.max_images=1")  # another fingerprint for b and c
    with caplog.at_level("WARNING", logger="augment"), pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg2)  # partial.txt was cleared, so c crashes again
    # the user is told that a killed run's work was dropped, and where
    assert "[c] discarding the interrupted run's partial work in" in caplog.text


def _more_identities(old, new):
    """A toy Stage.continues: more synth.identities and nothing else changed."""
    return new["synth"]["identities"] > old["synth"]["identities"] and {**old["synth"], "identities": 0} == {
        **new["synth"], "identities": 0}


def _growing_stage(monkeypatch, tmp_path, target):
    """Stage 'a' running ``target`` and carrying on for more identities, in a
    pipeline of its own -> (its YAML, cfg(*sets) loading it)."""
    monkeypatch.setitem(STAGES, "a", Stage(name="a", target=target, sections=("synth",), outputs={"pa": "pairs"},
                                             continues=_more_identities))
    p = tmp_path / "p.yaml"
    p.write_text(f"name: toy\nworkdir: {tmp_path}/work\nstages: [a]\nsynth: {{identities: 3}}\n")
    return p, lambda *sets: load_config(p, sets, check_paths=False)


def test_a_finished_stage_carries_on_when_its_stage_accepts_the_change(monkeypatch, tmp_path):
    """Stage.continues: a finished run asked for more (here more identities, as
    train_sagan for more steps) keeps its folder and carries on; any other
    change, or less, starts over in a cleared folder."""
    seen = []

    def grows(cfg, inputs, run_dir):
        done = run_dir / "work.txt"
        seen.append(done.read_text() if done.exists() else "")
        done.write_text(f"{cfg.synth.identities} identities")
        return {"pa": mf.Manifest("pairs", _rows(cfg.synth.identities, "a"), run_dir)}

    p, cfg = _growing_stage(monkeypatch, tmp_path, grows)

    run_pipeline(cfg())
    assert Runner(cfg("synth.identities=5")).continues("a")
    assert not Runner(cfg("synth.identities=2")).continues("a")
    assert not Runner(cfg("synth.identities=5", "synth.seed=7")).continues("a")
    assert not Runner(cfg("synth.identities=5", "seed=1")).continues("a")
    run_pipeline(cfg("synth.identities=5"))  # carries on: the old work is there
    run_pipeline(cfg("synth.identities=2"))  # less: starts over in an empty folder
    run_pipeline(cfg("synth.identities=4", "synth.seed=7"))  # another key: starts over
    assert seen == ["", "3 identities", "", ""]
    assert "continuing its finished run" in (tmp_path / "work" / "augment.log").read_text()


def test_train_sagan_carries_on_for_more_steps_at_a_constant_lr_only():
    from augment.config import PipelineConfig, section_json
    from augment.stages import more_sagan_steps

    def sagan(**kw):
        base = PipelineConfig()
        return json.loads(section_json(base.__class__(train_sagan=base.train_sagan.__class__(**kw)), ["train_sagan"]))

    assert more_sagan_steps(sagan(steps=2500), sagan(steps=5000))
    assert not more_sagan_steps(sagan(steps=5000), sagan(steps=2500))
    assert not more_sagan_steps(sagan(steps=2500), sagan(steps=2500))
    assert not more_sagan_steps(sagan(steps=2500), sagan(steps=5000, lambda_cls=5.0))
    assert not more_sagan_steps(sagan(steps=2500, lr_decay_from=0.5), sagan(steps=5000, lr_decay_from=0.5))


def test_train_sagan_carries_on_when_one_attribute_asks_for_more_steps():
    from augment.config import AttributeRecipe, PipelineConfig, section_json
    from augment.stages import more_sagan_steps

    def sagan(steps=2500, glasses=None, **recipe):
        per = {"Eyeglasses": AttributeRecipe(steps=glasses, **recipe)} if glasses or recipe else {}
        cfg = PipelineConfig(train_sagan=PipelineConfig().train_sagan.__class__(
            attributes=("Eyeglasses", "Smiling"), steps=steps, per_attribute=per))
        return json.loads(section_json(cfg, ["train_sagan"]))

    old = sagan()
    del old["train_sagan"]["per_attribute"]  # recorded before the key existed
    assert more_sagan_steps(old, sagan(glasses=5000))
    assert more_sagan_steps(sagan(), sagan(glasses=5000))
    assert more_sagan_steps(sagan(glasses=3000), sagan(steps=3000))  # Smiling on, Eyeglasses as it was
    assert not more_sagan_steps(sagan(steps=5000), sagan(steps=5000, glasses=3000))  # Eyeglasses fewer
    assert not more_sagan_steps(sagan(), sagan(glasses=2500))  # the same steps: nothing to carry on
    assert not more_sagan_steps(sagan(), sagan(glasses=5000, lambda_cls=10.0))


def test_run_folder_has_config_log_and_markers(toy):
    cfg = toy()
    run_pipeline(cfg)
    work = Path(cfg.workdir)
    assert "identities: 3" in (work / "config.yaml").read_text()
    assert "[c] done" in (work / "augment.log").read_text()
    marker = json.loads((work / "a" / ".done.json").read_text())
    assert marker["outputs"]["pa"]["rows"] == 3 and len(marker["fingerprint"]) == 64
    assert Runner(cfg).state("a") == "done"


def test_fingerprint_hashes_only_the_outputs_a_stage_declares(monkeypatch, tmp_path):
    """A stage reruns when a manifest it reads changes, not when its upstream stage's
    other outputs do: 'b' makes 'pb' and 'extra'; 'c' reads only 'pb'."""
    counter = {"extra": 0}

    def b2(cfg, inputs, run_dir):
        CALLS.append("b")
        return {"pb": mf.Manifest("pairs", _rows(2, "b"), run_dir),
                "extra": mf.Manifest("pairs", _rows(1 + counter["extra"], "x"), run_dir)}

    monkeypatch.setitem(STAGES, "a", Stage(name="a", target=stage_a, sections=("synth",), outputs={"pa": "pairs"}))
    monkeypatch.setitem(STAGES, "b", Stage(name="b", target=b2, sections=("data",), inputs=("pa",),
                                             outputs={"pb": "pairs", "extra": "pairs"}))
    monkeypatch.setitem(STAGES, "c", Stage(name="c", target=stage_c, sections=(), inputs=("pb",),
                                             outputs={"pc": "pairs"}))
    p = tmp_path / "p.yaml"
    p.write_text(f"name: toy\nworkdir: {tmp_path}/work\nstages: [a, b, c]\n")
    cfg = load_config(p, check_paths=False)
    CALLS.clear()
    run_pipeline(cfg)
    counter["extra"] = 5  # b's other output will differ; pb will not
    assert run_pipeline(cfg, force=["b"]) == {"a": "skipped", "b": "ran", "c": "skipped"}
    assert CALLS == ["a", "b", "c", "b"]


def test_a_stale_stage_says_why(toy):
    run_pipeline(toy())
    runner = Runner(toy("seed=1"))
    assert runner.why_stale("a") == "seed 0 -> 1"
    runner = Runner(toy("data.train.max_images=2"))
    assert runner.why_stale("b") == "data.train.max_images 0 -> 2"
    run_pipeline(toy("data.train.max_images=2"), only=["b"])
    assert Runner(toy("data.train.max_images=2")).why_stale("c") == "its input 'pb' (from b) changed"


def _drop_from_marker(path: Path, section: str, key: str) -> None:
    """Rewrite a done marker as an augment from before ``section.key`` existed wrote it."""
    from augment.workdir import fingerprint_of

    marker = json.loads(path.read_text())
    del marker["basis"]["config"][section][key]
    marker["fingerprint"] = fingerprint_of(marker["basis"])
    path.write_text(json.dumps(marker))


def test_a_key_added_since_a_stage_ran_keeps_it_done_at_its_default_only(toy):
    """An upgrade that adds an option (off by default) must not redo finished work;
    the same option set to anything else must."""
    run_pipeline(toy())
    _drop_from_marker(Path(toy().workdir) / "a" / ".done.json", "synth", "jpeg_quality")
    assert [s for s, _, _ in states(toy())] and Runner(toy()).state("a") == "done"
    CALLS.clear()
    run_pipeline(toy())
    assert CALLS == []  # nothing reran
    changed = Runner(toy("synth.jpeg_quality=90"))
    assert changed.state("a") == "stale" and "synth.jpeg_quality" in changed.why_stale("a")


def test_a_killed_stage_carries_on_when_its_stage_accepts_the_change(monkeypatch, tmp_path, caplog):
    """The in-progress marker records the config a killed run started under, so
    a rerun asking for more (as train_sagan for more steps) keeps the partial
    work; a rerun asking for less still starts over, and says so."""
    seen = []

    def grows(cfg, inputs, run_dir):
        part = run_dir / "part.txt"
        seen.append(part.read_text() if part.exists() else "")
        if not part.exists():
            part.write_text(f"towards {cfg.synth.identities}")
            raise KeyboardInterrupt  # killed after its first part of the work
        return {"pa": mf.Manifest("pairs", _rows(cfg.synth.identities, "a"), run_dir)}

    p, cfg = _growing_stage(monkeypatch, tmp_path, grows)

    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg())
    assert Runner(cfg()).state("a") == "interrupted"
    assert Runner(cfg("synth.identities=5")).continues("a")
    assert not Runner(cfg("synth.identities=2")).continues("a")
    assert "synth.identities 3 -> 5" in Runner(cfg("synth.identities=5")).why_stale("a")
    shown = CliRunner().invoke(cli, ["stages", str(p), "--set", "synth.identities=5"]).output
    assert "why: it has not finished; it started under another config: synth.identities 3 -> 5" in shown
    assert "a run carries it on from its checkpoints" in shown
    assert "a run starts it over" in CliRunner().invoke(cli, ["stages", str(p), "--set", "synth.identities=2"]).output
    run_pipeline(cfg("synth.identities=5"))  # carries on from the killed run's part
    assert seen == ["", "towards 3"]
    assert Runner(cfg("synth.identities=5")).state("a") == "done"
    log_text = (tmp_path / "work" / "augment.log").read_text()
    assert "continuing its interrupted run" in log_text and "synth.identities 3 -> 5" in log_text

    with pytest.raises(KeyboardInterrupt):  # killed again on its way to 9 ...
        run_pipeline(cfg("synth.identities=9", "synth.seed=7"))
    with caplog.at_level("WARNING", logger="augment"), pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg("synth.identities=9"))  # ... and rerun under another key: starts over
    assert seen == ["", "towards 3", "", ""]
    assert "[a] discarding the interrupted run's partial work in" in caplog.text
