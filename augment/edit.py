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
   edit, when a recognizer is configured), ``mask_area`` (mean of b) and, with
   ``edit.max_id_distance``, the distance of the pretrained identity judge's
   descriptors of edit and source (``augment.judges.identity``, dlib, on the
   aligned crops; not a manifest column: the stage's ``id_distance`` stats
   give its count, mean and maximum);
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

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from augment import distributed as dist
from augment import manifest as mf
from augment.config import EditConfig, PipelineConfig
from augment.data.celeba import attribute_index
from augment.io import read_rgb, save_edit_png, to_tensor
from augment.fs import sync_all, write_atomic
from augment.sagan.apply import (Compute, EditModels, TunedGenerator, add_distances, edit_id, id_distance_stats,
                                 identity_descriptors)
from augment.names import component
from augment.sagan.data import attribute_labels
from augment.stages import StageInputs, StageOutputs

log = logging.getLogger("augment.edit")

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


class _Images:
    """A Dataset of aligned images -> (3,H,W) float32 in [-1,1] (decoded in workers)."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return to_tensor(read_rgb(self.paths[i]))


def _passes(cfg: EditConfig, value: int, prob: float | None, sim: float | None, area: float,
            dist: float | None = None) -> str | None:
    """The name of the first filter a row fails, or None."""
    if prob is not None and cfg.min_attr_prob > 0:
        p_target = prob if value == 1 else 1.0 - prob
        if p_target < cfg.min_attr_prob:
            return "min_attr_prob"
    if sim is not None and sim < cfg.min_id_similarity:
        return "min_id_similarity"
    if dist is not None and cfg.max_id_distance > 0 and dist > cfg.max_id_distance:
        return "max_id_distance"
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
    compute: Compute,
    workers: int = 0,
    measured: dict | None = None,
) -> tuple[list[dict], dict[str, int]]:
    """Edit ``rows`` (aligned images under ``root``); write PNGs under ``out_dir``.

    ``first_index`` is the rows' position in the stage's row order; it picks
    the shard folder so that no folder holds more than ``shard_size`` files per
    attribute and value. PNGs are encoded in ``pool`` while ``compute`` edits
    the next batch. Returns (manifest rows, drops per filter); ``measured``, when
    given, gathers the identity distances (``add_distances``).
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
        # the images' own values: an edit to it is the image itself for an F_a that sees the change
        area, scored = compute(models, x, values, labels[start : start + n])
        for v in values:
            pixels, prob, sim, dist = scored[v]
            if dist is not None and measured is not None:
                add_distances(measured, [d for k, d in enumerate(dist) if v in batch_targets[k]])
            for k in range(n):
                if v not in batch_targets[k]:
                    continue
                row = rows.iloc[start + k]
                p_k = None if prob is None else float(prob[k])
                s_k = None if sim is None else float(sim[k])
                reason = _passes(edit_cfg, v, p_k, s_k, float(area[v][k]), None if dist is None else float(dist[k]))
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
                    "mask_area": float(area[v][k]),
                    "landmarks": row["landmarks"],
                    "bbox": row["bbox"],
                    "det_prob": row["det_prob"],
                    "transform": row["transform"],
                    "attributes": attrs,
                    "width": int(pixels.shape[2]),
                    "height": int(pixels.shape[1]),
                })
                pending.append((len(out_rows) - 1, pool.submit(save_edit_png, pixels[k], out_dir / rel)))
        start += n
    for idx, fut in pending:
        out_rows[idx]["sha256"] = fut.result()
    return out_rows, drops


def _part_path(run_dir: Path, attribute: str, chunk: int) -> Path:
    return run_dir / "parts" / component(attribute, "the generator attribute") / f"{chunk:06d}.parquet"


def _write_part(path: Path, rows: list[dict], drops: dict[str, int], measured: dict | None = None) -> None:
    table = mf.to_table(mf.Manifest("images", mf.frame("images", rows), path.parent))
    meta = {"drops": json.dumps(drops, sort_keys=True)}
    if measured:
        meta["id_distance"] = json.dumps(measured, sort_keys=True)
    table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    sync_all()  # the part's images are on disk before the part that lists them
    write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def _read_part(path: Path) -> tuple[pd.DataFrame, dict[str, int], dict]:
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    return table.to_pandas(), json.loads(meta.get(b"drops", b"{}")), json.loads(meta.get(b"id_distance", b"{}"))


