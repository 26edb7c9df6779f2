"""Generators shipped with the package: what is here, where, and a digest of it all.

This folder is package data (pyproject.toml). A shipped generator is two files:

- ``<Attribute>.safetensors``: the weights of train_sagan's ``generator/``
  export (keys ``G.<parameter>``), floating-point tensors stored as float16;
- ``<Attribute>.json``: that export's ``meta.json`` (format version, kind
  ``sagan_generator``, model config, attribute, step, seed, image size, the
  alignment ``{"template", "size"}`` its faces had, ``structure``), plus
  ``weights_sha256`` (of the file beside it), ``dtype``, ``training`` (data,
  people, images, steps, seed, CPU-hours), ``quality`` (eval_sagan's figures
  per direction) and ``licence``.

Renamed to ``meta.json`` and ``weights.safetensors`` in a folder, the pair is a
checkpoint folder again (``augment.checkpoint``). ``augment generators ship
RUN`` (``augment.trained.ship``) writes them from a finished run of
``pipelines/pretrain.yaml``; ``augment generators`` lists them.

Standard library only (layer "base" of docs/ARCHITECTURE.md): listing reads
JSON and never opens a weights file, so it is cheap and nothing is unpickled;
loading the weights is ``augment.trained``'s job. ``AUGMENT_PRETRAINED``, when
set, names another folder to read instead (tests, or generators of one's own).

In a pipeline, ``edit.generators: pretrained`` means these generators;
``load_config`` pins it to ``pretrained@<digest>`` so that the edit stage's
fingerprint changes when the shipped files do.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from augment.names import problem

ENV = "AUGMENT_PRETRAINED"
KEYWORD = "pretrained"  # the value of edit.generators / --generators that means this folder
WEIGHTS_SUFFIX = ".safetensors"
META_SUFFIX = ".json"
TRAIN_HINT = ("train them with 'augment run pipelines/pretrain.yaml', then ship them with "
              "'augment generators ship runs/pretrain'")


class PretrainedError(Exception):
    """A shipped generator that is missing, or whose files do not make one."""


class NotShipped(PretrainedError, LookupError):
    """No generator is shipped for the attribute asked for."""


def folder() -> Path:
    """Where the shipped generators are: ``$AUGMENT_PRETRAINED``, else this package's folder."""
    return Path(os.environ.get(ENV) or Path(__file__).parent)


def _read(meta_file: Path) -> dict:
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PretrainedError(f"{meta_file}: damaged metadata of a shipped generator: {e}") from e
    named = meta.get("attribute") if isinstance(meta, dict) else None
    if named != meta_file.stem:  # path_for finds a generator by its file name: the two must agree
        raise PretrainedError(f"{meta_file}: metadata of attribute {named!r}, not {meta_file.stem!r} as its "
                              "file name says")
    weights = meta_file.with_suffix(WEIGHTS_SUFFIX)
    if not weights.is_file():
        raise PretrainedError(f"{meta_file}: its weights {weights.name} are missing")
    return {**meta, "weights": str(weights)}


def meta_of(weights: Path | str) -> dict:
    """The metadata of the shipped generator whose weights file is ``weights`` (see ``available``)."""
    return _read(Path(weights).with_suffix(META_SUFFIX))


def available() -> list[dict]:
    """Every shipped generator's metadata (the JSON file's content, plus ``weights``:
    the path of its ``.safetensors``), sorted by attribute; [] when none is shipped."""
    where = folder()
    if not where.is_dir():
        return []
    return [_read(f) for f in sorted(where.glob(f"*{META_SUFFIX}")) if not f.name.startswith(".")]


def attributes() -> list[str]:
    """The attributes a generator is shipped for, sorted."""
    return [m["attribute"] for m in available()]


def path_for(attribute: str) -> Path:
    """The weights file shipped for ``attribute``; NotShipped naming it and what is shipped."""
    meta_file = folder() / f"{attribute}{META_SUFFIX}"
    if problem(attribute) is not None or not meta_file.is_file():
        have = ", ".join(attributes()) or "none"
        raise NotShipped(f"no generator is shipped for {attribute!r} (shipped: {have})")
    return Path(_read(meta_file)["weights"])


def digest() -> str:
    """16 hex digits of the sha256 of every shipped file's name and bytes: what
    changes when a generator is added, replaced or removed."""
    h = hashlib.sha256()
    where = folder()
    for f in sorted(where.glob(f"*{META_SUFFIX}")) + sorted(where.glob(f"*{WEIGHTS_SUFFIX}")):
        if f.name.startswith("."):
            continue  # a temporary of an interrupted ``ship``
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def is_keyword(value: object) -> bool:
    """``pretrained`` or a pinned ``pretrained@<digest>``."""
    return isinstance(value, str) and (value == KEYWORD or value.startswith(KEYWORD + "@"))


def pinned(value: str) -> str:
    """``pretrained`` -> ``pretrained@<digest>`` of the files shipped now; a value pinned
    already must name the digest of the files shipped now (PretrainedError otherwise:
    the generators changed since that config was written)."""
    now = f"{KEYWORD}@{digest()}"
    if value not in (KEYWORD, now):
        raise PretrainedError(f"{value!r} names shipped generators that have changed since (now {now}); "
                              f"set it to {KEYWORD!r} to use the ones shipped now")
    return now
