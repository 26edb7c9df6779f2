"""Self-describing checkpoints: safetensors weights + a JSON metadata file.

A checkpoint is a folder ``<name>/`` holding ``weights.safetensors`` (every
tensor, keys prefixed by the part they belong to: ``G.``, ``D.``, ``opt_G.``...)
and ``meta.json`` (format version, kind, model config, step, seed, config hash,
anything else the caller adds). Nothing is ever unpickled.

Writes are atomic at the folder level: everything goes into a temporary
sibling folder that is renamed into place last, so a killed process leaves
either the previous complete checkpoint or none, never a half-written one.
``latest()`` only considers folders whose ``meta.json`` says ``complete`` and
whose weights file is whole (its safetensors header covers the file exactly):
files are fsynced before the rename, but a copy cut short by hand, a full disk
or a filesystem that lost data must still never be picked up.

Also here: ``prune`` (keep the last few checkpoints of a run) and
``drop_records`` (the metrics logged after the checkpoint a run resumes from).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from augment.fs import fsync_file, names_file, write_text
from augment.manifest import file_digest
from augment.names import component

log = logging.getLogger("augment.checkpoint")

FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
META = "meta.json"


def weights_id(path: Path | str) -> str:
    """16-hex id of a checkpoint folder: sha256 of its weights file."""
    return file_digest(Path(path) / WEIGHTS)[:16]


class CheckpointError(Exception):
    """A checkpoint that is missing, incomplete, or made for something else."""


def _flatten_state(prefix: str, state: Any, tensors: dict, meta: dict) -> Any:
    """Split a (nested) state dict into tensors (by dotted key) and JSON-able leftovers."""
    import torch

    if isinstance(state, torch.Tensor):
        tensors[prefix] = state.detach().contiguous().cpu()
        return {"__tensor__": prefix}
    if isinstance(state, dict):
        return {"__dict__": [[k, _flatten_state(f"{prefix}.{k}", v, tensors, meta)] for k, v in state.items()]}
    if isinstance(state, (list, tuple)):
        return {"__list__": [_flatten_state(f"{prefix}.{i}", v, tensors, meta) for i, v in enumerate(state)]}
    return state


def _unflatten_state(node: Any, tensors: dict) -> Any:
    if isinstance(node, dict) and "__tensor__" in node:
        return tensors[node["__tensor__"]]
    if isinstance(node, dict) and "__dict__" in node:
        return {k: _unflatten_state(v, tensors) for k, v in node["__dict__"]}
    if isinstance(node, dict) and "__list__" in node:
        return [_unflatten_state(v, tensors) for v in node["__list__"]]
    return node


def save(path: Path | str, states: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``states`` (name -> state_dict, e.g. {"G": G.state_dict(), "opt_G": opt.state_dict()})
    and ``meta`` as one checkpoint folder, atomically.

    Optimiser states (nested dicts with ints and lists) are split into tensors
    and a JSON structure, so they too load without pickle.
    """
    from safetensors.torch import save_file

    path = Path(path)
    component(path.name, "a checkpoint folder")  # its name may come from data; the temporaries are named after it
    tensors: dict = {}
    structure = {name: _flatten_state(name, st, tensors, meta) for name, st in states.items()}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        with names_file(path / WEIGHTS):  # a full disk: safetensors' own error names no file
            save_file(tensors, str(tmp / WEIGHTS))
        full = {
            "format_version": FORMAT_VERSION,
            **meta,
            "structure": structure,
            "complete": True,
        }
        with names_file(path / META):
            (tmp / META).write_text(json.dumps(full, indent=1, sort_keys=True))
        for f in (tmp / WEIGHTS, tmp / META):  # on disk before the rename makes them visible
            fsync_file(f)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def verify_weights(path: Path | str) -> None:
    """Raise CheckpointError unless ``path/weights.safetensors`` exists and is whole.

    safetensors checks that its header's tensor offsets cover the file exactly,
    so a truncated or foreign file (a pickle, say) fails here without any
    tensor being read.
    """
    from safetensors import SafetensorError, safe_open

    wp = Path(path) / WEIGHTS
    if not wp.is_file():
        raise CheckpointError(f"{path}: missing {WEIGHTS}")
    try:
        with safe_open(str(wp), framework="pt"):
            pass
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{wp}: damaged or not a safetensors file: {e}") from e


def read_meta(path: Path | str) -> dict:
    path = Path(path)
    mp = path / META
    if not mp.is_file():
        raise CheckpointError(f"{path}: not a checkpoint (no {META})")
    try:
        meta = json.loads(mp.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{mp}: damaged metadata: {e}") from e
    if not meta.get("complete"):
        raise CheckpointError(f"{path}: incomplete checkpoint")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format_version')}, expected {FORMAT_VERSION}")
    return meta


def load(path: Path | str, device: str = "cpu", expect: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict]:
    """Load (states, meta). ``expect`` maps meta keys to required values; a
    mismatch is refused with a message naming both values."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_meta(path)
    for key, want in (expect or {}).items():
        got = meta.get(key)
        if got != want:
            raise CheckpointError(f"{path}: checkpoint has {key}={got!r}, but {key}={want!r} is configured")
    verify_weights(path)
    tensors = load_file(str(path / WEIGHTS), device=device)
    states = {name: _unflatten_state(node, tensors) for name, node in meta["structure"].items()}
    return states, meta


def latest(folder: Path | str, prefix: str = "step_") -> Path | None:
    """The complete checkpoint with the highest step under ``folder``, or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    best, best_step = None, -1
    for d in folder.iterdir():
        if not d.is_dir() or not d.name.startswith(prefix):
            continue
        try:
            meta = read_meta(d)
            verify_weights(d)
        except CheckpointError as e:
            log.warning("skipping checkpoint %s: %s", d, e)
            continue
        step = int(meta.get("step", -1))
        if step > best_step:
            best, best_step = d, step
    return best


def prune(folder: Path | str, keep: int, prefix: str = "step_") -> None:
    """Delete all but the ``keep`` last (by name: steps are zero-padded) checkpoints
    ``<prefix>*`` of ``folder``; folders without metadata are not checkpoints and stay."""
    done = sorted((d for d in Path(folder).glob(f"{prefix}*") if (d / META).is_file()), key=lambda d: d.name)
    for d in done[: max(0, len(done) - keep)]:
        shutil.rmtree(d, ignore_errors=True)


def drop_records(path: Path | str, drop: Callable[[dict], bool]) -> None:
    """Rewrite the JSON-lines file ``path`` (e.g. a run's ``metrics.jsonl``) without
    the records for which ``drop`` is true, atomically: what was logged after the
    checkpoint a run resumes from, since the resumed run logs it again. Blank lines
    go too; a file with nothing to drop is left as it is."""
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    keep = [ln for ln in lines if ln.strip() and not drop(json.loads(ln))]
    if len(keep) != len(lines):
        write_text(path, "".join(ln + "\n" for ln in keep))
