"""Trained SaGAN generators on disk: load one, export one from a training checkpoint.

A generator folder is a checkpoint (``augment.checkpoint``): either a full
training checkpoint (kind ``sagan``: G, D, both optimisers) or a ``generator/``
export (kind ``sagan_generator``: G alone, what the edit stage loads). Its
``meta.json`` holds the model config, so the network is rebuilt without any
other file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from augment import checkpoint as ckpt
from augment.sagan.model import SaganModelConfig, SaGANGenerator

CHECKPOINT_KIND = "sagan"
GENERATOR_KIND = "sagan_generator"


def load_generator(path: Path | str, attribute: str | None = None, device: str | torch.device = "cpu"
                   ) -> tuple[SaGANGenerator, dict]:
    """Rebuild a generator from a checkpoint folder (a ``generator/`` export or a
    full training checkpoint); eval mode. ``attribute``, when given, must match."""
    path = Path(path)
    expect = {"attribute": attribute} if attribute is not None else None
    states, meta = ckpt.load(path, device=str(device), expect=expect)
    if meta.get("kind") not in (CHECKPOINT_KIND, GENERATOR_KIND):
        raise ckpt.CheckpointError(f"{path}: a {meta.get('kind')!r} checkpoint, not a SaGAN generator")
    return build_generator(meta, states["G"], device), meta


def build_generator(meta: dict, state: dict, device: str | torch.device = "cpu") -> SaGANGenerator:
    """The generator that ``meta["model_config"]`` describes, with G's ``state``
    loaded (float16 tensors are copied into its float32 parameters); eval mode."""
    G = SaGANGenerator(SaganModelConfig.from_dict(meta["model_config"]))
    G.load_state_dict(state)
    return G.to(device).eval()


def export_generator(checkpoint: Path, out: Path, align: dict | None = None, data: dict | None = None) -> Path:
    """Copy the generator alone out of a full checkpoint (what the edit stage loads):
    the moving average of its weights (``G_ema``) when the run kept one, else G.

    ``align``: how its training images were aligned, ``{"template": name,
    "size": crop px}``; recorded so that new photos can be aligned the same way
    (``augment edit``, ``edit.generators``). ``data``: what it learnt from,
    ``{"sources": [dataset formats, e.g. "synthfaces"], "images": n}``, so that
    ``augment edit`` can say when photos are not the kind of face it knows.
    """
    states, meta = ckpt.load(checkpoint)
    keep = {k: meta[k] for k in ("model_config", "preset", "attribute", "step", "seed", "config_hash", "image_size")}
    extra = {"align": align} if align else {}
    if data:
        extra["data"] = data
    ema = "G_ema" in states
    ckpt.save(out, {"G": states["G_ema" if ema else "G"]}, {**keep, **extra, "ema": ema, "kind": GENERATOR_KIND})
    return out


SYNTHETIC_SOURCES = ("synthfaces",)


def out_of_domain(meta: dict, inputs: str = "photos") -> str | None:
    """A one-line warning when a generator learnt from synthetic faces and is applied
    to ``inputs`` (photos), naming both; None when its metadata says it learnt from
    photos or does not say."""
    sources = list((meta.get("data") or {}).get("sources") or [])
    synthetic = [s for s in sources if s in SYNTHETIC_SOURCES]
    if not synthetic:
        return None
    return (f"this generator was trained on {', '.join(sources)} (synthetic faces) and is applied to {inputs}: "
            "expect weak or wrong edits; train one on photos (pipelines/celeba_cpu.yaml) for real faces")
