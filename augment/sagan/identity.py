"""Identity preservation: is an edited face still the same person?

The property SaGAN's attention is for. With the run's baseline recognizer
(a model this run trains itself, on data like the generator's: metrics.json's
``judges.identity_run`` says so; the independent judge, dlib's pretrained
recognizer, makes ``id_distance`` and ``id_kept`` in ``augment.sagan.judged``),
each test image and its edit (the attribute flipped, made exactly as the edit
stage makes it: the generator's output blended into the full-resolution
aligned crop) are embedded; reported are their mean cosine similarity and the
fraction verified as the same person at the threshold the LFW protocol chose
for that recognizer. The same for SynthFaces' exact counterfactual of each
image (the oracle): its figure is the ceiling an editor can reach, since even a
perfect edit changes the face a little. Without ground truth (real faces) the
edits alone are measured and the ``_oracle`` figures are None.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from augment import manifest as mf
from augment.data.attributes import from_vectors
from augment.data.errors import DatasetError
from augment.io import read_rgb, to_tensor


def lfw_threshold(recognition_metrics: Path, model: str = "baseline") -> float:
    """The mean over folds of the threshold the LFW protocol chose for ``model``."""
    metrics = json.loads(Path(recognition_metrics).read_text())
    lfw = (metrics.get("protocols") or {}).get("lfw")
    if lfw is None or model not in lfw.get("models", {}):
        raise DatasetError(f"{recognition_metrics}: no 'lfw' result for model '{model}'; identity preservation "
                           "needs the evaluate stage's lfw protocol")
    return float(np.mean(lfw["models"][model]["fold_thresholds"]))


def baseline_recognizer(recognizers: mf.Manifest, device) -> tuple[torch.nn.Module, int]:
    from recognition.embed import load_recognizer

    rows = recognizers.df[recognizers.df["name"] == "baseline"]
    if rows.empty:
        raise DatasetError(f"{recognizers.file or recognizers.root}: no recognizer named 'baseline'")
    model, meta = load_recognizer(Path(recognizers.root) / rows["path"].iloc[0], device)
    return model, int(meta["image_size"])


@torch.no_grad()
def id_preservation(generator, generator_size: int, attribute: str, aligned: mf.Manifest, rows: pd.DataFrame,
                    gt: mf.Manifest | None, recognizer: torch.nn.Module, recognizer_size: int, threshold: float,
                    device="cpu", batch_size: int = 32) -> dict:
    """``id_preserved`` (fraction of edits with cosine > ``threshold``), ``id_similarity``
    (mean cosine) and their ``_oracle`` twins over the ``rows`` of ``aligned`` that have a
    label and (with ``gt``) an exact counterfactual; each edit flips the image's attribute.
    ``gt`` None: every labelled row, no oracle (its figures None)."""
    from augment.sagan.apply import EditModels, edit_batch
    from augment.groundtruth import groundtruth_index, perfect_edit
    from recognition.embed import embedder

    labels = from_vectors(rows["attributes"], attribute)
    if gt is None:
        keep = [(i, None) for i in range(len(rows)) if labels[i] >= 0]
    else:
        truths = groundtruth_index(gt, attribute, set(rows["source"].dropna()))
        keep = [(i, truths[s]) for i, s in enumerate(rows["sample_id"]) if labels[i] >= 0 and s in truths]
    if not keep:
        raise DatasetError(f"no labelled image{' with an exact counterfactual' if gt is not None else ''} of "
                           f"{attribute} to measure identity on")
    models = EditModels(attribute, "", generator, generator_size)

    embed = embedder(recognizer, recognizer_size)

    def tensor(arrs: list[np.ndarray]) -> torch.Tensor:
        return to_tensor(np.stack(arrs)).to(device)

    sim, sim_oracle = [], []
    for b in range(0, len(keep), batch_size):
        part = keep[b : b + batch_size]
        srcs, cfs, targets = [], [], []
        for i, truth in part:
            row = rows.iloc[i]
            target = 1 - int(labels[i])
            if truth is not None:
                cf, _ = perfect_edit(row, Path(aligned.root), truth, Path(gt.root), target, int(labels[i]))
                cfs.append(cf)
            srcs.append(read_rgb(Path(aligned.root) / row["path"]))
            targets.append(target)
        x = tensor(srcs)
        e_src = embed(x)
        t = torch.tensor(targets, device=x.device)
        _, out = edit_batch(models, x, sorted(set(targets)))  # one attention pass for every target value
        edited = torch.empty_like(x)
        for v, xe in out.items():  # each image keeps the edit to its own target
            edited[t == v] = xe[t == v].clamp(-1, 1)
        sim.append((embed(edited) * e_src).sum(1).cpu().numpy())
        if cfs:
            sim_oracle.append((embed(tensor(cfs)) * e_src).sum(1).cpu().numpy())
    s = np.concatenate(sim)
    so = np.concatenate(sim_oracle) if sim_oracle else None
    return {
        "id_preserved": float((s > threshold).mean()), "id_similarity": float(s.mean()),
        "id_preserved_oracle": None if so is None else float((so > threshold).mean()),
        "id_similarity_oracle": None if so is None else float(so.mean()),
        "id_threshold": threshold, "id_images": int(s.size),
    }  # fmt: skip

