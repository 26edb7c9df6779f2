"""Files written atomically, and write errors that name their file. Standard library only:
every layer above may use it (docs/ARCHITECTURE.md).

Every write here is atomic: the data goes to a hidden temporary in the same
folder (``.<name>.tmp-<pid>[<suffix>]``, a name the pipeline runner removes
after a crash), is fsynced, then renamed over the final name. Bulk images
(edits, aligned crops: thousands per stage) skip the per-file fsync
(``fsync=False``, ~4 ms a file on this machine's ext4): their stage calls
``sync_all()`` once before it writes the manifest part that lists them, so a
part on disk never names an image that a power cut could lose. A reader, or a
run resumed after a kill, sees the old file or the whole new one, never part
of one. A failed write removes its temporary and names the final file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any, Callable


@contextlib.contextmanager
def names_file(path):
    """Give an OSError raised inside the block ``path`` as its file name, when it
    has none: Python's write() and close() errors (a full disk) name no file,
    and the one-line error a user sees must say which file could not be written.
    Errors of native writers that are not OSErrors (safetensors reports
    ``... (os error 28)``) become OSErrors with their errno."""
    try:
        yield
    except OSError as e:
        if e.filename is not None:
            raise
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e
    except Exception as e:
        m = re.search(r"os error (\d+)", str(e))
        if m is None or type(e).__name__ != "SafetensorError":
            raise
        code = int(m.group(1))
        raise OSError(code, os.strerror(code), str(path)) from e


def fsync_file(path: Path | str) -> None:
    """Flush ``path``'s data to disk."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def sync_all() -> None:
    """Flush every written file to disk (one call for a batch of ``fsync=False`` writes)."""
    os.sync()


def write_atomic(path: Path | str, write: Callable[[Path], Any], *, suffix: str = "", fsync: bool = True) -> Path:
    """``write(tmp)`` writes the file at ``tmp``, a hidden temporary beside ``path``
    (ending in ``suffix``, for writers that take the format from the name); it
    is fsynced (unless ``fsync`` is False: see the module docstring) and renamed
    to ``path``. The folder must exist."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")
    try:
        with names_file(path):
            write(tmp)
            if fsync:
                fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: Path | str, data: bytes, *, fsync: bool = True) -> Path:
    """``data`` as the file ``path``, atomically."""
    return write_atomic(path, lambda tmp: tmp.write_bytes(data), fsync=fsync)


def write_text(path: Path | str, text: str) -> Path:
    """``text`` as the UTF-8 file ``path``, atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path | str, data: Any, *, indent: int | None = 2, sort_keys: bool = True,
               newline: bool = False) -> Path:
    """``data`` as JSON (``json.dumps`` with ``indent`` and ``sort_keys``; a final
    newline when ``newline``), atomically."""
    return write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys) + ("\n" if newline else ""))
