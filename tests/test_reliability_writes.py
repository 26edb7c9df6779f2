"""Write failures part-way (a full disk, simulated by an injected ENOSPC after
some bytes went out): the run stops with one line naming the file and exit
status 1; no manifest or checkpoint is left corrupted under its final name
(the previous one stays, or there is none); no temporary file is left; the
stage is not marked done, and a rerun once space is back completes with the
rows of an uninterrupted run. The manifest writer's own unit test is
test_manifest.py::test_atomic_write_leaves_old_file_when_interrupted.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from augment import checkpoint as ckpt
from augment import manifest as mf
from augment.align import chunk as align_chunk
from augment.align import dataset as align_stage
from augment.cli import cli
from augment.workdir import DONE


def _disk_full(path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _dataset(root: Path, people: int = 3, per: int = 4) -> Path:
    """An ``<identity>/<image>`` tree in LFW's naming, plus a View 1 pairs file."""
    rng = np.random.default_rng(0)
    names = [f"Person_{chr(65 + k)}" for k in range(people)]
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(1, per + 1):
            Image.fromarray(rng.integers(0, 255, (50, 40, 3), dtype=np.uint8)).save(root / name / f"{name}_{i:04d}.jpg")
    same = [f"{n} 1 2" for n in names]
    diff = [f"{names[k]} 1 {names[(k + 1) % people]} 1" for k in range(people)]
    (root / "pairs.txt").write_text(f"{people}\n" + "\n".join(same + diff) + "\n")
    return root


def _pipeline(tmp_path: Path, name: str, stages: str) -> Path:
    data = _dataset(tmp_path / "data") if not (tmp_path / "data").exists() else tmp_path / "data"
    p = tmp_path / f"{name}.yaml"
    p.write_text(f"name: w\nworkdir: {tmp_path / name}\ndevice: cpu\nstages: [{stages}]\n"
                 f"data:\n  train: {{format: folder, root: '{data}', align: none}}\n"
                 f"  eval: {{format: lfw, root: '{data}', pairs: pairs.txt, align: none}}\n"
                 "align: {workers: 1, size: 32}\n")
    return p


def _no_temporaries(folder: Path) -> None:
    left = [p for p in folder.rglob(".*") if ".tmp" in p.name]
    assert not left, f"temporary files left behind: {left}"


def _every_manifest_reads(folder: Path) -> None:
    for p in folder.rglob("*.parquet"):
        mf.read(p)  # raises on a truncated or foreign file


