"""SynthFaces on disk: names, image encoding, the CelebA/LFW text files, LFW pairs.

Layout under OUT:

- ``celeba/``: ``img_align_celeba/000001.png`` ..., ``list_attr_celeba.txt``,
  ``identity_CelebA.txt``, ``list_eval_partition.txt``,
  ``list_landmarks_align_celeba.txt`` (CelebA's own formats);
- ``lfw/<Name>/<Name>_0001.png`` ..., ``pairs.txt`` (View 2), ``lfw_landmarks.txt``
  (CelebA's landmark format, image names relative to ``lfw/``);
- ``groundtruth/<part>/<image stem>/<Attribute>.png`` (the counterfactual) and
  ``<Attribute>_mask.png``, indexed by ``groundtruth/index.parquet``.

Landmarks are pixel coordinates with pixel centres at integers, written with
two decimals (CelebA writes integers; the readers accept both).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from augment.data.celeba import CELEBA_ATTRIBUTES
from augment.runtime import derive_seed
from augment.fs import names_file

CELEBA_DIR = "celeba"
CELEBA_IMAGES = "img_align_celeba"
LFW_DIR = "lfw"
LFW_PAIRS = "pairs.txt"
LFW_LANDMARKS = "lfw_landmarks.txt"
LFW_ATTRIBUTES = "lfw_attributes.csv"  # image,attribute,value (the CSV `augment pairs` reads)
GROUNDTRUTH_DIR = "groundtruth"
INDEX = "index.parquet"
LANDMARK_HEADER = (
    "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
)
# Huffman-only deflate on the "up" filter: as small as full deflate on noisy photos, ~3x faster.
PNG_FLAGS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY,
             cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
MASK_FLAGS = [cv2.IMWRITE_PNG_COMPRESSION, 1]


def encode(rgb: np.ndarray, jpeg_quality: int) -> bytes:
    """(H, W, 3) uint8 RGB -> PNG bytes (lossless) or JPEG bytes."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if jpeg_quality > 0:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    else:
        ok, buf = cv2.imencode(".png", bgr, PNG_FLAGS)
    if not ok:  # pragma: no cover - OpenCV fails only without codecs
        raise RuntimeError("OpenCV could not encode an image")
    return buf.tobytes()


def decode(data: bytes) -> np.ndarray:
    """Encoded bytes -> (H, W, 3) uint8 RGB."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_mask(mask: np.ndarray) -> bytes:
    """(H, W) bool -> a grey PNG, 255 where changed."""
    ok, buf = cv2.imencode(".png", mask.astype(np.uint8) * 255, MASK_FLAGS)
    assert ok
    return buf.tobytes()


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., H, W) bool: pixels whose values differ in any channel of (..., H, W, 3) images."""
    d = a != b
    return d[..., 0] | d[..., 1] | d[..., 2]


class Writer:
    """Writes files under a root, creating each folder once."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._made: set[Path] = set()

    def __call__(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        if path.parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
        with names_file(path), open(path, "wb") as fh:
            fh.write(data)


def celeba_name(number: int, ext: str) -> str:
    """CelebA's numbering: 000001.png, 000002.png, ..."""
    return f"{number:06d}.{ext}"


def lfw_name(name: str, index: int, ext: str) -> str:
    """LFW's naming: Name/Name_0001.png (index from 1)."""
    return f"{name}/{name}_{index:04d}.{ext}"


def groundtruth_paths(part: str, image: str, attribute: str, ext: str) -> tuple[str, str]:
    """(counterfactual, mask) paths relative to OUT for one source image (``image``
    relative to OUT, e.g. ``celeba/img_align_celeba/000123.png``)."""
    stem = os.path.splitext(image.split("/", 2)[-1] if part == "celeba" else image.split("/", 1)[-1])[0]
    base = f"{GROUNDTRUTH_DIR}/{part}/{stem}"
    return f"{base}/{attribute}.{ext}", f"{base}/{attribute}_mask.png"


_ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "ch", "dr",
           "gr", "kr", "sh", "st", "th", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "io", "ou")
_CODAS = ("", "", "n", "r", "l", "s", "m", "th", "nd", "ck", "x")


def _word(rng: np.random.Generator, syllables: int) -> str:
    parts = []
    for k in range(syllables):
        parts.append(str(rng.choice(_ONSETS)) + str(rng.choice(_VOWELS)))
    parts.append(str(rng.choice(_CODAS)))
    return "".join(parts).capitalize()


def person_names(seed: int, count: int) -> list[str]:
    """``count`` distinct LFW-style names (``Given_Family``), the same for the same seed."""
    names, seen = [], set()
    for k in range(count):
        rng = np.random.default_rng(derive_seed(seed, "synth", "lfw", "name", k))
        name = f"{_word(rng, int(rng.integers(1, 3)))}_{_word(rng, int(rng.integers(1, 4)))}"
        while name in seen:  # rare; the suffix keeps it unique and deterministic
            name += "_" + _word(rng, 1)
        seen.add(name)
        names.append(name)
    return names


