"""CelebA in its official on-disk format.

Layout under ROOT (only the image folder and the identity file are required):

- ``img_align_celeba/`` (178x218 aligned crops) or ``img_celeba/`` (in the wild)
- ``identity_CelebA.txt``: ``image identity`` per line
- ``list_attr_celeba.txt``: a count line, the 40 attribute names, then rows of
  ``image`` + 40 values of 1/-1 separated by runs of spaces
- ``list_eval_partition.txt``: ``image 0|1|2`` (train / val / test)
- ``list_landmarks_align_celeba.txt``: a count line, a header, then ``image`` +
  10 integers (left eye, right eye, nose, left and right mouth corners)

Real copies are often partial: the count lines are never trusted, and images
without an attribute row have *unknown* attributes (null), not -1.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from augment.data.errors import DatasetError, missing_file

log = logging.getLogger("augment.read")

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
    "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young",
)  # fmt: skip

IMAGE_DIRS = ("img_align_celeba", "img_celeba")
IDENTITY_FILE = "identity_CelebA.txt"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
LANDMARK_FILE = "list_landmarks_align_celeba.txt"
# Landmarks are in the pixel coordinates of one image folder: the aligned file
# does not apply to the in-the-wild photos, which have their own file.
LANDMARK_FILES = {"img_align_celeba": LANDMARK_FILE, "img_celeba": "list_landmarks_celeba.txt"}
# The pixel frame of the official landmark files: the aligned file's points are
# in the 178x218 aligned crops, so a downscaled copy's landmarks scale with it
# (augment.align). The in-the-wild file is per photo (no common frame).
LANDMARK_FRAMES = {"img_align_celeba": (178, 218)}
SPLITS = {0: "train", 1: "val", 2: "test"}
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def attribute_index(name: str) -> int:
    """Position of a CelebA attribute name; a clear error for a wrong one."""
    try:
        return CELEBA_ATTRIBUTES.index(name)
    except ValueError:
        import difflib

        close = difflib.get_close_matches(name, CELEBA_ATTRIBUTES, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DatasetError(f"{name!r} is not a CelebA attribute{hint}") from None  # repr: one line, whatever the name


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror or e}") from e


def _head(path: Path, n: int) -> list[str]:
    """The first ``n`` lines of ``path`` (fewer if the file is shorter)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [line.rstrip("\r\n") for _, line in zip(range(n), fh)]
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror or e}") from e


def _table(path: Path, skip: int, columns: int, dtype) -> tuple[np.ndarray, np.ndarray] | None:
    """Whitespace-separated rows of ``image`` + ``columns`` numbers, parsed at once.

    Returns (names (N,) object, values (N, columns) ``dtype``), or None when some
    row is malformed (too few or too many fields, a token that is not a number):
    the caller then rereads the file line by line to name the bad line. A valid
    file of CelebA's 202,599 rows takes a fraction of a second this way, against
    seconds for a Python loop over the lines.
    """
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas' ParserWarning on a ragged row: handled below
            df = pd.read_csv(
                path, sep=r"\s+", header=None, skiprows=skip, names=range(columns + 1), engine="c",
                dtype={0: str, **{i: dtype for i in range(1, columns + 1)}}, encoding_errors="replace",
                skip_blank_lines=True, na_filter=True, comment=None,
            )
    except (ValueError, OverflowError, pd.errors.ParserError, UnicodeDecodeError):
        return None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror or e}") from e
    if df.isna().to_numpy().any():  # a short row: pandas filled the missing fields
        return None
    return df[0].to_numpy(dtype=object), df.iloc[:, 1:].to_numpy(dtype=dtype)


def _check_count(path: Path, count_line: str, rows: int) -> None:
    """Log, never trust, a count line that disagrees with the rows in the file."""
    try:
        count = int(count_line.split()[0])
    except (ValueError, IndexError):
        log.warning("%s:1: the count line %r is not a number; ignored (%d rows read)", path, count_line, rows)
        return
    if count != rows:
        log.warning("%s:1: the count line says %d rows but the file has %d; the count is ignored, "
                    "the %d rows read are used", path, count, rows, rows)


