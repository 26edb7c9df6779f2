"""Crash and resume: ``kill -9`` of ``augment run`` at a random (or an exact) point,
then a rerun. The rerun completes and its manifests hold exactly the rows of an
uninterrupted run of the same config and seed: none missing, none twice, every
referenced file present and decodable, every checkpoint complete or absent.

The child is ``tests/faults.py`` (``augment`` with injected faults) started in
its own session; the whole process group is SIGKILLed, workers included. The
random kill point is printed in every failure message so it can be replayed.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from augment import checkpoint as ckpt
from augment import manifest as mf
from augment.align import dataset as align_stage
from augment.validate import load_config
from augment.data.images import decode
from augment.pipeline import run_pipeline
from augment.workdir import DONE, INPROGRESS, TEMPORARY
from augment.stages import STAGES

from tests.faults import SMOKE, augment_cmd, child_env, run_and_kill, sha256

ALIGN_SETS = ["align.workers=1"]
CHUNK_ROWS = 8  # 12 resumable chunks in the smoke data instead of 3
CHUNK_SET = f"augment.align.dataset:CHUNK_ROWS={CHUNK_ROWS}"
RNG = random.Random()  # a fresh kill point each run; the one used is in the failure message


def _cfg(work: Path, sets: list[str]):
    return load_config(SMOKE, [f"workdir={work}", *sets])


def _cli_args(work: Path, sets: list[str], until: str) -> list[str]:
    args = ["run", str(SMOKE), "--until", until, "--set", f"workdir={work}"]
    for s in sets:
        args += ["--set", s]
    return args


def _copy_upstream(clean: Path, work: Path, stages: list[str]) -> None:
    """Give ``work`` the finished upstream stages of the clean run (their
    manifests point at the same data), so only the stage under test runs."""
    work.mkdir(parents=True)
    for s in stages:
        shutil.copytree(clean / s, work / s)


def assert_images_usable(m: mf.Manifest) -> None:
    """No duplicate rows; every file exists, decodes and has the recorded sha256."""
    df = m.df
    assert not df.duplicated(["sample_id", "path"]).any(), "duplicate rows"
    assert df["path"].is_unique, "two rows name the same file"
    for rel, digest in zip(df["path"], df["sha256"]):
        p = m.abspath(rel)
        assert p.is_file(), f"{p} is referenced but missing"
        decode(p)  # raises on a truncated or foreign file
        if isinstance(digest, str):
            assert sha256(p) == digest, f"{p}: bytes differ from the manifest's sha256"


def assert_same_manifest(clean: Path, got: Path) -> None:
    a, b = mf.read(clean), mf.read(got)
    assert a.kind == b.kind
    pd.testing.assert_frame_equal(a.df, b.df, check_exact=True)


def assert_checkpoints_complete(folder: Path) -> None:
    """Every visible checkpoint folder is whole; temporaries are hidden (dot) names."""
    for meta in folder.rglob(ckpt.META):
        d = meta.parent
        if d.name.startswith("."):
            continue
        ckpt.read_meta(d)
        ckpt.verify_weights(d)
    for d in folder.rglob("step_*"):
        if d.is_dir() and not d.name.startswith("."):
            assert (d / ckpt.META).is_file(), f"{d}: a half-written checkpoint under its final name"


# --------------------------------------------------------------------------- #
# align: fast, at toy size, in a workdir whose path has spaces and non-ASCII
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def clean_align(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("clean") / "wörk dir ✓"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(align_stage, "CHUNK_ROWS", CHUNK_ROWS)
        assert run_pipeline(_cfg(work, ALIGN_SETS), until="align") == {"synth": "ran", "read": "ran", "align": "ran"}
    return work


ALIGN_OUTPUTS = ("aligned.parquet", "eval_aligned.parquet", "rejects.parquet")


def _resume_align_and_compare(clean: Path, work: Path, monkeypatch, why: str) -> None:
    assert not (work / "align" / DONE).exists(), f"the kill landed after align finished ({why})"
    assert (work / "align" / INPROGRESS).is_file()
    for part in (work / "align" / "parts").rglob("[0-9]*.json"):  # recorded chunks are whole JSON
        json.loads(part.read_text())
    monkeypatch.setattr(align_stage, "CHUNK_ROWS", CHUNK_ROWS)
    result = run_pipeline(_cfg(work, ALIGN_SETS), until="align")
    assert result == {"synth": "skipped", "read": "skipped", "align": "ran"}, why
    for name in ALIGN_OUTPUTS:
        assert_same_manifest(clean / "align" / name, work / "align" / name)
    assert_images_usable(mf.read(work / "align" / "aligned.parquet"))
    assert_images_usable(mf.read(work / "align" / "eval_aligned.parquet"))


def test_align_killed_at_a_random_point_resumes_to_the_clean_rows(clean_align, tmp_path, monkeypatch):
    work = tmp_path / "killed wörk"
    _copy_upstream(clean_align, work, ["synth", "read"])
    parts = work / "align" / "parts"
    n_chunks = len(list((clean_align / "align" / "parts").rglob("[0-9]*.json")))
    for attempt in range(4):  # a kill point drawn too late lets the run finish first: draw another
        # align at toy size takes ~0.1 s: the last try kills as the first chunk is recorded
        after_parts, delay = (RNG.randrange(n_chunks), RNG.uniform(0.0, 0.25)) if attempt < 3 else (1, 0.0)
        why = f"killed {delay:.3f} s after {after_parts} of {n_chunks} chunk(s) were recorded"

        def trigger() -> bool:
            return (work / "align" / INPROGRESS).is_file() and len(list(parts.rglob("[0-9]*.json"))) >= after_parts

        out = run_and_kill(augment_cmd(*_cli_args(work, ALIGN_SETS, "align")), child_env(CHUNK_SET), trigger, delay)
        landed = out.killed and not (work / "align" / DONE).exists()  # killed while the stage ran
        if landed:
            break
        assert out.killed or out.returncode == 0, out.output[-2000:]
        shutil.rmtree(work / "align")
    assert landed, f"four runs finished the stage before their kill ({why}):\n{out.output[-2000:]}"
    _resume_align_and_compare(clean_align, work, monkeypatch, why)


@pytest.mark.parametrize("kill", [
    # the first output manifest is in place, the others are not
    pytest.param("augment.manifest:write:1:after", id="after-first-manifest"),
    # a manifest's temporary file is written, not yet renamed
    pytest.param("os:replace:1:before:.rejects.parquet.tmp", id="before-manifest-rename", marks=pytest.mark.slow),
    # every manifest is written, the done marker is not
    pytest.param("augment.pipeline:write_json:1:before", id="before-done-marker", marks=pytest.mark.slow),
])
def test_align_killed_at_an_exact_point_resumes_to_the_clean_rows(clean_align, tmp_path, monkeypatch, kill):
    work = tmp_path / "killed"
    _copy_upstream(clean_align, work, ["synth", "read"])
    out = run_and_kill(augment_cmd(*_cli_args(work, ALIGN_SETS, "align")), child_env(CHUNK_SET, kill),
                       lambda: False, 0.0)
    assert out.returncode == -9, f"the child was not killed at {kill}:\n{out.output[-2000:]}"
    _resume_align_and_compare(clean_align, work, monkeypatch, kill)


# --------------------------------------------------------------------------- #
# checkpoints: a save killed part-way is never picked up
# --------------------------------------------------------------------------- #

SAVE_TWO = """
import torch
from augment import checkpoint as ck
net = torch.nn.Linear(4, 3)
ck.save({folder!r} + "/step_1", {{"net": net.state_dict()}}, {{"step": 1}})
with torch.no_grad():
    net.weight.add_(1.0)
