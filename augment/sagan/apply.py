"""Apply a SaGAN generator to a batch of aligned faces, and score the edits.

The kernel every user of a trained generator shares: the edit stage, the
report's and eval_sagan's identity checks and the benchmarks. ``edit_batch``
computes the spatial attention mask b = F_a(x) ONCE and reuses it for every
target value (b does not depend on c), then F_m(x, c) per value, and blends at
the input's full resolution: when the generator works at a smaller size, F_m's
output and the mask are upsampled and blended into the full-resolution
original, so pixels outside the mask stay exactly the original's.
``score_batch`` adds the judge's probability, the identity similarity and
the pretrained identity judge's distance of each edit to its source;
``Compute`` splits a batch across one-thread workers on a CPU.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from augment.io import to_uint8
from augment.judges.identity import distances


def edit_id(parent_id: str, attribute: str, value: int) -> str:
    """Sample id of the SaGAN edit of ``parent_id`` to ``attribute`` = ``value``."""
    return hashlib.sha1(f"sagan:{parent_id}:{attribute}:{value}".encode()).hexdigest()[:16]


@dataclass
class EditModels:
    """What one attribute's edits need.

    - ``generator``: a SaGANGenerator (``attention``, ``manipulate``, ``blend``), eval mode.
    - ``size``: the generator's input size.
    - ``attr_prob``: (N,3,S,S) in [-1,1] -> (N,) P(attribute present), or None.
    - ``embed``: (N,3,H,W) in [-1,1] -> (N,D) L2-normalised embeddings, or None.
    - ``id_descriptors``: (N,H,W,3) uint8 aligned crops -> (N,128) descriptors of
      the pretrained identity judge (``augment.judges.identity``), or None.
    - ``strength``: the mask scaled by it and clipped at 1 before blending
      (``edit.strength``, beyond the paper; 1 = the mask as trained).
    """

    attribute: str
    generator_id: str
    generator: object
    size: int
    attr_prob: Callable | None = None
    embed: Callable | None = None
    id_descriptors: Callable | None = None
    strength: float = 1.0  # the mask scaled by it, clipped at 1 (edit.strength)


class TunedGenerator:
    """A generator's ``attention`` / ``manipulate`` under torch.compile and/or
    bf16 autocast (``edit.compile``; bf16 for CUDA benchmarks); ``blend`` and
    the outputs stay fp32. Measured on a 2-core CPU, paper preset at 128 px
    (benchmarks/RESULTS.md): compiled, the edit stage ran 1.3x faster than
    eager (12.1 vs 9.2 img/s), close to the fp32 matmul rate."""

    def __init__(self, G, compile: bool = True, bf16_device: str | None = None) -> None:
        import torch

        self.G = G
        self._device = bf16_device
        self._attention = torch.compile(G.attention) if compile else G.attention
        self._manipulate = torch.compile(G.manipulate) if compile else G.manipulate
        self.blend = G.blend

    def _ctx(self):
        import contextlib

        import torch

        if self._device is None:
            return contextlib.nullcontext()
        return torch.autocast(self._device.split(":")[0], dtype=torch.bfloat16)

    @property
    def mask_sees_change(self) -> bool:
        return bool(getattr(self.G, "mask_sees_change", False))

    def attention(self, x, change=None):
        with self._ctx():
            return (self._attention(x) if change is None else self._attention(x, change)).float()

    def manipulate(self, x, c):
        with self._ctx():
            return self._manipulate(x, c).float()


def _changes(values: Sequence[int], sources, n: int, device):
    """{value: change (N,) = value - source}: ``sources`` (N,) in {0, 1, -1 unknown} or
    None; an unknown source is taken as the other value (the edit is a full change)."""
    import torch

    src = None if sources is None else torch.as_tensor(sources, dtype=torch.float32, device=device)
    out = {}
    for v in values:
        full = torch.full((n,), float(2 * v - 1), device=device)  # from the other value: +1 or -1
        out[v] = full if src is None else torch.where(src < 0, full, float(v) - src)
    return out


def attend_and_manipulate(G, size: int, x, values: Sequence[int], sources=None):
    """SaGAN on aligned crops, NOT yet blended: x (N,3,H,W) in [-1,1] at the crop size H.

    The generator runs at ``size`` (the crop is resized to it, and its outputs
    back). Returns ({value: mask b = F_a(x) (N,1,H,W) in [0,1]}, {value: F_m(x, c)
    (N,3,H,W) in [-1,1]}). The paper's F_a does not see c: every value shares one
    mask, one attention pass. A generator whose F_a sees the requested change
    (``mask_input: image+change``) gets one pass per value, with change = value -
    ``sources`` (the images' own values, (N,) in {0,1,-1 unknown}; None or -1: a full
    change), so an edit to an image's own value is the image itself. The edit stage
    blends in the crop (``edit_batch``); ``augment edit`` blends in the photo's frame.
    """
    import torch
    import torch.nn.functional as F

    full = x.shape[-1]
    small = x if full == size else F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)

    def upsized(mask):
        return mask if full == size else F.interpolate(mask, size=full, mode="bilinear",
                                                       align_corners=False).clamp_(0, 1)

    if getattr(G, "mask_sees_change", False):
        changes = _changes(values, sources, x.shape[0], x.device)
        masks = {v: upsized(G.attention(small, changes[v])) for v in values}
    else:
        mask = upsized(G.attention(small))
        masks = {v: mask for v in values}
    out = {}
    for v in values:
        x_a = G.manipulate(small, torch.full((x.shape[0],), float(v), device=x.device))
        out[v] = x_a if full == size else F.interpolate(x_a, size=full, mode="bilinear", align_corners=False)
    return masks, out


def strengthened(mask, strength: float):
    """The mask scaled by ``strength`` and clipped at 1 (``edit.strength``; 1 = as trained)."""
    return mask if strength == 1.0 else (mask * strength).clamp_(max=1.0)


def edit_batch(models: EditModels, x, values: Sequence[int], sources=None):
    """Edit one batch to each target value.

    x: (N,3,H,W) in [-1,1] at the aligned size; ``sources`` as ``attend_and_manipulate``
    takes them. Returns ({value: mask (N,1,H,W) in [0,1] at full size}, {value: x_edit
    (N,3,H,W) in [-1,1]}), x_edit = b * F_m(x, c) + (1 - b) * x with b the mask scaled
    by ``models.strength`` (clipped at 1).
    """
    G = models.generator
    masks, manipulated = attend_and_manipulate(G, models.size, x, values, sources)
    masks = {v: strengthened(m, models.strength) for v, m in masks.items()}
    return masks, {v: G.blend(x, x_a, masks[v]) for v, x_a in manipulated.items()}


def score_batch(models: EditModels, x, values: Sequence[int], sources=None) -> tuple:
    """Edit and score one (sub-)batch: ({value: mask area (N,)}, {value: (pixels (N,H,W,3)
    uint8, attr_prob (N,) or None, id_similarity (N,) or None, id_distance (N,) or
    None)}), all numpy. ``id_distance``: the identity judge's descriptor distance of
    the edit to its source, both at the aligned size."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():  # thread-local: a compute thread enters it itself
        masks, edits = edit_batch(models, x, values, sources)
        area = {v: m.mean(dim=(1, 2, 3)).float().cpu().numpy() for v, m in masks.items()}
        src_emb = models.embed(x) if models.embed is not None else None
        src_desc = models.id_descriptors(to_uint8(x.float().cpu())) if models.id_descriptors is not None else None
        out = {}
        for v in values:
            xe = edits[v]
            prob = sim = dist = None
            if models.attr_prob is not None:
                small = xe if xe.shape[-1] == models.size else F.interpolate(
                    xe, size=models.size, mode="bilinear", antialias=True, align_corners=False)
                prob = models.attr_prob(small).float().cpu().numpy()
            if src_emb is not None:
                sim = (models.embed(xe) * src_emb).sum(dim=1).float().cpu().numpy()
            pixels = to_uint8(xe.float().cpu())
            if src_desc is not None:
                dist = distances(models.id_descriptors(pixels), src_desc)
            out[v] = (pixels, prob, sim, dist)
    return area, out


