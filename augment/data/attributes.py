"""Per-image attribute values from a CSV: ``image,attribute,value``.

The format `augment pairs --attributes-from` and the ``evaluate`` stage read, and
what SynthFaces writes for its LFW part (``lfw/lfw_attributes.csv``). ``image``
is a path relative to the images' root (as a pairs file names it, e.g.
``Name/Name_0001.jpg``); ``value`` is 1 / 0 (or CelebA's 1 / -1). Several
attributes may share one file, one row each. Lookups match the path exactly,
else by its stem (``.jpg`` in the CSV finds the ``.png`` crop), as the LFW
reader does.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from augment.data.celeba import CELEBA_ATTRIBUTES, attribute_index
from augment.data.csvfile import read_rows
from augment.data.errors import DatasetError

COLUMNS = ("image", "attribute", "value")


def read_csv(path: Path | str) -> dict[str, dict[str, int]]:
    """``{image: {attribute: 0 | 1}}``; an error names the file and line of a bad row."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: attribute file not found")
    out: dict[str, dict[str, int]] = {}
    header, rows = read_rows(path, line_style="word")
    if header is None or tuple(h.strip() for h in header) != COLUMNS:
        raise DatasetError(f"{path}: line 1 must be the header 'image,attribute,value', got {header}")
    for line, row in rows:
        if len(row) != 3:
            raise DatasetError(f"{path}: line {line}: expected 3 fields (image,attribute,value), "
                               f"got {len(row)}")
        image, attribute, value = (x.strip() for x in row)
        try:
            attribute_index(attribute)
        except DatasetError as e:
            raise DatasetError(f"{path}: line {line}: {e}") from None
        if value not in ("1", "0", "-1"):
            raise DatasetError(f"{path}: line {line}: value must be 1 or 0 (or -1), got {value!r}")
        out.setdefault(image, {})[attribute] = int(value == "1")
    if not out:
        raise DatasetError(f"{path}: no attribute rows")
    return out


class AttributeTable:
    """Attribute values of images, looked up by path or by path stem."""

    def __init__(self, values: dict[str, dict[str, int]], where: str):
        self.values, self.where = values, where
        self._by_stem = {os.path.splitext(k)[0]: v for k, v in values.items()}

    @classmethod
    def from_csv(cls, path: Path | str) -> "AttributeTable":
        return cls(read_csv(path), str(path))

    def get(self, image: str, attribute: str) -> int | None:
        got = self.values.get(image) or self._by_stem.get(os.path.splitext(image)[0]) or {}
        return got.get(attribute)

    def column(self, images, attribute: str) -> np.ndarray:
        """(N,) int8: 1, 0, or -1 where the image has no value for ``attribute``."""
        return np.array([(-1 if (v := self.get(p, attribute)) is None else v) for p in images], dtype=np.int8)

    def vectors(self, images) -> list[np.ndarray | None]:
        """CelebA's 40-value rows (1 / -1; attributes not in the table are -1) per image;
        None for an image with no row at all (unknown attributes)."""
        out: list[np.ndarray | None] = []
        for p in images:
            got = self.values.get(p) or self._by_stem.get(os.path.splitext(p)[0])
            if got is None:
                out.append(None)
                continue
            out.append(np.array([1 if got.get(a, 0) else -1 for a in CELEBA_ATTRIBUTES], dtype=np.int8))
        return out


def from_vectors(attributes, attribute: str) -> np.ndarray:
    """The images manifest's ``attributes`` column (40 values of 1 / -1, or null)
    -> (N,) int8 of 1, 0, or -1 where unknown: null (None, or NaN where pandas
    filled a missing value) or too short to hold ``attribute``."""
    i = attribute_index(attribute)
    return np.array([-1 if a is None or isinstance(a, float) or len(a) <= i else int(a[i] > 0) for a in attributes],
                    dtype=np.int8)