ck.save({folder!r} + "/step_2", {{"net": net.state_dict()}}, {{"step": 2}})
ck.save({folder!r} + "/step_1", {{"net": net.state_dict()}}, {{"step": 1}})  # overwrite an existing one
"""


@pytest.mark.parametrize("kill,latest", [
    # step_2's weights written, its metadata not
    pytest.param("safetensors.torch:save_file:2:after", "step_1", id="weights-only", marks=pytest.mark.slow),
    # step_2 complete in its temporary folder, not yet renamed
    pytest.param("augment.checkpoint:fsync_file:4:after", "step_1", id="before-rename", marks=pytest.mark.slow),
    # overwriting step_1: the old one moved aside, the new one not yet in place
    pytest.param("os:replace:1:after:.old-", "step_2", id="mid-overwrite"),
])
def test_checkpoint_save_killed_part_way_is_never_picked_up(tmp_path, kill, latest):
    folder = tmp_path / "checkpoints"
    script = tmp_path / "save.py"
    script.write_text(SAVE_TWO.format(folder=str(folder)))
    out = run_and_kill(augment_cmd("--script", str(script)), child_env(kill=kill), lambda: False, 0.0)
    assert out.returncode == -9, f"not killed at {kill}:\n{out.output[-2000:]}"
    assert ckpt.latest(folder).name == latest
    assert_checkpoints_complete(folder)
    states, meta = ckpt.load(ckpt.latest(folder))
    assert meta["step"] == int(latest[-1]) and set(states) == {"net"}


# --------------------------------------------------------------------------- #
# Every other stage of the smoke pipeline, killed mid-stage (slow)
# --------------------------------------------------------------------------- #

TRAIN_STAGES = ["synth", "read", "align", "train_classifier", "train_sagan", "edit",
                "train_recognition", "evaluate", "eval_sagan", "report"]
TRAIN_SETS = ["stages=" + ",".join(TRAIN_STAGES), "align.workers=1", "edit.chunk_size=16",
              "train_sagan.checkpoint_every=2", "train_classifier.checkpoint_every=5"]
OUTPUT = {"synth": "groundtruth.parquet", "train_classifier": "classifiers.parquet",
          "train_sagan": "generators.parquet", "eval_sagan": "metrics.json", "edit": "edits.parquet",
          "train_recognition": "recognizers.parquet", "evaluate": "metrics.json", "report": "report.html"}
SYNTH_CHUNK = 1  # identities per synth chunk in the killed run: 18 resume points instead of 5
SYNTH_SET = f"augment.data.synthfaces.dataset:CHUNK={SYNTH_CHUNK}"  # the output does not depend on it


def _steps(folder: Path, pattern: str) -> list[int]:
    return [int(d.name.split("_")[1]) for d in folder.glob(pattern) if d.is_dir()]


def _files(folder: Path, pattern: str) -> int:
    return sum(1 for p in folder.glob(pattern) if p.is_file() and not p.name.startswith("."))


# How far a stage has come, read from the files it keeps (for resuming, or on
# the way to its outputs), and where a kill may land: after that much progress
# (drawn at random) plus a random delay.
PROGRESS = {
    "synth": lambda d: _files(d, "data/.synth_progress/chunk_*.json"),  # chunks rendered
    "train_classifier": lambda d: len(_steps(d, "checkpoints/step_*")),  # checkpoints saved
    "train_sagan": lambda d: max(_steps(d, "*/checkpoints/step_*"), default=0),  # generator steps saved
    "eval_sagan": lambda d: _files(d, "samples/*.png"),  # sample sheets written
    "edit": lambda d: len(list(d.glob("parts/*/[0-9]*.parquet"))),  # chunks written
    "train_recognition": lambda d: len(_steps(d, "models/*/checkpoints/step_*")),  # epochs saved, all models
    "evaluate": lambda d: _files(d, "embeddings/*/*.parquet"),  # models embedded
    "report": lambda d: _files(d, "*.png"),  # figures drawn
}
KILL_AFTER = {"synth": [0, 3, 6, 9, 12, 15], "train_classifier": [0, 1, 2, 3, 4], "train_sagan": [0, 2, 4, 6, 8],
              "eval_sagan": [0], "edit": [0, 1, 2, 3], "train_recognition": [0, 1, 2, 3], "evaluate": [0, 1, 2, 3],
              "report": [0, 1, 2]}


@pytest.fixture(scope="module")
def clean_training(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("clean-train") / "run"
    assert set(run_pipeline(_cfg(work, TRAIN_SETS)).values()) == {"ran"}
    return work


def _same_json(a: Path, b: Path) -> None:
    assert json.loads(a.read_text()) == json.loads(b.read_text()), f"{b} differs from the clean run's {a}"


def _page(html: Path, workdir: Path, timings: bool) -> str:
    """A report page with the workdir's name replaced; without its timing table
    and training curves (which plot seconds per step) when ``timings`` is False."""
    text = html.read_text().replace(str(workdir), "W")
    if not timings:
        text = re.sub(r"<table><tr><th>stage</th>.*?</table>", "", text)
        text = re.sub(r'(<img alt="training curves [^"]*" src=")[^"]*"', r'\1"', text)
    return text


def _outputs_like_clean(stage: str, clean: Path, work: Path, timings: bool = True) -> None:
    """The stage's output equals the clean run's, and the files it points at are
    whole. ``timings``: the stages upstream are the clean run's own (copied), so
    the report's timing table and figures must match as well."""
    want, got = clean / stage / OUTPUT[stage], work / stage / OUTPUT[stage]
    if got.suffix == ".parquet":
        assert_same_manifest(want, got)
    m = mf.read(got) if got.suffix == ".parquet" else None
    if stage == "edit":
        assert_images_usable(m)
        assert not m.df.duplicated(["parent_id", "attribute", "target_value"]).any()
    elif stage == "synth":  # every image, label file and mask: the clean run's bytes
        def files(root: Path) -> dict[str, str]:
            return {p.relative_to(root).as_posix(): sha256(p) for p in root.rglob("*") if p.is_file()}

        assert files(work / "synth" / "data") == files(clean / "synth" / "data")
    elif stage in ("train_classifier", "train_sagan", "train_recognition"):
        for rel in m.df["path"]:
            ckpt.load(m.abspath(rel))  # whole and loadable
    elif stage in ("eval_sagan", "evaluate"):
        _same_json(want, got)
    else:  # report: the same page, but for the workdir's name
        assert _page(got, work, timings) == _page(want, clean, timings)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["synth", "train_classifier", "train_sagan", "eval_sagan", "edit",
                                   "train_recognition", "evaluate", "report"])
