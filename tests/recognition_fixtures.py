"""Toy "faces" for the recognition tests: one smooth random pattern per identity,
each image a shifted, noisy copy, written as PNG files with an images manifest."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from augment import manifest as mf
from augment.config import PipelineConfig, TrainRecognitionConfig


def make_faces(root: Path, n_ids: int = 6, per_id: int = 8, size: int = 32, seed: int = 0,
               split: str = "train", source: str = "synthfaces", first_id: int = 0, noise: float = 20.0) -> mf.Manifest:
    """Write ``n_ids * per_id`` PNGs under ``root/<identity>/`` and return their images manifest."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_ids):
        ident = first_id + k
        base = cv2.resize(rng.uniform(0, 255, (4, 4, 3)).astype(np.float32), (size + 8, size + 8),
                          interpolation=cv2.INTER_CUBIC)
        for j in range(per_id):
            dx, dy = rng.integers(0, 8, 2)
            img = base[dy : dy + size, dx : dx + size] + rng.normal(0, noise, (size, size, 3))
            rel = f"{ident:03d}/{j:02d}.png"
            (root / f"{ident:03d}").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / rel), np.clip(img, 0, 255).astype(np.uint8))
            rows.append({"sample_id": mf.sample_id(source, rel), "path": rel, "identity": ident,
                         "identity_name": f"id{ident}", "split": split, "source": source})
    return mf.Manifest("images", mf.frame("images", rows), root)


def make_edits(root: Path, originals: mf.Manifest, attribute: str, seed: int = 1) -> mf.Manifest:
    """Fake 'edits': each original darkened or brightened, with the edit columns filled."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in originals.df.itertuples():
        img = cv2.imread(str(Path(originals.root) / r.path)).astype(np.float32)
        for value in (0, 1):
            out = np.clip(img * (0.8 if value == 0 else 1.2) + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
            rel = f"{attribute}/{value}/{Path(r.path).stem}_{r.identity}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / rel), out)
            rows.append({"sample_id": mf.sample_id("sagan", rel), "path": rel, "identity": r.identity,
                         "identity_name": r.identity_name, "split": "train", "source": "sagan",
                         "parent_id": r.sample_id, "attribute": attribute, "target_value": value})
    return mf.Manifest("images", mf.frame("images", rows), root)


def tiny_config(tmp_path: Path, **train) -> PipelineConfig:
    """A pipeline config with a toy-sized recognizer."""
    t = dict(backbone="resnet18", width=8, image_size=32, embedding_size=32, epochs=2, batch_size=16,
             lr=0.05, head="cosface", scale=16.0, warmup_epochs=0.5)
    t.update(train)
    return PipelineConfig(workdir=str(tmp_path / "work"), device="cpu",
                          train_recognition=TrainRecognitionConfig(**t))