def test_disk_full_while_the_runner_writes_a_stage_manifest(tmp_path, monkeypatch):
    p = _pipeline(tmp_path, "run", "read")
    real = pq.write_table
    calls = []

    def half_then_enospc(table, where, **kw):
        calls.append(where)
        if len(calls) == 2:  # the second of read's three manifests: half its bytes, then no space
            real(table, where, **kw)
            Path(where).write_bytes(Path(where).read_bytes()[: Path(where).stat().st_size // 2])
            raise _disk_full(where)
        return real(table, where, **kw)

    monkeypatch.setattr(pq, "write_table", half_then_enospc)
    r = CliRunner().invoke(cli, ["run", str(p)])
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and "No space left on device" in r.output
    assert "eval_source.parquet: cannot write the manifest" in r.output
    stage_dir = tmp_path / "run" / "read"
    assert not (stage_dir / DONE).exists()
    assert not (stage_dir / "eval_source.parquet").exists()  # none, rather than a half-written one
    _every_manifest_reads(stage_dir)
    _no_temporaries(stage_dir)

    monkeypatch.setattr(pq, "write_table", real)  # space is back
    r = CliRunner().invoke(cli, ["run", str(p)])
    assert r.exit_code == 0, r.output
    for name in ("source", "eval_source", "pairs"):
        assert len(mf.read(stage_dir / f"{name}.parquet")) > 0


def test_disk_full_while_align_writes_images_then_the_rerun_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(align_stage, "CHUNK_ROWS", 4)
    r = CliRunner().invoke(cli, ["run", str(_pipeline(tmp_path, "clean", "read, align"))])
    assert r.exit_code == 0, r.output

    real, calls = align_chunk.write_bytes, []

    def enospc_at_the_seventh(path, data, **kwargs):
        calls.append(path)
        if len(calls) == 7:  # the second chunk's third image
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(data[: len(data) // 3])  # a partial file under the final name
            raise _disk_full(path)
        return real(path, data, **kwargs)

    monkeypatch.setattr(align_chunk, "write_bytes", enospc_at_the_seventh)
    p = _pipeline(tmp_path, "full", "read, align")
    r = CliRunner().invoke(cli, ["run", str(p)])
    assert r.exit_code == 1, r.output
    assert "Error: I/O error: [Errno 28] No space left on device" in r.output and str(calls[-1]) in r.output
    stage_dir = tmp_path / "full" / "align"
    assert not (stage_dir / DONE).exists() and not list(stage_dir.glob("*.parquet"))
    assert len(list((stage_dir / "parts" / "train").glob("[0-9]*.json"))) == 1  # the first chunk is kept

    monkeypatch.setattr(align_chunk, "write_bytes", real)
    r = CliRunner().invoke(cli, ["run", str(p)])
    assert r.exit_code == 0, r.output
    for name in ("aligned", "eval_aligned", "rejects"):
        clean = mf.read(tmp_path / "clean" / "align" / f"{name}.parquet").df
        got = mf.read(stage_dir / f"{name}.parquet").df
        pd.testing.assert_frame_equal(clean, got)
    aligned = mf.read(stage_dir / "aligned.parquet")
    for rel, digest in zip(aligned.df["path"], aligned.df["sha256"]):  # the partial file was rewritten
        assert mf.file_digest(aligned.abspath(rel)) == digest


def test_disk_full_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    import safetensors.torch as st

    net = torch.nn.Linear(3, 2)
    ckpt.save(tmp_path / "step_1", {"net": net.state_dict()}, {"step": 1})
    before = (tmp_path / "step_1" / ckpt.WEIGHTS).read_bytes()
    real = st.save_file

    def half_then_enospc(tensors, filename, *a, **k):
        real(tensors, filename, *a, **k)
        Path(filename).write_bytes(Path(filename).read_bytes()[:100])
        raise _disk_full(filename)

    monkeypatch.setattr(st, "save_file", half_then_enospc)
    with torch.no_grad():
        net.weight.add_(1)
    for target in ("step_2", "step_1"):  # a new checkpoint, and overwriting the existing one
        with pytest.raises(OSError, match="No space left"):
            ckpt.save(tmp_path / target, {"net": net.state_dict()}, {"step": int(target[-1])})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_1"]  # no step_2, no temporary folder
    assert (tmp_path / "step_1" / ckpt.WEIGHTS).read_bytes() == before
    assert ckpt.latest(tmp_path).name == "step_1"
    states, meta = ckpt.load(tmp_path / "step_1")
    assert meta["step"] == 1 and not torch.equal(states["net"]["weight"], net.weight)


# --------------------------------------------------------------------------- #
# Leftover temporaries of writes cut short go when the stage next runs
# --------------------------------------------------------------------------- #

LEFTOVERS = [".pc.parquet.tmp-4242", ".done.json.tmp-4242", "images/.x.png.tmp", "images/.y.png.tmp-4242.png",
             "checkpoints/.step_2.tmp-4242/weights.safetensors", "checkpoints/.step_1.old-4242/meta.json"]
KEPT = ["partial.txt", "images/.hidden-but-not-temporary", "checkpoints/step_1/meta.json"]


def _interrupted_stage(cfg, inputs, run_dir):
    first = run_dir.parent / "interrupted-once"
    if not first.exists():  # the first run stops part-way, keeping resumable partial work
        first.write_text("")
        (run_dir / "partial.txt").write_text("half")
        raise KeyboardInterrupt
    return {"pc": mf.Manifest("pairs", mf.frame("pairs", [{"fold": 0, "path_a": "a", "path_b": "b", "same": True}]),
                              run_dir)}


@pytest.mark.parametrize("config", ["same", "changed"])
def test_leftover_temporaries_are_removed_when_the_stage_next_runs(tmp_path, monkeypatch, config):
    from augment.validate import load_config
    from augment.pipeline import run_pipeline
    from augment.stages import STAGES, Stage

    monkeypatch.setitem(STAGES, "t", Stage(name="t", target=_interrupted_stage, sections=("synth",),
                                           outputs={"pc": "pairs"}))
    p = tmp_path / "p.yaml"
    p.write_text(f"name: t\nworkdir: {tmp_path / 'work'}\nstages: [t]\n")
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(load_config(p, [], check_paths=False))
    stage_dir = tmp_path / "work" / "t"
    for rel in LEFTOVERS + KEPT[1:]:  # what a kill -9 part-way through those writes leaves
        (stage_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (stage_dir / rel).write_text("x")
    sets = [] if config == "same" else ["synth.identities=3"]  # resume, or start clean
    assert run_pipeline(load_config(p, sets, check_paths=False)) == {"t": "ran"}
    _no_temporaries(stage_dir)
    for rel in LEFTOVERS:
        assert not (stage_dir / rel).exists(), rel
    assert not list(stage_dir.glob("checkpoints/.step_*"))  # the temporary folders too, not just their files
    left = {q.relative_to(stage_dir).as_posix() for q in stage_dir.rglob("*") if q.is_file()}
    if config == "same":  # resumed: the partial work and every other file stay
        assert left == set(KEPT) | {"pc.parquet", ".done.json"}
    else:  # another fingerprint: the folder was cleared before the stage ran
        assert left == {"pc.parquet", ".done.json"}


def _write_fails_without_a_file_name(cfg, inputs, run_dir):
    path = run_dir / "images" / "a.png"
    tmp = path.with_name(f".{path.name}.tmp")  # noqa: F841 - a frame holds both, as in an atomic write
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what tmp.write_bytes raises on a full disk


def _native_write_fails(cfg, inputs, run_dir):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # a native writer's error: no path in any frame


def test_a_write_error_without_a_file_name_gets_one(tmp_path, monkeypatch):
    """Python's write() errors carry no file name; the runner names the file the
    failing frame was writing (its final name, not the temporary), else the
    stage and its folder."""
    from augment.validate import load_config
    from augment.pipeline import PipelineError, run_pipeline
    from augment.stages import STAGES, Stage

    p = tmp_path / "p.yaml"
    p.write_text(f"name: t\nworkdir: {tmp_path / 'work'}\nstages: [t]\n")
    monkeypatch.setitem(STAGES, "t", Stage(name="t", target=_write_fails_without_a_file_name, sections=(),
                                           outputs={"pc": "pairs"}))
    with pytest.raises(OSError) as e:
        run_pipeline(load_config(p, [], check_paths=False))
    assert (e.value.errno, e.value.filename) == (errno.ENOSPC, str(tmp_path / "work" / "t" / "images" / "a.png"))

    monkeypatch.setitem(STAGES, "t", Stage(name="t", target=_native_write_fails, sections=(), outputs={"pc": "pairs"}))
    with pytest.raises(PipelineError) as e:
        run_pipeline(load_config(p, [], check_paths=False))
    assert str(e.value) == f"stage 't' could not write in {tmp_path / 'work' / 't'}: [Errno 28] No space left on device"