def test_stage_killed_at_a_random_point_resumes_to_the_clean_outputs(clean_training, tmp_path, monkeypatch, stage):
    work = tmp_path / "killed"
    _copy_upstream(clean_training, work, TRAIN_STAGES[: TRAIN_STAGES.index(stage)])
    seconds = json.loads((clean_training / stage / DONE).read_text())["seconds"]
    entered = tmp_path / "stage-entered"
    mark = f"{STAGES[stage].target}={entered}"  # the stage function called: its imports are done
    sets = SYNTH_SET if stage == "synth" else ""
    points = KILL_AFTER[stage]
    for attempt in range(3):
        # A point drawn too late lets a fast stage finish first: draw again; the
        # last try kills as the stage starts, which always lands.
        after, delay = RNG.choice(points), RNG.uniform(0.0, seconds / len(points))
        if attempt == 2:
            after, delay = points[0], 0.0
        why = f"{stage} killed {delay:.2f} s after progress {after} (a clean run took {seconds:.1f} s)"
        entered.unlink(missing_ok=True)

        def trigger() -> bool:
            return entered.is_file() and PROGRESS[stage](work / stage) >= after

        out = run_and_kill(augment_cmd(*_cli_args(work, TRAIN_SETS, stage)), child_env(sets, mark=mark), trigger,
                           delay)
        landed = out.killed and not (work / stage / DONE).exists()  # killed while the stage ran
        if landed:
            break
        assert out.killed or out.returncode == 0, out.output[-2000:]
        shutil.rmtree(work / stage)
    assert landed, f"four runs finished the stage before their kill ({why}):\n{out.output[-2000:]}"
    assert (work / stage / INPROGRESS).is_file(), why
    assert_checkpoints_complete(work / stage)

    if stage == "synth":
        monkeypatch.setattr("augment.data.synthfaces.dataset.CHUNK", SYNTH_CHUNK)  # resume the same chunks
    result = run_pipeline(_cfg(work, TRAIN_SETS), until=stage)
    assert result[stage] == "ran" and all(v == "skipped" for k, v in result.items() if k != stage), why
    _no_hidden_temporaries(work / stage)
    _outputs_like_clean(stage, clean_training, work)
    print(f"\n{why}: resumed to the clean outputs")


