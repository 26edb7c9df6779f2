"""Dark smudges where an attribute sits: the failure mode of an edit that finds
the region but paints nothing there, used as label-keeping negatives so that a
judge (the attribute classifier, or SaGAN's D_cls) cannot be fooled by one.

- ``smudge_blobs``: 5 aligned landmarks -> elliptical blobs (cx, cy, rx, ry) over
  the attribute's region (eyes, mouth, chin);
- ``aligned_blobs``: the same from an aligned manifest row (or, for a row
  without landmarks, from the alignment template's points);
- ``manifest_blobs``: ``aligned_blobs`` for rows of an aligned manifest, the
  template's points taken from the manifest (prealigned crops have no landmarks);
- ``smudge_batch``: darken soft patches over a seeded share of a batch, or
  (``kind="fade"``) blend them towards a blurred copy: the faint remains of an
  attribute that an edit half removed; or (``kind="noise"``) blend them
  towards uniform colour noise, a stand-in for the speckled patch a generator
  makes when it fools its critic rather than paints the attribute (a probe of
  the judge, ``judge.smudge_accept``, and a negative for it or for D_cls:
  ``smudge_kind``, ``d_smudge_kind``).

Beyond the paper and the AttGAN/STGAN protocol; off unless configured.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torchvision.transforms.v2.functional import gaussian_blur

from augment import manifest as mf
from augment.align.dataset import alignment_of
from augment.align.templates import template as template_points

# Where a failed edit of each attribute leaves its dark patch, from the 5
# aligned landmarks (left eye, right eye, nose, left and right mouth corner):
# blob centres as ((point weights), (down-shift in eye distances)) and the
# blob's half-axes in eye distances (x, y).
SMUDGE_REGIONS: dict[str, tuple[list[tuple[tuple[float, ...], float]], tuple[float, float]]] = {
    "Eyeglasses": ([((1, 0, 0, 0, 0), 0.0), ((0, 1, 0, 0, 0), 0.0)], (0.45, 0.3)),
    "Mouth_Slightly_Open": ([((0, 0, 0, 0.5, 0.5), 0.0)], (0.5, 0.25)),
    "Smiling": ([((0, 0, 0, 0.5, 0.5), 0.0)], (0.5, 0.25)),
    "No_Beard": ([((0, 0, 0, 0.5, 0.5), 0.45)], (0.8, 0.45)),
}


def smudge_blobs(landmarks: np.ndarray, attributes: Sequence[str]) -> np.ndarray:
    """(5,2) aligned landmarks in model pixels -> (B,4) blobs (cx, cy, rx, ry) covering
    where a failed edit of any of ``attributes`` would sit; (0,4) when none is known."""
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    eye = float(np.linalg.norm(lm[1] - lm[0]))
    blobs = []
    for attr in attributes:
        if attr not in SMUDGE_REGIONS:
            continue
        centres, (rx, ry) = SMUDGE_REGIONS[attr]
        for weights, down in centres:
            c = np.asarray(weights, np.float64) @ lm
            blobs.append((c[0], c[1] + down * eye, rx * eye, ry * eye))
    return np.asarray(blobs, np.float32).reshape(-1, 4)


def smudge_batch(x: torch.Tensor, blobs: Sequence[np.ndarray], fraction: float, seed: int,
                 kind: str = "dark") -> torch.Tensor:
    """Darken soft elliptical patches over ``fraction`` of the images, drawn from ``seed``.

    ``x`` (N,3,S,S) in [-1,1]; ``blobs[i]`` (B,4) as ``smudge_blobs`` gives (an
    image without blobs is left alone). A chosen image has every one of its blobs
    scaled by 0.7-1.4 and shifted by up to 0.15 of its size, softened by a
    Gaussian edge, and is multiplied by 1 - d * patch with d in [0.3, 0.8]: the
    dark smudge a generator makes when it finds the region but paints nothing.
    Labels stay as they were, so the judge learns that such a patch is not the
    attribute (beyond the AttGAN/STGAN protocol, which trains on real images only).

    ``kind="fade"``: the patch is instead blended, by the same d, towards a
    Gaussian-blurred copy of the image (sigma = S/32 px), which wipes out thin
    detail such as frames but keeps the skin's colour: what a removal with a mask
    of 1 - d leaves. With labels kept, faint frames still count as glasses, so
    a generator has to take all of them away (and blur alone is no cue: images
    without the attribute are faded too).

    ``kind="noise"``: blended, by the same d, towards uniform colour noise in
    [-1, 1] (drawn from ``seed`` after the patches): a colour speckle is not
    the attribute.
    """
    if kind not in ("dark", "fade", "noise"):
        raise ValueError(f"smudge kind must be 'dark', 'fade' or 'noise', got {kind!r}")
    if fraction <= 0:
        return x
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = x.shape
    pick = torch.rand(n, generator=g) < fraction
    out = x.clone()
    blurred = _blur(x, h / 32) if kind == "fade" else None
    ys = torch.arange(h, dtype=torch.float32).reshape(h, 1) + 0.5
    xs = torch.arange(w, dtype=torch.float32).reshape(1, w) + 0.5
    for i in range(n):
        b = torch.from_numpy(np.asarray(blobs[i], np.float32)).reshape(-1, 4)
        scale = 0.7 + 0.7 * torch.rand(1, generator=g)
        shift = (torch.rand(2, generator=g) - 0.5) * 0.3
        darkness = 0.3 + 0.5 * torch.rand(1, generator=g)
        if not pick[i] or len(b) == 0:
            continue
        patch = torch.zeros(h, w)
        for cx, cy, rx, ry in b.tolist():
            rx, ry = rx * float(scale), ry * float(scale)
            cx, cy = cx + float(shift[0]) * rx, cy + float(shift[1]) * ry
            r2 = ((xs - cx) / max(rx, 1e-3)) ** 2 + ((ys - cy) / max(ry, 1e-3)) ** 2
            patch = torch.maximum(patch, torch.exp(-0.5 * (r2 / 0.6) ** 2))  # flat top, soft edge
        weight = float(darkness) * patch.to(x.device)
        if kind == "dark":
            out[i] = (x[i] + 1) * (1 - weight) - 1
        elif kind == "noise":
            noise = (torch.rand(x.shape[1:], generator=g) * 2 - 1).to(x.device, x.dtype)
            out[i] = x[i] + weight * (noise - x[i])
        else:
            out[i] = x[i] + weight * (blurred[i] - x[i])
    return out


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N,C,H,W) -> the same under a Gaussian of ``sigma`` px, 3 sigma each side (reflected edges)."""
    k = 2 * max(1, int(3 * sigma + 0.5)) + 1
    return gaussian_blur(x, [k, k], [sigma, sigma])


