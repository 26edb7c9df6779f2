"""The ``edit`` stage: every training image x attribute x target value, through SaGAN.

For each generator (one per attribute) the aligned training images go through
in fixed chunks. Per chunk:

1. decode the images in DataLoader workers -> (N,3,H,W) in [-1,1];
2. compute the spatial attention mask b = F_a(x) ONCE and reuse it for every
   target value (b does not depend on c), then F_m(x, c) per target value;
3. blend at the aligned image's full resolution: when the generator works at a
   smaller size, F_m's output and the mask are upsampled and blended into the
   full-resolution original, so pixels outside the mask stay exactly the
   original's;
4. score each edit: ``attr_prob`` (the independent attribute classifier),
   ``id_similarity`` (cosine similarity of recognizer embeddings of source and
   edit, when a recognizer is configured) and ``mask_area`` (mean of b);
5. drop rows that fail the configured filters, encode the rest to PNG in a
   thread pool, and write the chunk's rows as one Parquet part, atomically.

A rerun skips chunks whose part exists, so an interrupted stage resumes and
ends with exactly the rows of an uninterrupted run. Output images are sharded
into folders of at most ``edit.shard_size`` files.

Under torchrun the chunks are dealt to the ranks (interleaved); rank 0 merges
the parts in chunk order, so the manifest does not depend on the number of
processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from augment import distributed as dist
from augment import manifest as mf
from augment.config import EditConfig, PipelineConfig
from augment.data.celeba import attribute_index
from augment.io import read_rgb, save_png, sync_all, to_tensor, to_uint8, write_atomic
from augment.names import component
from augment.sagan.data import attribute_labels
from augment.stages import StageInputs, StageOutputs

log = logging.getLogger("augment.edit")

EDIT_PNG_LEVEL = 1  # zlib level of the edited images' PNGs: the fastest to write


@dataclass
class EditModels:
    """What one attribute's edits need.

    - ``generator``: a SaGANGenerator (``attention``, ``manipulate``, ``blend``), eval mode.
    - ``size``: the generator's input size.
    - ``attr_prob``: (N,3,S,S) in [-1,1] -> (N,) P(attribute present), or None.
    - ``embed``: (N,3,H,W) in [-1,1] -> (N,D) L2-normalised embeddings, or None.
    """

    attribute: str
    generator_id: str
    generator: object
    size: int
    attr_prob: Callable | None = None
    embed: Callable | None = None


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

    def attention(self, x):
        with self._ctx():
            return self._attention(x).float()

    def manipulate(self, x, c):
        with self._ctx():
            return self._manipulate(x, c).float()


def target_values(directions: str, labels: np.ndarray) -> list[list[int]]:
    """Target values per row. ``labels``: 1 present, 0 absent, -1 unknown.

    ``both`` edits to 1 and to 0 (the paper: one of them is nearly a copy, so the
    images need not be sorted by attribute); ``flip`` to the other value (rows
    with an unknown label are skipped); ``add`` to 1; ``remove`` to 0.
    """
    out = []
    for lab in labels:
        if directions == "both":
            out.append([1, 0])
        elif directions == "add":
            out.append([1])
        elif directions == "remove":
            out.append([0])
        else:
            out.append([] if lab < 0 else [1 - int(lab)])
    return out


def edit_id(parent_id: str, attribute: str, value: int) -> str:
    return hashlib.sha1(f"sagan:{parent_id}:{attribute}:{value}".encode()).hexdigest()[:16]


class _Images:
    """A Dataset of aligned images -> (3,H,W) float32 in [-1,1] (decoded in workers)."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return to_tensor(read_rgb(self.paths[i]))


def _encode_png(arr: np.ndarray, path: Path) -> str:
    """Write a PNG atomically; returns the sha256 of its bytes."""
    return save_png(arr, path, compress_level=EDIT_PNG_LEVEL, fsync=False)  # synced per part


