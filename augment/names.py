"""Names from files and the command line, turned into path components safely.

Manifests, label maps, pairs files, CSV files and checkpoints travel between
people, so every value read from one is untrusted. Wherever such a value (or a
command-line name) becomes part of a file name, it goes through ``component``,
which returns it unchanged when it is ONE plain path component and refuses it
otherwise, so that ``folder / component(name)`` always lies directly inside
``folder``. Refused: anything that is not a string, the empty string, ``.``
and ``..``, a ``/`` or ``\\`` (the path separators of POSIX and Windows, so an
exported tree stays safe on both), control and format characters (NUL, line
breaks, ANSI escapes, bidirectional overrides, lone surrogates), a leading
``.`` (a hidden file, or one the tool's own temporaries ``.<name>.tmp-<pid>``
could collide with) and names over ``MAX_BYTES`` bytes in UTF-8.

The module is stdlib-only (plus the project's DatasetError), so any part of
the package may import it.

``SAMPLE_ID`` is the form every sample id the tool writes has
(``augment.manifest.sample_id``, the edit and oracle ids: 16 lowercase hex
digits of a SHA-1); manifests are checked against it when read.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from augment.data.errors import DatasetError

# NAME_MAX is 255 bytes on the common filesystems; the tool adds up to ~40
# bytes to a name (``.<name>.tmp-<pid>.png`` temporaries, ``-<identity>``
# suffixes), so a name must leave that much room.
MAX_BYTES = 200

SAMPLE_ID = re.compile(r"[0-9a-f]{16}")

# Unicode categories refused anywhere in a name: Cc control (NUL, newline,
# ESC...), Cf format (bidi overrides, zero-width joiners), Cs lone surrogates
# (not encodable on disk), Zl / Zp line and paragraph separators.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


class UnsafeName(DatasetError, ValueError):
    """A value that cannot be used as a file or folder name; the message names
    where it came from and why. A DatasetError, so the CLI prints it as one line
    (exit 1); command-line options turn it into a usage error (exit 2)."""


def problem(name: object) -> str | None:
    """Why ``name`` is not one safe path component, or None when it is."""
    if not isinstance(name, str):
        return f"not a string but {type(name).__name__}"
    if name == "":
        return "empty"
    if name in (".", ".."):
        return "a relative folder reference"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    for ch in name:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            return f"contains the control or format character U+{ord(ch):04X}"
    if name.startswith("."):
        return "starts with '.' (a hidden file)"
    size = len(name.encode("utf-8"))
    if size > MAX_BYTES:
        return f"{size} bytes long, over the {MAX_BYTES}-byte limit"
    return None


def component(name: object, what: str = "name") -> str:
    """``name`` when it is one safe path component (see the module docstring);
    otherwise UnsafeName, whose message starts with ``what`` (say, the file and
    row the name came from)."""
    why = problem(name)
    if why is not None:
        raise UnsafeName(f"{printable(what)} {shown(name)} cannot be a file name: {why}")
    return name  # type: ignore[return-value]


def child(folder: Path | str, name: object, what: str = "name") -> Path:
    """``folder / name``, refused (UnsafeName) unless ``name`` is one safe component."""
    return Path(folder) / component(name, what)


def is_sample_id(value: object) -> bool:
    """True for a sample id of the form the tool writes (16 lowercase hex digits)."""
    return isinstance(value, str) and SAMPLE_ID.fullmatch(value) is not None


def printable(text: str) -> str:
    """``text`` with its control and format characters escaped (``\\n``, ``\\x1b``...):
    a file name quoted in an error message keeps it on one line, and cannot
    move the terminal's cursor."""
    return "".join(ascii(c)[1:-1] if unicodedata.category(c) in _REFUSED_CATEGORIES else c for c in text)


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, so that a hostile name (a
    megabyte of text, escapes) keeps the error message on one short line (repr
    escapes what is not printable: line breaks, ESC, bidi overrides, surrogates)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