def aligned_blobs(row, attributes: Sequence[str], size: int, fallback: np.ndarray | None = None) -> np.ndarray:
    """An aligned row -> its smudge blobs (B,4) at ``size`` px: the row's source
    landmarks mapped by its 2x3 ``transform``. Without landmarks: the blobs of
    ``fallback`` (5,2), points at ``size`` px (the alignment template's, where an
    aligned crop puts them: a prealigned row's), or (0,4) when None."""
    lm, tr = row.get("landmarks"), row.get("transform")
    if lm is None or tr is None or len(lm) != 10 or len(tr) != 6:
        return np.zeros((0, 4), np.float32) if fallback is None else smudge_blobs(fallback, attributes)
    pts = np.asarray(lm, np.float64).reshape(5, 2)
    pts = pts @ np.asarray(tr, np.float64).reshape(2, 3)[:, :2].T + np.asarray(tr, np.float64).reshape(2, 3)[:, 2]
    width = float(row["width"]) if row.get("width") is not None and np.isfinite(row.get("width")) else size
    return smudge_blobs(pts * (size / width), attributes)


def manifest_blobs(aligned: mf.Manifest, rows: pd.DataFrame, attributes: Sequence[str], size: int) -> list[np.ndarray]:
    """Per row of ``rows`` (rows of ``aligned``): its blobs (B,4) at ``size`` px, from
    its landmarks, else from the points of the template ``aligned`` records (a
    prealigned crop has none: its face sits where the template's points are);
    (0,4) for a row with neither."""
    align = alignment_of(aligned)
    points = template_points(align["template"], size) if align else None
    return [aligned_blobs(row, attributes, size, points) for _, row in rows.iterrows()]
