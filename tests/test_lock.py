"""The workdir lock: a second run on a workdir in use stops at once naming the
holder; a lock left by a killed run is taken over; read-only commands run
regardless; the --nproc launcher's workers run under their parent's lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from augment import lock
from augment import manifest as mf

from tests.faults import SMOKE, augment_cmd, child_env

REPO = Path(__file__).resolve().parents[1]


def test_second_acquire_names_the_holder(tmp_path):
    with lock.acquire(tmp_path / "work") as held:
        assert held.fd is not None
        rec = json.loads((tmp_path / "work" / lock.LOCK_NAME).read_text())
        assert rec["pid"] == os.getpid() and rec["host"] == socket.gethostname()
        with pytest.raises(lock.WorkdirBusy) as e:
            lock.acquire(tmp_path / "work")
    msg = str(e.value)
    assert f"process {os.getpid()} on host {socket.gethostname()}" in msg and str(tmp_path / "work") in msg
    assert (tmp_path / "work" / lock.LOCK_NAME).read_text() == ""  # released: emptied, not deleted
    with lock.acquire(tmp_path / "work") as again:  # free again
        assert again.previous is None  # a clean release leaves no record to take over


HOLD_AND_DIE = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from augment import lock
lock.acquire({work!r})
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path):
    work = tmp_path / "work"
    script = tmp_path / "die.py"
    script.write_text(HOLD_AND_DIE.format(repo=str(REPO), work=str(work)))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    dead = json.loads((work / lock.LOCK_NAME).read_text())  # its record stays behind
    with lock.acquire(work) as held:  # but the kernel dropped its flock
        assert held.previous["pid"] == dead["pid"]
        assert json.loads((work / lock.LOCK_NAME).read_text())["pid"] == os.getpid()


HOLD_AND_ASK_CHILD = """
import subprocess, sys
sys.path.insert(0, {repo!r})
from augment import lock
lock.acquire({work!r}, inheritable=True)
child = "import sys; sys.path.insert(0, {repo!r}); from augment import lock; print(lock.held_by_parent({work!r}))"
print(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True).stdout.strip())
"""


def test_workers_run_under_their_launchers_lock(tmp_path):
    work = tmp_path / "work"
    script = tmp_path / "launcher.py"
    script.write_text(HOLD_AND_ASK_CHILD.format(repo=str(REPO), work=str(work)))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True", out.stderr
    assert not lock.held_by_parent(work)  # the lock is free now; and this process's parent never held it
    with lock.acquire(work):
        assert not lock.held_by_parent(work)  # held, but by this process, not its parent


def test_augment_run_on_a_busy_workdir_exits_2_naming_the_holder(tmp_path):
    work = tmp_path / "work"
    with lock.acquire(work):
        t0 = time.monotonic()
        proc = subprocess.run(augment_cmd("run", str(SMOKE), "--set", f"workdir={work}"), env=child_env(),
                              capture_output=True, text=True, timeout=60, cwd=REPO)
        seconds = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and line.startswith(f"Error: workdir {work} is in use by process {os.getpid()} on host ")
    assert not (work / "synth").exists() and not (work / "augment.log").exists()  # nothing was touched
    print(f"busy workdir: exit 2 after {seconds:.2f} s")


def test_read_only_commands_do_not_need_the_lock(tmp_path):
    work = tmp_path / "work"
    row = {"sample_id": mf.sample_id("folder", "a.png"), "path": "a.png", "identity": 7, "split": "train", "source": "folder"}
    mf.write(mf.Manifest("images", mf.frame("images", [row]), work), work / "read" / "source.parquet")
    with lock.acquire(work):
        out = {}
        for cmd, args in (("stages", [str(SMOKE), "--set", f"workdir={work}"]),
                          ("inspect", [str(work / "read" / "source.parquet")])):
            proc = subprocess.run(augment_cmd(cmd, *args), env=child_env(), capture_output=True, text=True,
                                  timeout=60, cwd=REPO)
            assert proc.returncode == 0, proc.stderr
            out[cmd] = proc.stdout
    assert out["stages"].splitlines()[0].split()[:3] == ["synth", "not", "run"]
    assert "rows         1" in out["inspect"], out["inspect"]


def test_filesystem_without_locks_warns_and_runs(tmp_path, monkeypatch, caplog):
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with caplog.at_level("WARNING", logger="augment"):
        held = lock.acquire(tmp_path)
    assert held.fd is None and "nothing stops a second run" in caplog.text
    held.release()


def test_lock_holder_is_described_even_before_it_writes_its_name(tmp_path):
    (tmp_path / lock.LOCK_NAME).write_text("")
    assert "has not written its name" in lock.describe(lock.read_holder(tmp_path / lock.LOCK_NAME, wait=0.1))
