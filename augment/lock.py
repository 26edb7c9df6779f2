"""The workdir lock: one ``augment run`` at a time on a workdir.

``<workdir>/.lock`` is held with ``flock(2)`` for as long as a run lasts and
holds a JSON record naming its holder: process id, host, command and start
time. A second run that finds the lock held stops at once with
:class:`WorkdirBusy`, whose message names that holder.

The kernel drops a flock when the process holding it dies, ``kill -9``
included, so a lock left by a killed run is taken over by the next run
without any guess about whether the old process still lives (a pid check
would be wrong on another host or after pid reuse). The file itself is never
deleted, only emptied on release: deleting it would let a waiting process lock
the old, unlinked file while a third locks a new one.

Under ``augment run --nproc N`` the launcher takes the lock before it becomes
torchrun, and the descriptor survives the ``exec``; the workers are its
children and run under its lock (:func:`held_by_parent`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("augment")

LOCK_NAME = ".lock"


class WorkdirBusy(Exception):
    """Another process holds the workdir lock (a usage error: exit status 2)."""


@dataclass
class WorkdirLock:
    """A held lock; ``fd`` is None where the filesystem has no locks (nothing is
    held) and where this process runs under its parent's lock (``borrowed``)."""

    path: Path
    fd: int | None
    previous: dict | None = None  # the record of a holder that died without releasing the lock
    borrowed: bool = False  # held by the parent (the --nproc launcher), which exits right after the run

    def release(self) -> None:
        if self.borrowed:
            # The launcher drops the flock when it exits, but runs no code after
            # the workers: empty its record here so the next run does not report
            # it as a run that ended without releasing the lock.
            with open(self.path, "r+b") as fh:
                fh.truncate(0)
            self.borrowed = False
            return
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)  # while still held: nobody reads a record of a run that has ended
        finally:
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = None

    def __enter__(self) -> WorkdirLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _record() -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(["augment", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _parse(data: bytes) -> dict | None:
    try:
        rec = json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) and "pid" in rec else None


def read_holder(path: Path, wait: float = 0.5) -> dict | None:
    """The holder's record in lock file ``path``; None when it is empty or unreadable.

    The holder writes its record just after it takes the lock, so a reader
    that comes in between waits up to ``wait`` s for it.
    """
    t_end = time.monotonic() + wait
    while True:
        try:
            rec = _parse(Path(path).read_bytes())
        except OSError:
            rec = None
        if rec is not None or time.monotonic() >= t_end:
            return rec
        time.sleep(0.05)


def describe(rec: dict | None) -> str:
    if rec is None:
        return "another process (it has not written its name into the lock file)"
    return (f"process {rec.get('pid')} on host {rec.get('host')} "
            f"('{rec.get('command', '?')}', started {rec.get('started', '?')})")


def acquire(workdir: Path | str, *, inheritable: bool = False) -> WorkdirLock:
    """Take ``<workdir>/.lock`` without waiting; :class:`WorkdirBusy` names the holder.

    ``inheritable`` keeps the descriptor, and so the lock, across ``exec``
    (the ``--nproc`` launcher becoming torchrun).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)  # no O_TRUNC: the holder's record stays
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise WorkdirBusy(
                f"workdir {workdir} is in use by {describe(read_holder(path))}; wait for that run to end, "
                f"or give this one another workdir (--set workdir=DIR). The lock is {path}"
            ) from None
        # ENOLCK, EOPNOTSUPP: a filesystem without flock (some network mounts).
        log.warning("cannot lock %s (%s): nothing stops a second run on this workdir", path, e.strerror or e)
        return WorkdirLock(path, None)
    lock = WorkdirLock(path, fd)
    try:
        size = os.fstat(fd).st_size
        lock.previous = _parse(os.pread(fd, size, 0)) if size else None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_record()).encode(), 0)
        if inheritable:
            os.set_inheritable(fd, True)
    except BaseException:
        lock.release()
        raise
    return lock  # the caller reports lock.previous, a run that ended without releasing it


def held_by_parent(workdir: Path | str) -> bool:
    """True when ``<workdir>/.lock`` is held and names this process's parent on
    this host: a torchrun worker whose launcher took the lock for the run."""
    path = Path(workdir) / LOCK_NAME
    rec = read_holder(path, wait=0.0)
    if rec is None or rec.get("pid") != os.getppid() or rec.get("host") != socket.gethostname():
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True  # held, by the parent the record names
    finally:
        os.close(fd)  # also drops the flock if it was free after all
    return False