def identity_descriptors(template: str) -> Callable:
    """``EditModels.id_descriptors`` from the pretrained identity judge on ``template``
    crops (``augment.judges.identity.IdentityJudge``; JudgeUnavailable without the
    'judges' extra), one call at a time: ``Compute``'s threads share one dlib model."""
    import threading

    from augment.judges import identity

    judge, lock = identity.IdentityJudge(template), threading.Lock()

    def descriptors(crops: np.ndarray) -> np.ndarray:
        with lock:
            return judge.descriptors(crops)

    return descriptors


def add_distances(measured: dict, dists) -> None:
    """Fold identity distances (a list, or another ``measured``) into ``measured``:
    {"measured": count, "sum", "max"}, what the edit stage keeps per part."""
    more = dists if isinstance(dists, dict) else {"measured": len(dists), "sum": float(np.sum(dists)),
                                                   "max": float(np.max(dists, initial=0.0))}
    if more.get("measured"):
        for key, join in (("measured", lambda a, b: a + b), ("sum", lambda a, b: a + b), ("max", max)):
            measured[key] = join(measured[key], more[key]) if key in measured else more[key]


def id_distance_stats(measured: dict, threshold: float, drops: dict[str, int]) -> dict:
    """The stage's ``id_distance`` stats: edits measured, mean and largest distance, threshold, drops."""
    n = measured.get("measured", 0)
    return {"measured": n, "mean": measured["sum"] / n if n else None, "max": measured.get("max"),
            "max_id_distance": threshold, "dropped": drops.get("max_id_distance", 0)}


