"""The ``oracle`` stage: perfect edits, the upper bound of what edits can buy.

For every row of the SaGAN edits manifest (an aligned image, an attribute, a
target value) it writes what a perfect editor would have produced: SynthFaces'
exact counterfactual of the source photo, warped by the aligned row's own
2x3 transform into the aligned crop (the align stage's warp, so outside the
true region the pixels equal the aligned original's). Where the target value
is the one the photo already shows, the perfect edit is the photo itself.

The manifest has the edits' schema and rows in the same order, with
``source`` and ``generator_id`` = ``oracle``, ``mask_area`` the mean of the
true changed region (0 for the unchanged copies) and no classifier or
recognizer scores. ``train_recognition`` trains ``+<Attribute>:oracle`` on it
with the budget and seeds of ``+<Attribute>``, so the SaGAN gain can be read
as a fraction of the oracle's.

Only SynthFaces has counterfactuals: the edited splits must be listed in
``synth.groundtruth_splits``. Images are written atomically and skipped when
already there, so an interrupted stage resumes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from augment import manifest as mf
from augment.config import PipelineConfig
from augment.data.attributes import from_vectors
from augment.data.celeba import attribute_index
from augment.data.errors import DatasetError
from augment.groundtruth import groundtruth_index, perfect_edit
from augment.io import save_edit_png
from augment.fs import sync_all
from augment.names import component
from augment.stages import StageInputs, StageOutputs

log = logging.getLogger("augment.oracle")

GENERATOR_ID = "oracle"


def oracle_id(parent_id: str, attribute: str, value: int) -> str:
    """Sample id of an oracle edit (distinct from the SaGAN edit of the same row)."""
    return hashlib.sha1(f"oracle:{parent_id}:{attribute}:{value}".encode()).hexdigest()[:16]


def _write_png(arr: np.ndarray, path: Path) -> str:
    """PNG (as the edit stage writes them), written atomically; the sha256 of its
    bytes. An existing file is kept (resume)."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return save_edit_png(arr, path)  # synced once, below


def oracle_edits(edits: mf.Manifest, aligned: mf.Manifest, gt: mf.Manifest, out_dir: Path,
                 threads: int = 2, progress: bool = True) -> mf.Manifest:
    """The oracle counterpart of every row of ``edits``; images under ``out_dir``."""
    by_id = aligned.df.set_index("sample_id", drop=False)
    e = edits.df
    missing_parent = sorted(set(e["parent_id"]) - set(by_id.index))
    if missing_parent:
        raise DatasetError(f"{edits.file or edits.root}: {len(missing_parent)} edit(s) have a parent that is not in "
                           f"{aligned.file or aligned.root} (e.g. {missing_parent[0]})")
    sources = set(aligned.df["source"].dropna())
    truths = {a: groundtruth_index(gt, a, sources) for a in sorted(e["attribute"].unique())}
    parents = by_id.loc[e["parent_id"]].reset_index(drop=True)
    current = np.empty(len(e), dtype=np.int8)
    for a in truths:
        sel = (e["attribute"] == a).to_numpy()
        current[sel] = from_vectors(parents.loc[sel, "attributes"], a)
    values = e["target_value"].astype(int).to_numpy()
    need = values != current
    no_truth = [parents.at[i, "path"] for i in np.flatnonzero(need)
                if parents.at[i, "sample_id"] not in truths[e["attribute"].iat[i]]]
    if (current < 0).any():
        raise DatasetError(f"{int((current < 0).sum())} edited image(s) have no attribute label, so the oracle "
                           f"cannot tell which value they show (e.g. {parents.at[int(np.argmax(current < 0)), 'path']})")
    if no_truth:
        splits = sorted(set(parents.loc[need, "split"]))
        raise DatasetError(
            f"the oracle needs SynthFaces' exact counterfactuals, and {len(no_truth)} edited image(s) have none "
            f"(e.g. {no_truth[0]}); list the edited split(s) {splits} in synth.groundtruth_splits"
        )

    def one(i: int) -> dict:
        parent, attribute, value = parents.iloc[i], e["attribute"].iat[i], int(values[i])
        truth = truths[attribute].get(parent["sample_id"])
        pixels, area = perfect_edit(parent, Path(aligned.root), truth, Path(gt.root), value, int(current[i]))
        sid = oracle_id(parent["sample_id"], attribute, value)
        rel = f"{component(attribute, f'{edits.file or edits.root}: attribute')}/{value}/{sid[:2]}/{sid}.png"
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        attrs = np.array(parent["attributes"], dtype=np.int8)
        attrs[attribute_index(attribute)] = 1 if value == 1 else -1
        return {
            "sample_id": sid, "path": rel, "identity": int(parent["identity"]),
            "identity_name": parent["identity_name"], "split": parent["split"], "source": "oracle",
            "parent_id": parent["sample_id"], "attribute": attribute, "target_value": value,
            "generator_id": GENERATOR_ID, "attr_prob": None, "id_similarity": None, "mask_area": area,
            "landmarks": parent["landmarks"], "bbox": parent["bbox"], "det_prob": parent["det_prob"],
            "transform": parent["transform"], "attributes": attrs,
            "width": int(pixels.shape[1]), "height": int(pixels.shape[0]), "sha256": _write_png(pixels, path),
        }  # fmt: skip

    with ThreadPoolExecutor(max(1, threads)) as pool:
        rows = list(tqdm(pool.map(one, range(len(e))), total=len(e), desc="oracle", unit="img", disable=not progress))
    sync_all()  # every image on disk before the manifest that lists them
    changed = int(need.sum())
    extra = {"changed": changed, "copies": len(e) - changed, "edits": str(edits.file or "")}
    return mf.Manifest("images", mf.frame("images", rows), out_dir, {"extra": extra})


def run_stage(cfg: PipelineConfig, inputs: StageInputs, run_dir: Path) -> StageOutputs:
    """``oracle``: the exact-counterfactual twin of the edit stage's manifest."""
    m = oracle_edits(inputs["edits"], inputs["aligned"], inputs["groundtruth"], Path(run_dir),
                     threads=max(2, os.cpu_count() or 2))
    log.info("oracle: %d perfect edits (%d changed, %d copies of the photo)", len(m),
             m.meta["extra"]["changed"], m.meta["extra"]["copies"])
    return {"oracle_edits": m}
