"""Dataset errors that name the file (and line) at fault."""

from __future__ import annotations

from pathlib import Path


class DatasetError(Exception):
    """A dataset file is missing or malformed; the message names file and line."""


def missing_file(path: Path, what: str) -> DatasetError:
    return DatasetError(f"{path}: required file not found ({what})")