def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)


class Compute:
    """Runs ``score_batch`` on a batch, split across one-thread workers on a CPU.

    On a CPU, ``parts`` threads (the torch thread count), each running a slice
    of the batch with ONE torch thread, beat one call with ``parts`` threads:
    no OpenMP barrier after every layer, and a core taken by another job slows
    one slice instead of every layer. Every image is computed on its own (no
    layer mixes images), so the outputs do not depend on the split.
    On CUDA the batch runs whole.
    """

    def __init__(self, device) -> None:
        import torch

        self.threads_before = torch.get_num_threads()
        self.parts = self.threads_before if getattr(device, "type", str(device)) == "cpu" else 1
        self.pool = ThreadPoolExecutor(self.parts, initializer=_one_torch_thread) if self.parts > 1 else None

    def __call__(self, models: EditModels, x, values: Sequence[int], sources=None) -> tuple:
        """``score_batch`` of x (N,3,H,W) with ``sources`` (N,) or None, split across threads."""
        n = x.shape[0]
        parts = min(self.parts, n)
        if self.pool is None or parts < 2:
            return score_batch(models, x, values, sources)
        bounds = [n * k // parts for k in range(parts + 1)]
        futures = [self.pool.submit(score_batch, models, x[a:b], values, None if sources is None else sources[a:b])
                   for a, b in zip(bounds, bounds[1:])]
        results = [f.result() for f in futures]
        cat = lambda arrs: None if arrs[0] is None else np.concatenate(arrs)  # noqa: E731
        area = {v: np.concatenate([r[0][v] for r in results]) for v in values}
        out = {v: tuple(cat([r[1][v][i] for r in results]) for i in range(len(results[0][1][v]))) for v in values}
        return area, out

    def close(self) -> None:
        import torch

        if self.pool is not None:
            self.pool.shutdown()
        # A worker's set_num_threads(1) also becomes the default of threads
        # started later; restore the process's setting.
        torch.set_num_threads(self.threads_before)
