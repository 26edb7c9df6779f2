"""Image manifests as a torch Dataset for recognition training and embedding.

``ManifestDataset(manifests)`` concatenates the rows of one or more ``images``
manifests (e.g. aligned originals + SaGAN edits) and yields
``(image (3,S,S) float32 in [-1,1], label int64)``. Labels are the rows'
``identity`` values remapped to ``0..K-1`` (an edit carries its parent's
identity, so originals and edits of one person share a label).

Classical augmentation is an optional albumentations pipeline applied to the
``(S,S,3)`` uint8 RGB image. With ``seed`` set, every item's augmentation is
seeded from (seed, epoch, index), so an epoch's images are the same whatever
the number of DataLoader workers and after a resume.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from augment import manifest as mf
from augment.data.errors import DatasetError
from augment.io import read_rgb, to_tensor


def label_map(identities: Sequence[int] | np.ndarray) -> dict[int, int]:
    """Identity values -> contiguous labels ``0..K-1`` in sorted identity order."""
    return {int(ident): i for i, ident in enumerate(sorted({int(v) for v in identities}))}


def _item_seed(seed: int, epoch: int, index: int) -> int:
    h = hashlib.blake2b(f"{seed}:{epoch}:{index}".encode(), digest_size=4).digest()
    return int.from_bytes(h, "little")


class ManifestDataset(Dataset):
    """Rows of one or more ``images`` manifests as ``(image, label)`` items.

    Args:
        manifests: one manifest or several (their rows are concatenated in order).
        transform: an albumentations transform taking ``image=`` uint8 RGB.
        image_size: resize every image to ``image_size`` squared (None = as stored).
        labels: identity -> label map; default ``label_map`` of all rows' identities.
        seed: seeds each item's augmentation from (seed, epoch, index); None = the
            transform's own random state.
        cache: keep decoded (resized) images in memory after the first read.

    ``frame`` holds the rows with an absolute ``file`` column and ``label``.
    """

    def __init__(
        self,
        manifests: mf.Manifest | Sequence[mf.Manifest],
        transform: Any = None,
        image_size: int | None = None,
        labels: dict[int, int] | None = None,
        seed: int | None = None,
        cache: bool = False,
    ):
        if isinstance(manifests, mf.Manifest):
            manifests = [manifests]
        frames = []
        for m in manifests:
            if m.kind != "images":
                raise DatasetError(f"{m.file or m.root}: expected an 'images' manifest, got '{m.kind}'")
            df = m.df.copy()
            df["file"] = [str(Path(m.root) / p) for p in df["path"]]
            frames.append(df)
        self.frame = pd.concat(frames, ignore_index=True) if frames else mf.frame("images", []).assign(file=[])
        self.labels = labels if labels is not None else label_map(self.frame["identity"])
        unknown = set(int(i) for i in self.frame["identity"]) - set(self.labels)
        if unknown:
            raise DatasetError(f"identities {sorted(unknown)[:5]} have no label in the given label map")
        self.frame["label"] = [self.labels[int(i)] for i in self.frame["identity"]]
        self.transform = transform
        self.image_size = image_size
        self.seed = seed
        self.epoch = 0
        self._cache: list[np.ndarray | None] | None = [None] * len(self.frame) if cache else None

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        return len(self.frame)

    def set_epoch(self, epoch: int) -> None:
        """Pick the augmentation stream of ``epoch`` (call before each epoch)."""
        self.epoch = int(epoch)

    def image(self, index: int) -> np.ndarray:
        """Row ``index``'s image, ``(S,S,3)`` uint8 RGB, before augmentation."""
        if self._cache is not None and self._cache[index] is not None:
            return self._cache[index]
        img = read_rgb(self.frame["file"].iat[index], self.image_size)
        if self._cache is not None:
            self._cache[index] = img
        return img

    def preload(self, threads: int = 2, progress: bool = True) -> None:
        """Decode every image into the cache now (Pillow decodes outside the GIL)."""
        if self._cache is None:
            self._cache = [None] * len(self)
        from tqdm import tqdm

        with ThreadPoolExecutor(max(1, threads)) as pool:
            it = pool.map(lambda i: read_rgb(self.frame["file"].iat[i], self.image_size), range(len(self)))
            for i, img in enumerate(tqdm(it, total=len(self), desc="decode", unit="img", disable=not progress)):
                self._cache[i] = img

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img = self.image(index)
        if self.transform is not None:
            if self.seed is not None:
                self.transform.set_random_seed(_item_seed(self.seed, self.epoch, index))
            img = self.transform(image=img)["image"]
        return to_tensor(img), int(self.frame["label"].iat[index])