def read_identities(path: Path) -> dict[str, int]:
    """``identity_CelebA.txt`` -> {image: identity}.

    A plain loop: two fields a line split by str.split is as fast as a vectorised
    parse here (about 0.2 s for CelebA's 202,599 rows)."""
    out: dict[str, int] = {}
    for no, line in enumerate(_lines(path), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DatasetError(f"{path}:{no}: expected 'image identity', got {line.strip()!r}")
        try:
            out[parts[0]] = int(parts[1])
        except ValueError:
            raise DatasetError(f"{path}:{no}: identity {parts[1]!r} is not an integer") from None
    return out


def read_attributes(path: Path) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """``list_attr_celeba.txt`` -> (names, {image: int8 array of 1/-1}).

    The count line is skipped, not trusted (a disagreeing count is logged).
    Every row must have exactly one value per name, each 1 or -1 (0 is
    accepted as -1, as some copies write it).
    """
    head = _head(path, 2)
    if len(head) < 2:
        raise DatasetError(f"{path}: expected a count line and a line of attribute names")
    names = tuple(head[1].split())
    if not names:
        raise DatasetError(f"{path}:2: the attribute-name line is empty")
    n = len(names)
    fast = _table(path, 2, n, np.int8)
    if fast is not None and np.isin(fast[1], (-1, 0, 1)).all():
        vals = fast[1]
        vals[vals == 0] = -1
        _check_count(path, head[0], len(vals))
        return names, dict(zip(fast[0].tolist(), vals))
    rows: dict[str, np.ndarray] = {}
    for no, line in enumerate(_lines(path)[2:], 3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != n + 1:
            raise DatasetError(
                f"{path}:{no}: expected an image name and {n} values, got {len(parts) - 1} value(s)"
            )
        try:
            vals = np.array([int(v) for v in parts[1:]], dtype=np.int8)
        except (ValueError, OverflowError):
            raise DatasetError(f"{path}:{no}: values must be 1 or -1, got {line.strip()!r}") from None
        if not np.isin(vals, (-1, 0, 1)).all():
            raise DatasetError(f"{path}:{no}: values must be 1 or -1, got {line.strip()!r}")
        vals[vals == 0] = -1
        rows[parts[0]] = vals
    _check_count(path, head[0], len(rows))
    return names, rows


def read_partition(path: Path) -> dict[str, str]:
    """``list_eval_partition.txt`` -> {image: train|val|test}."""
    out: dict[str, str] = {}
    for no, line in enumerate(_lines(path), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DatasetError(f"{path}:{no}: expected 'image 0|1|2', got {line.strip()!r}")
        out[parts[0]] = SPLITS[int(parts[1])]
    return out


def _landmark_preamble(head: list[str]) -> tuple[int, str | None]:
    """(lines before the rows, the count line or None) of a landmark file."""
    skip, count = 0, None
    if head and len(head[0].split()) == 1:
        skip, count = 1, head[0]
    if len(head) > skip:
        first = head[skip].split()
        if first and (first[0].endswith("_x") or first[0] == "lefteye_x"):
            skip += 1
    return skip, count


def read_landmarks(path: Path) -> dict[str, np.ndarray]:
    """5-point landmark file (count line, header, ``image`` + 10 numbers) -> {image: (10,) float32}.

    Coordinates are as the file gives them: for ``list_landmarks_align_celeba.txt``
    pixels of the official 178x218 aligned crops (see LANDMARK_FRAMES).
    """
    head = _head(path, 2)
    skip, count = _landmark_preamble(head)
    fast = _table(path, skip, 10, np.float32)
    if fast is not None:
        if count is not None:
            _check_count(path, count, len(fast[0]))
        return dict(zip(fast[0].tolist(), fast[1]))
    lines = _lines(path)
    out: dict[str, np.ndarray] = {}
    for no, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if no == 1 and len(parts) == 1:
            continue  # count line
        if parts[0].endswith("_x") or parts[0] == "lefteye_x":
            continue  # header line
        if len(parts) != 11:
            raise DatasetError(f"{path}:{no}: expected an image name and 10 coordinates, got {line.strip()!r}")
        try:
            out[parts[0]] = np.array([float(v) for v in parts[1:]], dtype=np.float32)
        except ValueError:
            raise DatasetError(f"{path}:{no}: coordinates must be numbers, got {line.strip()!r}") from None
    return out


def find_image_dir(root: Path, images: str = "") -> Path:
    if images:
        d = root / images
        if not d.is_dir():
            raise DatasetError(f"{d}: CelebA image folder not found")
        return d
    for name in IMAGE_DIRS:
        if (root / name).is_dir():
            return root / name
    raise DatasetError(
        f"{root}: no CelebA image folder; expected {root / IMAGE_DIRS[0]} (aligned crops) "
        f"or {root / IMAGE_DIRS[1]} (in-the-wild photos)"
    )


def split_by_identity(identities: np.ndarray, fractions=(0.8, 0.1, 0.1)) -> np.ndarray:
    """Identity-disjoint train/val/test when no partition file exists.

    Deterministic: identities sorted, then cut in order, so the same dataset
    always gives the same split.
    """
    ids = np.unique(identities)
    n = len(ids)
    n_train = int(round(n * fractions[0]))
    n_val = int(round(n * fractions[1]))
    split_of = {}
    for i, ident in enumerate(ids):
        split_of[ident] = "train" if i < n_train else ("val" if i < n_train + n_val else "test")
    return np.array([split_of[i] for i in identities], dtype=object)


@dataclass
class CelebA:
    """A CelebA copy read into memory. ``frame`` has one row per usable image."""

    root: Path
    image_dir: Path
    frame: pd.DataFrame  # columns: path, identity, split, attributes, landmarks
    missing_images: list[str]  # named by the identity file but not on disk
    unlabelled_images: int  # on disk but absent from the identity file
    has_partition: bool
    has_landmarks: bool

    @property
    def with_attributes(self) -> int:
        return int(self.frame["attributes"].notna().sum())


def load(root: Path | str, images: str = "") -> CelebA:
    """Read a CelebA copy; errors name the expected path or the bad line."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: CelebA root folder not found")
    image_dir = find_image_dir(root, images)
    id_path = root / IDENTITY_FILE
    if not id_path.is_file():
        raise missing_file(id_path, "the CelebA identity file ('image identity' per line)")
    identities = read_identities(id_path)
    on_disk = {e for e in os.listdir(image_dir) if e.lower().endswith(IMAGE_EXTS)}
    names = sorted(n for n in identities if n in on_disk)
    missing = sorted(n for n in identities if n not in on_disk)
    unlabelled = len(on_disk) - len(names)

    attrs: dict[str, np.ndarray] = {}
    attr_path = root / ATTR_FILE
    if attr_path.is_file():
        attr_names, raw = read_attributes(attr_path)
        if attr_names != CELEBA_ATTRIBUTES:
            # Reorder to the canonical order; unknown names are an error.
            try:
                order = [attr_names.index(a) for a in CELEBA_ATTRIBUTES]
            except ValueError:
                missing_names = [a for a in CELEBA_ATTRIBUTES if a not in attr_names]
                raise DatasetError(f"{attr_path}:2: attribute names lack {missing_names[:5]}") from None
            raw = {k: v[order] for k, v in raw.items()}
        attrs = raw
    part_path = root / PARTITION_FILE
    partition = read_partition(part_path) if part_path.is_file() else None
    lm_path = root / LANDMARK_FILES.get(image_dir.name, LANDMARK_FILE)
    lms = read_landmarks(lm_path) if lm_path.is_file() else {}

    ident = np.array([identities[n] for n in names], dtype=np.int64)
    if partition is not None:
        split = np.array([partition.get(n, "train") for n in names], dtype=object)
    else:
        split = split_by_identity(ident)
    rel = os.path.relpath(image_dir, root)
    frame = pd.DataFrame(
        {
            "path": [f"{rel}/{n}" for n in names],
            "identity": ident,
            "split": split,
            "attributes": [attrs.get(n) for n in names],
            "landmarks": [lms.get(n) for n in names],
        }
    )
    return CelebA(root, image_dir, frame, missing, unlabelled, partition is not None, bool(lms))
