"""Recognizer checkpoints -> embeddings of image files.

A recognizer checkpoint (``augment.checkpoint`` folder) stores the backbone's
weights under ``backbone.`` and flat metadata: ``kind: recognizer``,
``backbone``, ``embedding_size``, ``image_size``, ``width``, ``dropout``,
``head``, ``classes``, ``epoch``, ``step``. Loading rebuilds the backbone from
that metadata and refuses a checkpoint of another kind or backbone.

Embeddings follow the usual test-time rule: the L2-normalised sum of the
embeddings of the image and of its mirror image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from augment import checkpoint as ckpt
from augment.io import read_rgb, to_tensor
from recognition.backbones import BackboneConfig, build_backbone
from recognition.metrics import EvaluationError

KIND = "recognizer"


def backbone_config(meta: dict) -> BackboneConfig:
    """The backbone config stored in a recognizer checkpoint's metadata."""
    return BackboneConfig(
        name=meta["backbone"],
        embedding_size=int(meta["embedding_size"]),
        image_size=int(meta["image_size"]),
        width=int(meta.get("width", 0)),
        dropout=float(meta.get("dropout", 0.0)),
    )


def load_recognizer(
    path: Path | str, device: torch.device | str = "cpu", backbone: str | None = None
) -> tuple[torch.nn.Module, dict]:
    """(backbone in eval mode on ``device``, metadata) from a checkpoint folder.

    ``backbone``: the backbone name the caller expects; a checkpoint of another
    backbone is refused (CheckpointError naming both).
    """
    expect: dict = {"kind": KIND}
    if backbone is not None:
        expect["backbone"] = backbone
    states, meta = ckpt.load(path, expect=expect)
    model = build_backbone(backbone_config(meta))
    try:
        model.load_state_dict(states["backbone"])
    except (KeyError, RuntimeError) as e:
        raise ckpt.CheckpointError(f"{path}: weights do not fit backbone '{meta['backbone']}': {e}") from e
    return model.to(device).eval(), meta


class _Files(Dataset):
    def __init__(self, files: Sequence[str | Path], image_size: int):
        self.files, self.image_size = list(files), image_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return to_tensor(read_rgb(self.files[i], self.image_size))


@torch.inference_mode()
def embed_batch(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``(N,3,S,S)`` in [-1,1] -> ``(N,E)`` unit vectors: normalise(f(x) + f(mirror x))."""
    both = model(torch.cat([x, torch.flip(x, dims=[3])]))
    n = x.shape[0]
    return F.normalize(both[:n] + both[n:], dim=1)


def embedder(model: torch.nn.Module, size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``(N,3,H,W)`` in [-1,1], any H = W -> ``(N,E)`` unit vectors: the faces resized to
    the recognizer's ``size`` (bilinear, antialiased) then ``embed_batch``."""

    def embed(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != size:
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        return embed_batch(model, x)

    return embed


def embed_files(
    model: torch.nn.Module,
    files: Sequence[str | Path],
    image_size: int,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    workers: int = 0,
    progress: bool = True,
    desc: str = "embed",
) -> np.ndarray:
    """Embeddings ``(N, E)`` float32, unit length, of the image files in order.

    Images must be aligned the way the model's training images were; they are
    resized to ``image_size``. NaN output is an error naming the first files.
    """
    from tqdm import tqdm

    loader = DataLoader(_Files(files, image_size), batch_size=batch_size, num_workers=workers, shuffle=False)
    out = []
    model.eval()
    for x in tqdm(loader, desc=desc, unit="batch", disable=not progress):
        out.append(embed_batch(model, x.to(device)).float().cpu().numpy())
    emb = np.concatenate(out) if out else np.zeros((0, 0), np.float32)
    check_finite(emb, [str(f) for f in files])
    return emb


def check_finite(emb: np.ndarray, names: Sequence[str], source: str = "embeddings") -> None:
    """Error naming the rows whose embedding has a NaN or infinite value."""
    bad = np.flatnonzero(~np.isfinite(emb).all(axis=1)) if emb.size else np.array([], int)
    if bad.size:
        first = ", ".join(names[i] for i in bad[:3])
        raise EvaluationError(f"{source}: {bad.size} embedding(s) contain NaN or inf, e.g. {first}")