def splits(identities: int) -> list[int]:
    """CelebA partition code (0 train, 1 val, 2 test) of each identity, identity-disjoint.

    About 80/10/10 in identity order, at least one identity in train and test.
    """
    n_test = max(1, round(0.1 * identities))
    n_val = round(0.1 * identities) if identities >= 3 else 0
    n_train = identities - n_test - n_val
    return [0] * n_train + [1] * n_val + [2] * n_test


def write_celeba_files(root: Path, rows: list[dict]) -> None:
    """The four CelebA text files for ``rows`` (file, identity, split, attrs {name: 0/1}, landmarks (10,))."""
    rows = sorted(rows, key=lambda r: r["file"])
    names = " ".join(CELEBA_ATTRIBUTES)
    attr_lines = []
    for r in rows:
        vals = [1 if r["attrs"].get(a, 0) else -1 for a in CELEBA_ATTRIBUTES]
        attr_lines.append(r["file"] + " " + " ".join(f"{v:>2d}" for v in vals))
    _write_text(root / "list_attr_celeba.txt", [str(len(rows)), names, *attr_lines])
    _write_text(root / "identity_CelebA.txt", [f"{r['file']} {r['identity']}" for r in rows])
    _write_text(root / "list_eval_partition.txt", [f"{r['file']} {r['split']}" for r in rows])
    write_landmarks(root / "list_landmarks_align_celeba.txt", [(r["file"], r["landmarks"]) for r in rows])


def write_landmarks(path: Path, rows: list[tuple[str, list[float]]]) -> None:
    lines = [str(len(rows)), LANDMARK_HEADER]
    lines += [name + " " + " ".join(f"{x:.2f}" for x in lm) for name, lm in rows]
    _write_text(path, lines)


def write_attribute_csv(path: Path, rows: list[tuple[str, dict]]) -> None:
    """``image,attribute,value`` rows (value 0 or 1), one per image and rendered attribute."""
    lines = ["image,attribute,value"]
    lines += [f"{name},{a},{int(v)}" for name, attrs in rows for a, v in sorted(attrs.items())]
    _write_text(path, lines)


def _write_text(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_pairs(seed: int, images: dict[str, list[dict]], folds: int = 10, per_fold_max: int = 300):
    """LFW View 2 pairs: ``folds`` folds of n same-person and n different-person pairs.

    ``images``: {name: [{"index": i, "attrs": {...}}, ...]}. With at least
    2 * folds people, folds are person-disjoint as in LFW; with fewer, the
    people's pairs are dealt out over the folds. Same-person pairs whose two
    photos differ in some attribute are taken first, so that a recogniser is
    tested across attribute changes. Returns (n, [(fold, same, (name1, i, name2, j)), ...]).
    """
    rng = np.random.default_rng(derive_seed(seed, "synth", "lfw", "pairs"))
    people = sorted(images)

    def pools(group: list[str]):
        same_diff, same_eq = [], []
        for name in group:
            shots = images[name]
            for a in range(len(shots)):
                for b in range(a + 1, len(shots)):
                    pair = (name, shots[a]["index"], name, shots[b]["index"])
                    (same_diff if shots[a]["attrs"] != shots[b]["attrs"] else same_eq).append(pair)
        diff = [(n1, s1["index"], n2, s2["index"])
                for x, n1 in enumerate(group) for n2 in group[x + 1:]
                for s1 in images[n1] for s2 in images[n2]]
        same = _shuffled(rng, same_diff) + _shuffled(rng, same_eq)  # differing first
        return same, _shuffled(rng, diff)

    if len(people) >= 2 * folds:
        per_fold = [pools(people[f::folds]) for f in range(folds)]
        n = min(per_fold_max, *(min(len(sm), len(df)) for sm, df in per_fold))
    else:
        same, diff = pools(people)
        n = min(per_fold_max, len(same) // folds, len(diff) // folds)
        per_fold = [(same[f::folds], diff[f::folds]) for f in range(folds)]
    out = []
    for f, (same, diff) in enumerate(per_fold):
        out += [(f, True, p) for p in same[:n]]
        out += [(f, False, p) for p in diff[:n]]
    return n, out


def _shuffled(rng: np.random.Generator, pool: list) -> list:
    return [pool[int(i)] for i in rng.permutation(len(pool))]


def write_pairs(path: Path, n: int, pairs: list, folds: int = 10) -> None:
    lines = [f"{folds}\t{n}"]
    for _, same, (n1, i, n2, j) in pairs:
        lines.append(f"{n1}\t{i}\t{j}" if same else f"{n1}\t{i}\t{n2}\t{j}")
    _write_text(path, lines)
