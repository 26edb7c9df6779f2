"""CSV files from elsewhere (identity lists, attribute tables): any bytes, any field length.

``read_rows`` reads one whole, so that an unreadable row or text that is not
UTF-8 is a ``DatasetError`` naming the file and line, never a traceback.
"""

from __future__ import annotations

import csv
from pathlib import Path

from augment.data.errors import DatasetError


def read_rows(path: Path, line_style: str = "colon") -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """(header or None for an empty file, [(line number, fields)] of the rows after it that are
    not blank). ``line_style``: how errors cite a line, ``colon`` (``file:3:``) or ``word``
    (``file: line 3:``), as the caller's own messages do."""
    reader = None
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            rows = [(no, rec) for no, rec in enumerate(reader, 2) if rec and "".join(rec).strip()]
    except csv.Error as e:
        at = reader.line_num if reader is not None else 0
        where = f"{path}:{at}:" if line_style == "colon" else f"{path}: line {at}:"
        raise DatasetError(f"{where} not a readable CSV row: {e}") from None
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return header, rows