def _no_hidden_temporaries(folder: Path) -> None:
    left = [p for p in folder.rglob(".*") if TEMPORARY.match(p.name)]
    assert not left, f"temporaries left after the rerun: {left}"


# --------------------------------------------------------------------------- #
# augment run --nproc 2, killed with its workers (slow)
# --------------------------------------------------------------------------- #

DIST_STAGES = ["train_sagan", "edit", "train_recognition"]  # the stages every rank runs
AFTER_DIST = TRAIN_STAGES[TRAIN_STAGES.index("train_sagan"):]


def _two_process_cmd(work: Path) -> list[str]:
    return augment_cmd(*_cli_args(work, TRAIN_SETS, "report"), "--nproc", "2")


@pytest.fixture(scope="module")
def clean_two(clean_training, tmp_path_factory) -> Path:
    """train_sagan .. report of the clean run made again on 2 processes (DDP
    sums differ from one process's in the last bits, so this is the reference)."""
    work = tmp_path_factory.mktemp("clean-two") / "run"
    _copy_upstream(clean_training, work, TRAIN_STAGES[: TRAIN_STAGES.index("train_sagan")])
    out = run_and_kill(_two_process_cmd(work), child_env(), lambda: False, 0.0)
    assert out.returncode == 0, out.output[-3000:]
    return work


