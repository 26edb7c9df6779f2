"""Aligned face images for SaGAN and the attribute classifier.

- ``attribute_rows``: the rows of an images manifest whose label for an
  attribute is known, with labels in {0, 1} (unknown rows are skipped).
- ``ImageDataset``: decoded images, (3,S,S) float32 in [-1, 1], resized to S
  with area averaging; small sets are cached in memory after the first read.
- ``BalancedBatchSampler``: batches of half positive, half negative indices.
  The b-th batch is a pure function of (seed, b): each class is walked through
  one seeded permutation per epoch, so resuming at batch b needs no saved
  sampler state, and rank r of W takes the global batches r, W + r, 2W + r...
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from augment import manifest as mf
from augment.data.attributes import from_vectors
from augment.data.errors import DatasetError
from augment.io import read_rgb, to_tensor
from augment.runtime import derive_seed

cv2.setNumThreads(1)  # resizing runs in DataLoader workers; no nested thread pools

CACHE_LIMIT_BYTES = 2 << 30  # keep decoded images in memory up to this size


def attribute_labels(df: pd.DataFrame, attribute: str) -> np.ndarray:
    """Per row of an images manifest: 1 present, 0 absent, -1 unknown (int64, for
    tensors and indexing; ``augment.data.attributes.from_vectors`` reads them)."""
    return from_vectors(df["attributes"], attribute).astype(np.int64)


def attribute_rows(manifest: mf.Manifest, attribute: str, splits: Sequence[str]) -> tuple[list[Path], np.ndarray]:
    """(paths, labels in {0,1}) of rows in ``splits`` whose ``attribute`` is known."""
    df = manifest.df[manifest.df["split"].isin(list(splits))].reset_index(drop=True)
    labels = attribute_labels(df, attribute)
    keep = labels >= 0
    paths = [manifest.root / p for p, k in zip(df["path"], keep) if k]
    return paths, labels[keep]


class ImageDataset(Dataset):
    """``i`` -> (image (3,S,S) float32 in [-1, 1], label float32 of ``labels[i]``'s shape).

    ``labels``: (N,) or (N,K) numbers, e.g. 0/1 attribute values; None gives 0.
    """

    def __init__(self, paths: Sequence[Path], size: int, labels: np.ndarray | None = None) -> None:
        self.paths = list(paths)
        self.size = size
        self.labels = (np.zeros(len(self.paths), np.float32) if labels is None
                       else np.asarray(labels, dtype=np.float32))
        if len(self.labels) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")
        self.cache: dict[int, np.ndarray] | None = {} if len(self.paths) * 3 * size * size <= CACHE_LIMIT_BYTES else None

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, i: int) -> np.ndarray:
        """(S,S,3) uint8 RGB of row ``i``."""
        img = self.cache.get(i) if self.cache is not None else None
        if img is None:
            img = read_rgb(self.paths[i], self.size)
            if self.cache is not None:
                self.cache[i] = img
        return img

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return to_tensor(self.image(i)), torch.from_numpy(np.atleast_1d(self.labels[i])).squeeze(0)


class BalancedBatchSampler:
    """Infinite batches of indices into ``labels`` (0/1): ``batch_size // 2`` positives
    then the rest negatives, from batch ``start`` on. Stateless, so resumable.

    Each class is drawn without replacement within an epoch of that class; a
    class smaller than the other simply cycles more often (oversampling).
    """

    def __init__(self, labels: np.ndarray, batch_size: int, seed: int, start: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        labels = np.asarray(labels)
        self.classes = [np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)]
        for value, idx in zip((1, 0), self.classes):
            if len(idx) == 0:
                raise DatasetError(
                    f"balanced sampling needs images with and without the attribute; none has value {value}"
                )
        self.counts = [batch_size // 2, batch_size - batch_size // 2]
        self.seed, self.start, self.rank, self.world_size = seed, start, rank, world_size
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    def _perm(self, cls: int, epoch: int) -> np.ndarray:
        key = (cls, epoch)
        if key not in self._perms:
            if len(self._perms) > 8:
                self._perms.clear()
            g = torch.Generator().manual_seed(derive_seed(self.seed, "balanced", cls, epoch))
            self._perms[key] = self.classes[cls][torch.randperm(len(self.classes[cls]), generator=g).numpy()]
        return self._perms[key]

    def batch(self, b: int) -> list[int]:
        """The global batch number ``b``."""
        out: list[int] = []
        for cls, k in enumerate(self.counts):
            n = len(self.classes[cls])
            for j in range(b * k, (b + 1) * k):
                out.append(int(self._perm(cls, j // n)[j % n]))
        return out

    def __iter__(self) -> Iterator[list[int]]:
        b = self.start
        while True:
            yield self.batch(b * self.world_size + self.rank)
            b += 1


class ShuffledBatchSampler:
    """Infinite batches of ``batch_size`` indices in ``range(n)``, from batch ``start`` on:
    one seeded permutation per epoch, so the b-th batch is a pure function of (seed, b)."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0) -> None:
        if n < 1:
            raise DatasetError("no images to sample from")
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, start
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            g = torch.Generator().manual_seed(derive_seed(self.seed, "shuffle", epoch))
            self._perms[epoch] = torch.randperm(self.n, generator=g).numpy()
        return self._perms[epoch]

    def batch(self, b: int) -> list[int]:
        js = range(b * self.batch_size, (b + 1) * self.batch_size)
        return [int(self._perm(j // self.n)[j % self.n]) for j in js]

    def __iter__(self) -> Iterator[list[int]]:
        b = self.start
        while True:
            yield self.batch(b)
            b += 1