def edit_rows(
    models_list: Sequence[EditModels],
    rows: pd.DataFrame,
    root: Path,
    run_dir: Path,
    edit_cfg: EditConfig,
    device,
    workers: int = 0,
    stats: dict | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Edit every row with every generator, resumably. Returns (rows, drops per
    filter); ``stats``, when given, gets ``id_distance`` (``id_distance_stats``)."""
    rows = rows.reset_index(drop=True)
    chunk = edit_cfg.chunk_size  # fixed per config, so a rerun redoes identical batches
    chunks = [(m, c) for m in models_list for c in range(0, len(rows), chunk)]
    mine = dist.shard(chunks)
    todo = [(m, c) for m, c in mine if not _part_path(run_dir, m.attribute, c // chunk).is_file()]
    if len(todo) < len(mine):
        log.info("edit: %d of %d chunk(s) already done, resuming", len(mine) - len(todo), len(mine))
    threads = max(2, os.cpu_count() or 2)
    compute = Compute(device)
    try:
        with ThreadPoolExecutor(threads) as pool, tqdm(total=sum(min(chunk, len(rows) - c) for _, c in todo),
                                                       desc="edit", unit="img", disable=not dist.is_main()) as bar:
            for m, c in todo:
                measured: dict = {}
                part_rows, drops = edit_chunk(m, rows.iloc[c : c + chunk], root, run_dir, c, edit_cfg, device, pool,
                                              compute, workers, measured)
                _write_part(_part_path(run_dir, m.attribute, c // chunk), part_rows, drops, measured)
                bar.update(min(chunk, len(rows) - c))
    finally:
        compute.close()
    dist.barrier()
    frames, total_drops, measured = [], {}, {}
    for m, c in chunks:  # merge in a fixed order, whatever the number of ranks
        df, drops, part_measured = _read_part(_part_path(run_dir, m.attribute, c // chunk))
        add_distances(measured, part_measured)
        frames.append(df)
        for k, v in drops.items():
            total_drops[k] = total_drops.get(k, 0) + v
    merged = pd.concat(frames, ignore_index=True) if frames else mf.frame("images", [])
    if stats is not None and edit_cfg.max_id_distance > 0:
        stats["id_distance"] = id_distance_stats(measured, edit_cfg.max_id_distance, total_drops)
    return merged, total_drops


def load_models(cfg: PipelineConfig, generators: mf.Manifest, classifiers: mf.Manifest | None, device,
                template: str | None = None) -> list[EditModels]:
    """One EditModels per trained generator, with its classifier, the optional
    recognizer and, with ``edit.max_id_distance``, the identity judge on
    ``template`` crops (default ``align.template``)."""
    import functools

    import torch

    from augment.sagan.judge import classifier_from_manifest
    from augment.trained import load_generator

    embed = None
    if cfg.edit.recognizer:
        from recognition.embed import embedder, load_recognizer

        rec, rmeta = load_recognizer(cfg.edit.recognizer, device)
        embed = embedder(rec, int(rmeta["image_size"]))
    ids = identity_descriptors(template or cfg.align.template) if cfg.edit.max_id_distance > 0 else None

    out = []
    for _, g in generators.df.iterrows():
        attribute = g["attribute"]
        G, meta = load_generator(generators, g, device)  # a checkpoint folder, or a shipped file
        G = G.to(memory_format=torch.channels_last)
        if cfg.edit.compile:
            G = TunedGenerator(G)
        prob = None
        if classifiers is not None:
            clf, _ = classifier_from_manifest(classifiers, attribute, device)
            prob = functools.partial(clf.attribute_probability, attribute=attribute)
        out.append(EditModels(attribute, g["generator_id"], G, int(g["image_size"]), prob, embed, ids,
                              strength=cfg.edit.strength))
    return out


def run_stage(cfg: PipelineConfig, inputs: StageInputs, run_dir: Path) -> StageOutputs:
    from augment.runtime import resolve_device, workers

    aligned: mf.Manifest = inputs["aligned"]
    rows = aligned.df[aligned.df["split"].isin(cfg.edit.splits)].reset_index(drop=True)
    if rows.empty:
        from augment.data.errors import DatasetError

        raise DatasetError(f"{aligned.file}: no aligned images in split(s) {list(cfg.edit.splits)} (edit.splits)")
    device = resolve_device(cfg.device)
    from augment.align.dataset import alignment_of
    from augment.trained import edit_models

    models = load_models(cfg, *edit_models(cfg, inputs), device, (alignment_of(aligned) or {}).get("template"))
    # DataLoader decode workers: on a CPU box compute needs the cores, so one
    # decoder process (PNG decode of aligned crops is cheap); more on a GPU box.
    n_workers = workers(cfg.edit.workers) if device.type == "cuda" else min(1, workers(cfg.edit.workers) - 1)
    stats: dict = {}
    merged, drops = edit_rows(models, rows, aligned.root, run_dir, cfg.edit, device, n_workers, stats)
    kept = len(merged)
    log.info("edit: %d edits of %d images x %d attribute(s); dropped %s", kept, len(rows), len(models),
             ", ".join(f"{k}: {v}" for k, v in drops.items()) or "none")
    extra = {"dropped": drops, "directions": cfg.edit.directions, "attributes": [m.attribute for m in models],
             "generators": {m.attribute: m.generator_id for m in models}, **stats}
    return {"edits": mf.Manifest("images", merged, run_dir, {"extra": extra})}