@pytest.mark.slow
def test_two_process_run_killed_with_its_workers_resumes_to_the_clean_outputs(clean_two, clean_training, tmp_path):
    work = tmp_path / "killed"
    _copy_upstream(clean_training, work, TRAIN_STAGES[: TRAIN_STAGES.index("train_sagan")])
    for attempt in range(3):
        stage = RNG.choice(DIST_STAGES)
        after = RNG.choice(KILL_AFTER[stage])
        seconds = json.loads((clean_two / stage / DONE).read_text())["seconds"]
        delay = RNG.uniform(0.0, seconds / len(KILL_AFTER[stage]))
        if attempt == 2:  # as the stage starts: always lands
            after, delay = KILL_AFTER[stage][0], 0.0
        why = f"--nproc 2 run killed in {stage}, {delay:.2f} s after progress {after} (clean: {seconds:.1f} s)"

        def trigger() -> bool:
            return (work / stage / INPROGRESS).is_file() and PROGRESS[stage](work / stage) >= after

        out = run_and_kill(_two_process_cmd(work), child_env(), trigger, delay)
        landed = out.killed and not (work / stage / DONE).exists()
        if landed:
            break
        assert out.killed or out.returncode == 0, out.output[-2000:]
        for s in AFTER_DIST:
            shutil.rmtree(work / s, ignore_errors=True)
    assert landed, f"three runs finished {stage} before their kill ({why}):\n{out.output[-2000:]}"
    for s in AFTER_DIST:
        assert_checkpoints_complete(work / s)

    out = run_and_kill(_two_process_cmd(work), child_env(), lambda: False, 0.0)  # the lock is taken over
    assert out.returncode == 0, f"{why}:\n{out.output[-3000:]}"
    for s in AFTER_DIST:
        _no_hidden_temporaries(work / s)
        _outputs_like_clean(s, clean_two, work, timings=False)  # stages rerun after the kill took other times
    print(f"\n{why}: resumed to the clean outputs")


def test_latest_skips_checkpoints_whose_files_are_cut_short(tmp_path):
    """Folders under their final name but damaged afterwards (a copy cut short, a
    disk that lost data) are skipped, newest first, down to the last whole one."""
    import torch

    net = torch.nn.Linear(8, 8)
    for s in range(1, 6):
        ckpt.save(tmp_path / f"step_{s}", {"net": net.state_dict()}, {"step": s})
    w5 = tmp_path / "step_5" / ckpt.WEIGHTS
    w5.write_bytes(w5.read_bytes()[:-7])  # truncated weights, metadata intact
    (tmp_path / "step_4" / ckpt.WEIGHTS).unlink()  # weights missing
    (tmp_path / "step_3" / ckpt.META).write_text('{"format_version": 1, "comp')  # metadata cut short
    assert ckpt.latest(tmp_path).name == "step_2"
    for s in (5, 4, 3):
        with pytest.raises(ckpt.CheckpointError):
            ckpt.load(tmp_path / f"step_{s}")
    w2 = tmp_path / "step_2" / ckpt.WEIGHTS
    w2.write_bytes(b"\0" * w2.stat().st_size)  # right size, zeroed (a lost page): the header fails
    assert ckpt.latest(tmp_path).name == "step_1"
