"""Fault injection for the reliability tests.

Run as a script, ``python tests/faults.py ARGS...`` is ``augment ARGS...``
(``--script FILE`` runs a Python file instead) with faults taken from the
environment:

- ``AUGMENT_FAULT_SET="module:attr=literal;..."`` sets module attributes first
  (e.g. ``augment.align.dataset:CHUNK_ROWS=8``: many resume points in a toy run);
- ``AUGMENT_FAULT_KILL="module:func:N:when[:text]"`` SIGKILLs the process at the
  Nth call of ``module.func`` (counting only calls whose arguments contain
  ``text``), ``before`` or ``after`` the call: a machine lost at an exact point;
- ``AUGMENT_FAULT_MARK="module:func=FILE"`` creates FILE when ``module.func`` is
  first called (a stage function entered, its imports done), so that a test
  can time a kill from there.

Imported by the tests, it starts such a child in its own session and kills the
whole process group (workers included) with SIGKILL once a trigger holds plus
a random delay: ``kill -9`` of a run at a random point.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "pipelines" / "smoke.yaml"


def _apply_sets(spec: str) -> None:
    for item in filter(None, (s.strip() for s in spec.split(";"))):
        target, value = item.split("=", 1)
        module, attr = target.split(":")
        setattr(importlib.import_module(module), attr, ast.literal_eval(value))


def _apply_kill(spec: str) -> None:
    module, func, nth, when, *text = spec.split(":", 4)
    mod = importlib.import_module(module)
    real = getattr(mod, func)
    want, calls = int(nth), [0]

    def wrapper(*args, **kwargs):
        hit = not text or text[0] in repr(args) + repr(kwargs)
        calls[0] += hit
        if hit and calls[0] == want and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        out = real(*args, **kwargs)
        if hit and calls[0] == want and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    setattr(mod, func, wrapper)


def _apply_mark(spec: str) -> None:
    target, file = spec.split("=", 1)
    module, func = target.split(":")
    mod = importlib.import_module(module)
    real = getattr(mod, func)

    def wrapper(*args, **kwargs):
        Path(file).touch()
        return real(*args, **kwargs)

    setattr(mod, func, wrapper)


def main() -> None:
    _apply_sets(os.environ.get("AUGMENT_FAULT_SET", ""))
    if os.environ.get("AUGMENT_FAULT_KILL"):
        _apply_kill(os.environ["AUGMENT_FAULT_KILL"])
    if os.environ.get("AUGMENT_FAULT_MARK"):
        _apply_mark(os.environ["AUGMENT_FAULT_MARK"])
    if sys.argv[1:2] == ["--script"]:  # a test's own Python script instead of the CLI
        runpy.run_path(sys.argv[2], run_name="__main__")
        return
    from augment.cli import cli

    cli.main(args=sys.argv[1:], prog_name="augment")


# --------------------------------------------------------------------------- #
# Helpers for the tests
# --------------------------------------------------------------------------- #


def child_env(sets: str = "", kill: str = "", mark: str = "") -> dict[str, str]:
    # The thread count stays the test process's own: float sums depend on it, and a
    # resumed run is compared bit for bit with a clean run made in this process.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "AUGMENT_FAULT_SET": sets, "AUGMENT_FAULT_KILL": kill,
           "AUGMENT_FAULT_MARK": mark}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def augment_cmd(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


@dataclass
class Outcome:
    killed: bool  # SIGKILL sent while the child still ran
    returncode: int
    delay: float  # seconds between the trigger and the kill
    output: str


def run_and_kill(cmd: list[str], env: dict, trigger: Callable[[], bool], delay: float,
                 timeout: float = 600) -> Outcome:
    """Start ``cmd`` in a new session; once ``trigger()`` holds wait ``delay`` s and
    SIGKILL its whole process group. ``killed`` is False when it ended first."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, text=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    t_end = time.monotonic() + timeout
    killed = False
    while proc.poll() is None and time.monotonic() < t_end:
        if trigger():
            time.sleep(delay)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
            break
        time.sleep(0.02)
    if proc.poll() is None and not killed:  # the trigger never held: let it finish (or time out)
        try:
            proc.wait(timeout=max(1.0, t_end - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    try:  # worker processes that outlived the leader: the machine is gone for them too
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    reader.join(timeout=10)
    return Outcome(killed, proc.returncode, delay, "".join(out))


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


if __name__ == "__main__":
    main()