def edit_batch(models: EditModels, x, values: Sequence[int]):
    """Edit one batch to each target value, with a single attention pass.

    x: (N,3,H,W) in [-1,1] at the aligned size. Returns (mask (N,1,H,W) in [0,1]
    at full size, {value: x_edit (N,3,H,W) in [-1,1]}).
    """
    import torch
    import torch.nn.functional as F

    G = models.generator
    full = x.shape[-1]
    small = x if full == models.size else F.interpolate(x, size=models.size, mode="bilinear", antialias=True, align_corners=False)
    mask = G.attention(small)
    if full != models.size:
        mask = F.interpolate(mask, size=full, mode="bilinear", align_corners=False).clamp_(0, 1)
    edits = {}
    for v in values:
        c = torch.full((x.shape[0],), float(v), device=x.device)
        x_a = G.manipulate(small, c)
        if full != models.size:
            x_a = F.interpolate(x_a, size=full, mode="bilinear", align_corners=False)
        edits[v] = G.blend(x, x_a, mask)
    return mask, edits


def _score_batch(models: EditModels, x, values: Sequence[int]) -> tuple:
    """Edit and score one (sub-)batch: (area (N,), {value: (pixels (N,H,W,3) uint8,
    attr_prob (N,) or None, id_similarity (N,) or None)}), all numpy."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():  # thread-local: a compute thread enters it itself
        mask, edits = edit_batch(models, x, values)
        area = mask.mean(dim=(1, 2, 3)).float().cpu().numpy()
        src_emb = models.embed(x) if models.embed is not None else None
        out = {}
        for v in values:
            xe = edits[v]
            prob = sim = None
            if models.attr_prob is not None:
                small = xe if xe.shape[-1] == models.size else F.interpolate(
                    xe, size=models.size, mode="bilinear", antialias=True, align_corners=False)
                prob = models.attr_prob(small).float().cpu().numpy()
            if src_emb is not None:
                sim = (models.embed(xe) * src_emb).sum(dim=1).float().cpu().numpy()
            out[v] = (to_uint8(xe.float().cpu()), prob, sim)
    return area, out


def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)


class _Compute:
    """Runs ``_score_batch`` on a batch, split across one-thread workers on a CPU.

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

    def __call__(self, models: EditModels, x, values: Sequence[int]) -> tuple:
        n = x.shape[0]
        parts = min(self.parts, n)
        if self.pool is None or parts < 2:
            return _score_batch(models, x, values)
        bounds = [n * k // parts for k in range(parts + 1)]
        futures = [self.pool.submit(_score_batch, models, x[a:b], values) for a, b in zip(bounds, bounds[1:])]
        results = [f.result() for f in futures]
        cat = lambda arrs: None if arrs[0] is None else np.concatenate(arrs)  # noqa: E731
        area = np.concatenate([r[0] for r in results])
        out = {v: tuple(cat([r[1][v][i] for r in results]) for i in range(3)) for v in values}
        return area, out

    def close(self) -> None:
        import torch

        if self.pool is not None:
            self.pool.shutdown()
        # A worker's set_num_threads(1) also becomes the default of threads
        # started later; restore the process's setting.
        torch.set_num_threads(self.threads_before)


def _passes(cfg: EditConfig, value: int, prob: float | None, sim: float | None, area: float) -> str | None:
    """The name of the first filter a row fails, or None."""
    if prob is not None and cfg.min_attr_prob > 0:
        p_target = prob if value == 1 else 1.0 - prob
        if p_target < cfg.min_attr_prob:
            return "min_attr_prob"
    if sim is not None and sim < cfg.min_id_similarity:
        return "min_id_similarity"
    if area > cfg.max_mask_area:
        return "max_mask_area"
    return None


def edit_chunk(
    models: EditModels,
    rows: pd.DataFrame,
    root: Path,
    out_dir: Path,
    first_index: int,
    edit_cfg: EditConfig,
    device,
    pool: ThreadPoolExecutor,
    compute: _Compute,
    workers: int = 0,
) -> tuple[list[dict], dict[str, int]]:
    """Edit ``rows`` (aligned images under ``root``); write PNGs under ``out_dir``.

    ``first_index`` is the rows' position in the stage's row order; it picks
    the shard folder so that no folder holds more than ``shard_size`` files per
    attribute and value. PNGs are encoded in ``pool`` while ``compute`` edits
    the next batch. Returns (manifest rows, drops per filter).
    """
    import torch
    from torch.utils.data import DataLoader

    ai = attribute_index(models.attribute)
    labels = attribute_labels(rows, models.attribute)
    targets = target_values(edit_cfg.directions, labels)
    loader = DataLoader(_Images([root / p for p in rows["path"]]), batch_size=edit_cfg.batch_size, shuffle=False,
                        num_workers=workers, persistent_workers=False)
    out_rows: list[dict] = []
    drops: dict[str, int] = {}
    pending = []
    made: set[str] = set()  # shard folders created
    start = 0
    for x in loader:
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        n = x.shape[0]
        batch_targets = targets[start : start + n]
        values = sorted({v for t in batch_targets for v in t}, reverse=True)
        if not values:
            start += n
            continue
        area, scored = compute(models, x, values)
        for v in values:
            pixels, prob, sim = scored[v]
            for k in range(n):
                if v not in batch_targets[k]:
                    continue
                row = rows.iloc[start + k]
                p_k = None if prob is None else float(prob[k])
                s_k = None if sim is None else float(sim[k])
                reason = _passes(edit_cfg, v, p_k, s_k, float(area[k]))
                if reason:
                    drops[reason] = drops.get(reason, 0) + 1
                    continue
                shard = (first_index + start + k) // edit_cfg.shard_size
                sid = edit_id(row["sample_id"], models.attribute, v)
                folder = f"{component(models.attribute, 'the generator attribute')}/{v}/{shard:04d}"
                if folder not in made:
                    (out_dir / folder).mkdir(parents=True, exist_ok=True)
                    made.add(folder)
                rel = f"{folder}/{sid}.png"
                attrs = row["attributes"]
                if attrs is not None and not isinstance(attrs, float):
                    attrs = np.array(attrs, dtype=np.int8)
                    attrs[ai] = 1 if v == 1 else -1
                out_rows.append({
                    "sample_id": sid,
                    "path": rel,
                    "identity": int(row["identity"]),
                    "identity_name": row["identity_name"],
                    "split": row["split"],
                    "source": "sagan",
                    "parent_id": row["sample_id"],
                    "attribute": models.attribute,
                    "target_value": v,
                    "generator_id": models.generator_id,
                    "attr_prob": p_k,
                    "id_similarity": s_k,
                    "mask_area": float(area[k]),
                    "landmarks": row["landmarks"],
                    "bbox": row["bbox"],
                    "det_prob": row["det_prob"],
                    "transform": row["transform"],
                    "attributes": attrs,
                    "width": int(pixels.shape[2]),
                    "height": int(pixels.shape[1]),
                })
                pending.append((len(out_rows) - 1, pool.submit(_encode_png, pixels[k], out_dir / rel)))
        start += n
    for idx, fut in pending:
        out_rows[idx]["sha256"] = fut.result()
    return out_rows, drops


def _part_path(run_dir: Path, attribute: str, chunk: int) -> Path:
    return run_dir / "parts" / component(attribute, "the generator attribute") / f"{chunk:06d}.parquet"


def _write_part(path: Path, rows: list[dict], drops: dict[str, int]) -> None:
    table = mf.to_table(mf.Manifest("images", mf.frame("images", rows), path.parent))
    table = table.replace_schema_metadata({"drops": json.dumps(drops, sort_keys=True)})
    path.parent.mkdir(parents=True, exist_ok=True)
    sync_all()  # the part's images are on disk before the part that lists them
    write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def _read_part(path: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    table = pq.read_table(path)
    drops = json.loads((table.schema.metadata or {}).get(b"drops", b"{}"))
    return table.to_pandas(), drops


def edit_rows(
    models_list: Sequence[EditModels],
    rows: pd.DataFrame,
    root: Path,
    run_dir: Path,
    edit_cfg: EditConfig,
    device,
    workers: int = 0,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Edit every row with every generator, resumably. Returns (rows, drops per filter)."""
    rows = rows.reset_index(drop=True)
    chunk = edit_cfg.chunk_size  # fixed per config, so a rerun redoes identical batches
    chunks = [(m, c) for m in models_list for c in range(0, len(rows), chunk)]
    mine = dist.shard(chunks)
    todo = [(m, c) for m, c in mine if not _part_path(run_dir, m.attribute, c // chunk).is_file()]
    if len(todo) < len(mine):
        log.info("edit: %d of %d chunk(s) already done, resuming", len(mine) - len(todo), len(mine))
    threads = max(2, os.cpu_count() or 2)
    compute = _Compute(device)
    try:
        with ThreadPoolExecutor(threads) as pool, tqdm(total=sum(min(chunk, len(rows) - c) for _, c in todo),
                                                       desc="edit", unit="img", disable=not dist.is_main()) as bar:
            for m, c in todo:
                part_rows, drops = edit_chunk(m, rows.iloc[c : c + chunk], root, run_dir, c, edit_cfg, device, pool,
                                              compute, workers)
                _write_part(_part_path(run_dir, m.attribute, c // chunk), part_rows, drops)
                bar.update(min(chunk, len(rows) - c))
    finally:
        compute.close()
    dist.barrier()
    frames, total_drops = [], {}
    for m, c in chunks:  # merge in a fixed order, whatever the number of ranks
        df, drops = _read_part(_part_path(run_dir, m.attribute, c // chunk))
        frames.append(df)
        for k, v in drops.items():
            total_drops[k] = total_drops.get(k, 0) + v
    merged = pd.concat(frames, ignore_index=True) if frames else mf.frame("images", [])
    return merged, total_drops


def load_models(cfg: PipelineConfig, generators: mf.Manifest, classifiers: mf.Manifest | None, device
                ) -> list[EditModels]:
    """One EditModels per trained generator, with its classifier and the optional recognizer."""
    import functools

    import torch
    import torch.nn.functional as F

    from augment.sagan.classifier import classifier_from_manifest
    from augment.sagan.generators import load_generator

    embed = None
    if cfg.edit.recognizer:
        from recognition.embed import embed_batch, load_recognizer

        rec, rmeta = load_recognizer(cfg.edit.recognizer, device)
        rsize = int(rmeta["image_size"])

        def embed(x):
            if x.shape[-1] != rsize:
                x = F.interpolate(x, size=rsize, mode="bilinear", antialias=True, align_corners=False)
            return embed_batch(rec, x)

    out = []
    for _, g in generators.df.iterrows():
        attribute = g["attribute"]
        G, meta = load_generator(generators.root / g["path"], attribute, device)
        G = G.to(memory_format=torch.channels_last)
        if cfg.edit.compile:
            G = TunedGenerator(G)
        prob = None
        if classifiers is not None:
            clf, _ = classifier_from_manifest(classifiers, attribute, device)
            prob = functools.partial(clf.attribute_probability, attribute=attribute)
        out.append(EditModels(attribute, g["generator_id"], G, int(g["image_size"]), prob, embed))
    return out


def run_stage(cfg: PipelineConfig, inputs: StageInputs, run_dir: Path) -> StageOutputs:
    from augment.runtime import resolve_device, workers

    aligned: mf.Manifest = inputs["aligned"]
    rows = aligned.df[aligned.df["split"].isin(cfg.edit.splits)].reset_index(drop=True)
    if rows.empty:
        from augment.data.errors import DatasetError

        raise DatasetError(f"{aligned.file}: no aligned images in split(s) {list(cfg.edit.splits)} (edit.splits)")
    device = resolve_device(cfg.device)
    from augment.trained import edit_models

    models = load_models(cfg, *edit_models(cfg, inputs), device)
    # DataLoader decode workers: on a CPU box compute needs the cores, so one
    # decoder process (PNG decode of aligned crops is cheap); more on a GPU box.
    n_workers = workers(cfg.edit.workers) if device.type == "cuda" else min(1, workers(cfg.edit.workers) - 1)
    merged, drops = edit_rows(models, rows, aligned.root, run_dir, cfg.edit, device, n_workers)
    kept = len(merged)
    log.info("edit: %d edits of %d images x %d attribute(s); dropped %s", kept, len(rows), len(models),
             ", ".join(f"{k}: {v}" for k, v in drops.items()) or "none")
    extra = {"dropped": drops, "directions": cfg.edit.directions, "attributes": [m.attribute for m in models],
             "generators": {m.attribute: m.generator_id for m in models}}
    return {"edits": mf.Manifest("images", merged, run_dir, {"extra": extra})}
