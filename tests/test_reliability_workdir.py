"""The whole smoke pipeline on one workdir (slow): two runs started together,
and a real full disk (the workdir on a small tmpfs). Each ends with the
manifests of a clean run of the same config and seed made in this process.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from augment import checkpoint as ckpt
from augment import manifest as mf
from augment.validate import load_config
from augment.pipeline import run_pipeline
from augment.workdir import DONE

from tests.faults import REPO, SMOKE, augment_cmd, child_env

pytestmark = pytest.mark.slow
RNG = random.Random()  # a fresh disk size each run; the one used is in the failure message


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("clean") / "run"
    assert set(run_pipeline(load_config(SMOKE, [f"workdir={work}"])).values()) == {"ran"}
    return work


def _run(work: Path) -> list[str]:
    return augment_cmd("run", str(SMOKE), "--set", f"workdir={work}")


def assert_like_clean(clean: Path, work: Path) -> int:
    """Every stage done, every manifest the clean run's rows bit for bit, every
    referenced image present with its sha256, the JSON results equal; returns
    the number of manifests compared."""
    n = 0
    for marker in sorted(clean.glob(f"*/{DONE}")):
        stage = marker.parent.name
        got = json.loads((work / stage / DONE).read_text())  # the stage is done
        for key, out in json.loads(marker.read_text())["outputs"].items():
            path = work / stage / out["file"]
            assert mf.file_digest(path) == got["outputs"][key]["sha256"], f"{path}: not the file its marker records"
            if path.suffix == ".parquet":
                a, b = mf.read(clean / stage / out["file"]), mf.read(path)
                pd.testing.assert_frame_equal(a.df, b.df, check_exact=True, obj=str(path))
                n += 1
                if "sha256" in b.df.columns:  # images: the files themselves
                    for rel, digest in zip(b.df["path"], b.df["sha256"]):
                        assert not isinstance(digest, str) or mf.file_digest(b.abspath(rel)) == digest, rel
            elif path.suffix == ".json":
                assert json.loads(path.read_text()) == json.loads((clean / stage / out["file"]).read_text()), path
    return n


def assert_nothing_half_written(work: Path) -> None:
    """What a later run could pick up is whole: done stages' outputs match their
    markers, every visible manifest reads, every visible checkpoint is complete."""
    for marker in work.glob(f"*/{DONE}"):
        for out in json.loads(marker.read_text())["outputs"].values():
            assert mf.file_digest(marker.parent / out["file"]) == out["sha256"], marker
    for p in work.rglob("*.parquet"):
        if not any(part.startswith(".") for part in p.relative_to(work).parts):
            pq.read_table(p)  # whole (a stage's own parts, caches)
    for p in work.glob("*/*.parquet"):  # a stage's manifests under their final names
        mf.read(p)
    for meta in work.rglob(ckpt.META):
        d = meta.parent
        if not any(part.startswith(".") for part in d.relative_to(work).parts) and d.name.startswith("step_"):
            ckpt.read_meta(d)
            ckpt.verify_weights(d)


def test_two_runs_started_together_on_one_workdir(clean, tmp_path):
    """One runs to the end; the other exits 2 at once naming the first; the
    finished manifests are a clean run's."""
    work = tmp_path / "work"
    t0 = time.monotonic()
    procs = [subprocess.Popen(_run(work), cwd=REPO, env=child_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    ended: dict[int, float] = {}
    while len(ended) < 2:
        for i, p in enumerate(procs):
            if i not in ended and p.poll() is not None:
                ended[i] = time.monotonic() - t0
        time.sleep(0.05)
    outs = [p.communicate() for p in procs]
    loser = min(ended, key=ended.get)
    winner = 1 - loser
    assert procs[winner].returncode == 0, outs[winner][1][-3000:]
    assert procs[loser].returncode == 2, outs[loser][1][-3000:]
    err = outs[loser][1].strip()
    assert err.count("\n") == 0, err  # one line
    assert err.startswith(f"Error: workdir {work} is in use by process {procs[winner].pid} on host "), err
    n = assert_like_clean(clean, work)
    print(f"\ntwo runs together: the second exited 2 after {ended[loser]:.2f} s, the first finished after "
          f"{ended[winner]:.1f} s; {n} manifests equal the clean run's")


@pytest.fixture
def small_disk(tmp_path):
    """A folder on its own tmpfs; yields (folder, resize(kib))."""
    disk = tmp_path / "disk"
    disk.mkdir()

    def mount(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["mount", *args], capture_output=True, text=True)

    r = mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk))
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({(r.stderr or r.stdout).strip()}); the real full-disk test "
                    "needs root (or CAP_SYS_ADMIN) and a kernel that allows the mount")

    def resize(kib: int) -> None:
        r = mount("-o", f"remount,size={kib}k", str(disk))
        assert r.returncode == 0, r.stderr

    try:
        yield disk, resize
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.parametrize("fill", [(0.05, 0.35), (0.35, 0.65), (0.65, 0.95)], ids=["early", "middle", "late"])
def test_a_real_full_disk_then_room_made(clean, small_disk, fill):
    """The run stops on the full disk with one line naming the file; nothing
    half-written is left where a rerun would pick it up; after making room the
    rerun ends with the clean run's manifests."""
    disk, resize = small_disk
    clean_kib = sum(p.stat().st_size for p in clean.rglob("*") if p.is_file()) // 1024
    kib = int(clean_kib * RNG.uniform(*fill))
    why = f"a {kib} KiB disk (a clean run writes {clean_kib} KiB)"
    resize(kib)
    work = disk / "work"
    proc = subprocess.run(_run(work), cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 1, f"{why}:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, f"{why}:\n{proc.stderr[-3000:]}"
    errors = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.startswith("Error:")]
    # one error, on a line of its own, the last thing printed
    assert len(errors) == 1 and proc.stderr.rstrip().endswith(errors[0]), f"{why}:\n{proc.stderr[-3000:]}"
    assert "No space left on device" in errors[0] and str(work) in errors[0], f"{why}: {errors[0]}"
    assert_nothing_half_written(work)

    resize(4 * clean_kib)  # room made
    rerun = subprocess.run(_run(work), cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, f"{why}:\n{rerun.stderr[-3000:]}"
    n = assert_like_clean(clean, work)
    print(f"\n{why}: {errors[0]}\nrerun after making room: {n} manifests equal the clean run's")
