"""The ``eval_sagan`` stage: how well each generator edits, on held-out aligned faces.

Every image of the evaluation split with a known label is edited to the other
value (``add`` when it lacks the attribute, ``remove`` when it has it), at the
generator's own resolution; all images are on a [0, 1] scale. Per attribute,
overall and per direction:

- ``edit_success``: the independent attribute classifier (not D) agrees with
  the target (P > 0.5 for add, < 0.5 for remove);
- ``outside_change_mask``: mean |edit - input| where the mask is < 0.5;
- ``mask_area``: the mean of the mask;
- ``classifier_accuracy``: the classifier's accuracy on the unedited images.

With SynthFaces ground truth (the ``groundtruth`` manifest of the synth stage),
the true counterfactual and changed-region mask are warped with the aligned
row's own 2x3 transform and reduced to the generator's size exactly as the
input was (area averaging), which gives per pixel the fraction c of the true
changed region it covers:

- ``mask_iou``: IoU of (mask > 0.5) with (c > 0.5); ``mask_iou_relative``
  thresholds the mask at half its maximum instead (localisation alone);
- ``outside_change``: mean |edit - input| over pixels with c == 0 (untouched
  in truth), the change the edit should not have made;
- ``psnr_vs_truth``: PSNR of the edit against the true counterfactual, and for
  reference ``psnr_input_vs_truth``, the unedited input against it;
- ``psnr_region_vs_truth`` / ``psnr_region_input_vs_truth``: the same two over
  the pixels of the true changed region only (c > 0.5), the mean over images;
  ``psnr_region_gain`` is their difference (> 0: the edit moved the region
  towards the truth; a copy of the input scores 0);
- ``truth_success``: the classifier's agreement with the target on the true
  counterfactuals, i.e. the ``edit_success`` a perfect edit would get;
- ``smudge_accept``: on the images the edit must add the attribute to, how
  often the classifier takes the input with its true region, blurred, darkened
  to half its brightness (``smudge``) for one with the attribute. A judge that
  accepts such a patch cannot tell a failed edit from a real one (want ~0).
  ``darken_accept``: the same with the region darkened as it is, unblurred
  (for Eyeglasses that is a pair of dark glasses, so a good judge accepts it).

Writes ``<run_dir>/metrics.json`` ({"<Attribute>": {...}}) and one grid per
attribute in ``<run_dir>/samples/``: input | edit | truth | mask | true region,
the first rows adding the attribute, the rest removing it.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from augment import manifest as mf
from augment.align.warp import warp as align_warp
from augment.config import PipelineConfig
from augment.data.errors import DatasetError
from augment.io import read_mask, read_rgb, resize_square, save_png, to_tensor, write_json
from augment.names import component
from augment.runtime import resolve_device
from augment.sagan.classifier import classifier_from_manifest
from augment.sagan.data import attribute_labels
from augment.sagan.generators import load_generator
from augment.stages import StageInputs, StageOutputs

log = logging.getLogger("augment.eval_sagan")

GRID_IMAGES = 8
SMUDGE_DARKEN = 0.5  # smudge_accept: the (blurred) true region at half its brightness
SMUDGE_BLUR = 1 / 12  # Gaussian sigma of the smudge, a fraction of the image side (4 px at 48 px)


# --------------------------------------------------------------------------- #
# Ground truth
# --------------------------------------------------------------------------- #


def groundtruth_index(gt: mf.Manifest, attribute: str, sources: set[str]) -> dict[str, pd.Series]:
    """sample_id of the source image -> its ground-truth row for ``attribute``.

    The ground truth names source images relative to the synth root, source
    manifests relative to a dataset root below it (``celeba/``), so every
    suffix of the path is tried with every source name; sample ids are hashes
    of (source, relative path), so the right one matches and others do not.
    """
    rows = gt.df[gt.df["attribute"] == attribute]
    out: dict[str, pd.Series] = {}
    for _, row in rows.iterrows():
        parts = Path(row["image"]).parts
        for i in range(len(parts)):
            rel = Path(*parts[i:]).as_posix()
            for src in sources:
                out.setdefault(mf.sample_id(src, rel), row)
    return out


def to_model_size(img: np.ndarray, transform, aligned_size: int, size: int) -> np.ndarray:
    """Source-resolution image -> aligned (the align stage's own warp, by the row's 2x3
    ``transform``, ``aligned_size`` px) -> the model's ``size`` px by area averaging, as
    the aligned input itself was reduced (``read_rgb``)."""
    out = align_warp(img, np.asarray(transform, dtype=np.float64).reshape(2, 3), aligned_size)
    return resize_square(out, size)


def truth_for(row: pd.Series, gt_root: Path, transform, aligned_size: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(counterfactual (S,S,3) float32 in [0,1], coverage of the changed region (S,S) in [0,1])."""
    if transform is None or len(transform) != 6:
        raise DatasetError(f"aligned row of {row['image']} has no 2x3 transform; cannot align its ground truth")
    cf = to_model_size(read_rgb(gt_root / row["counterfactual"]), transform, aligned_size, size)
    cov = to_model_size(read_mask(gt_root / row["mask"]), transform, aligned_size, size)
    cf = cf.astype(np.float32) / 255
    return cf, np.clip(cov, 0.0, 1.0)


# --------------------------------------------------------------------------- #
# Metrics
# --------------------------------------------------------------------------- #


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1] (capped at 100 for identical images)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse <= 1e-10 else 10 * math.log10(1.0 / mse)


def image_metrics(x: np.ndarray, edit: np.ndarray, mask: np.ndarray, cf: np.ndarray | None = None,
                  cov: np.ndarray | None = None) -> dict[str, float]:
    """One image. x, edit, cf: (S,S,3) in [0,1]; mask, cov: (S,S) in [0,1]."""
    change = np.abs(edit - x).mean(axis=2)
    outside = mask < 0.5
    out = {
        "mask_area": float(mask.mean()),
        "outside_change_mask": float(change[outside].mean()) if outside.any() else 0.0,
    }
    if cf is not None and cov is not None:
        true = cov > 0.5
        untouched = cov <= 0
        out.update({
            "mask_iou": _iou(mask > 0.5, true),
            # where the mask is, whatever its scale: a mask that localises the
            # change but stays below 0.5 scores 0 above and high here
            "mask_iou_relative": _iou(mask > 0.5 * mask.max(), true) if mask.max() > 0 else 0.0,
            "outside_change": float(change[untouched].mean()) if untouched.any() else 0.0,
            "psnr_vs_truth": psnr(edit, cf),
            "psnr_input_vs_truth": psnr(x, cf),
            # the same inside the true changed region only, where the edit has
            # to do its work (the whole-image PSNR is dominated by the pixels
            # that both leave alone); None when the image has no such pixel
            "psnr_region_vs_truth": psnr(edit[true], cf[true]) if true.any() else None,
            "psnr_region_input_vs_truth": psnr(x[true], cf[true]) if true.any() else None,
            "true_area": float(cov.mean()),
        })
    return out


def smudge(x: np.ndarray, cov: np.ndarray, darken: float = SMUDGE_DARKEN, blur: float = SMUDGE_BLUR) -> np.ndarray:
    """The input with its true changed region darkened: x (S,S,3) in [0,1], cov (S,S) in [0,1]
    -> (S,S,3) in [0,1], x * (1 - darken * r), r = cov blurred by a Gaussian of
    sigma ``blur`` * S and rescaled to a maximum of 1 (``blur`` 0: r = cov).

    Blurred, it is what a generator that found the region but paints no
    attribute there produces: a dark patch over the eyes without the shape of a
    frame. Unblurred, the region of a pair of glasses darkened is a pair of dark
    glasses (SynthFaces has tinted lenses), which a good judge should accept."""
    r = cov.astype(np.float32)
    if blur > 0:
        r = cv2.GaussianBlur(r, (0, 0), blur * cov.shape[0])
        r = r / r.max() if r.max() > 0 else r
    return (x * (1.0 - darken * r[..., None])).astype(np.float32)


def _iou(pred: np.ndarray, true: np.ndarray) -> float:
    union = (pred | true).sum()
    return float((pred & true).sum() / union) if union else 1.0


def summarise(records: list[dict]) -> dict:
    """Means over images of every per-image metric; ``images`` and ``groundtruth_images`` counts."""
    out: dict = {"images": len(records)}
    keys = sorted({k for r in records for k in r})
    for k in keys:
        vals = [r[k] for r in records if r.get(k) is not None]
        out[k] = float(np.mean(vals)) if vals else None
    out["groundtruth_images"] = sum(1 for r in records if r.get("mask_iou") is not None)
    for k in ("mask_iou", "outside_change", "psnr_vs_truth", "psnr_region_vs_truth", "psnr_region_input_vs_truth",
              "smudge_accept", "darken_accept"):
        out.setdefault(k, None)
    if out["psnr_region_vs_truth"] is not None and out["psnr_region_input_vs_truth"] is not None:
        # how much closer to the truth the edit is than the input, where it matters
        out["psnr_region_gain"] = out["psnr_region_vs_truth"] - out["psnr_region_input_vs_truth"]
    else:
        out["psnr_region_gain"] = None
    return out


def _grid(cols: list[np.ndarray]) -> np.ndarray:
    """Columns of (N,S,S,3) uint8 -> one (N*S, len(cols)*S, 3) image."""
    return np.concatenate([np.concatenate(list(row), axis=1) for row in zip(*cols)], axis=0)


@torch.no_grad()
def evaluate_attribute(attribute: str, generator_dir: Path, classifiers: mf.Manifest, aligned: mf.Manifest,
                       gt: mf.Manifest | None, split: str, max_images: int, batch_size: int,
                       device: torch.device) -> tuple[dict, np.ndarray | None]:
    """Metrics of one generator (see the module docstring) and a sample grid."""
    G, gmeta = load_generator(generator_dir, attribute, device)
    clf, cmeta = classifier_from_manifest(classifiers, attribute, device)
    size = int(gmeta["image_size"])
    df = aligned.df[aligned.df["split"] == split].reset_index(drop=True)
    labels = attribute_labels(df, attribute)
    df, labels = df[labels >= 0].reset_index(drop=True), labels[labels >= 0]
    if max_images > 0:
        df, labels = df.iloc[:max_images].reset_index(drop=True), labels[:max_images]
    if len(df) == 0:
        raise DatasetError(f"{aligned.file or aligned.root}: no '{split}' image has a label for {attribute}")
    gt_index = groundtruth_index(gt, attribute, set(df["source"])) if gt is not None else {}

    records: dict[str, list[dict]] = {"add": [], "remove": []}
    correct_orig: list[bool] = []
    # the first GRID_IMAGES / 2 images of each direction: input | edit | truth | mask | true region
    grid_rows: dict[str, list[list[np.ndarray]]] = {"add": [], "remove": []}
    for start in tqdm(range(0, len(df), batch_size), desc=f"eval_sagan {attribute}", unit="batch"):
        rows = df.iloc[start : start + batch_size]
        y = labels[start : start + batch_size]
        x = to_tensor(np.stack([read_rgb(aligned.root / p, size) for p in rows["path"]])).to(device)
        c_trg = torch.from_numpy(1 - y).float().to(device)
        edit, mask = G(x, c_trg)
        p_edit = clf.attribute_probability(edit, attribute).cpu().numpy()
        p_orig = clf.attribute_probability(x, attribute).cpu().numpy()
        correct_orig += list((p_orig > 0.5) == (y == 1))
        x01 = (x.permute(0, 2, 3, 1).cpu().numpy() + 1) / 2
        e01 = (edit.clamp(-1, 1).permute(0, 2, 3, 1).cpu().numpy() + 1) / 2
        m01 = mask[:, 0].cpu().numpy()
        truths: list[tuple[int, int, np.ndarray]] = []  # (record index, target, counterfactual)
        smudges: list[tuple[int, np.ndarray, np.ndarray]] = []  # (add record index, smudge, plain darkening)
        for i, (_, row) in enumerate(rows.iterrows()):
            g = gt_index.get(row["sample_id"])
            cf = cov = None
            if g is not None:
                aligned_size = int(row["width"]) if pd.notna(row.get("width")) else read_rgb(
                    aligned.root / row["path"]).shape[1]
                cf, cov = truth_for(g, gt.root, row["transform"], aligned_size, size)
            rec = image_metrics(x01[i], e01[i], m01[i], cf, cov)
            target = int(1 - y[i])
            rec["edit_success"] = float((p_edit[i] > 0.5) == (target == 1))
            rec["attr_prob"] = float(p_edit[i])
            if cf is not None:
                truths.append((len(records["add" if target == 1 else "remove"]), target, cf))
                if target == 1:
                    smudges.append((len(records["add"]), smudge(x01[i], cov), smudge(x01[i], cov, blur=0.0)))
            direction = "add" if target == 1 else "remove"
            if len(grid_rows[direction]) < GRID_IMAGES // 2:
                blank = np.zeros_like(x01[i])
                grid_rows[direction].append([
                    (arr * 255).round().astype(np.uint8) for arr in (
                        x01[i], e01[i], cf if cf is not None else blank, np.repeat(m01[i][..., None], 3, 2),
                        np.repeat(cov[..., None], 3, 2) if cov is not None else blank)])
            records[direction].append(rec)
        if truths:  # the judge on the true counterfactuals: how far a perfect edit would score
            cf_t = torch.from_numpy(np.stack([t[2] for t in truths])).permute(0, 3, 1, 2).float().mul(2).sub(1)
            p_truth = clf.attribute_probability(cf_t.to(device), attribute).cpu().numpy()
            for (k, target, _), p in zip(truths, p_truth):
                records["add" if target == 1 else "remove"][k]["truth_success"] = float((p > 0.5) == (target == 1))
        if smudges:  # would the judge take a dark smudge on the true region for the attribute?
            for j, key in ((1, "smudge_accept"), (2, "darken_accept")):
                sm = torch.from_numpy(np.stack([t[j] for t in smudges])).permute(0, 3, 1, 2).float().mul(2).sub(1)
                p_smudge = clf.attribute_probability(sm.to(device), attribute).cpu().numpy()
                for t, p in zip(smudges, p_smudge):
                    records["add"][t[0]][key] = float(p > 0.5)

    result = summarise(records["add"] + records["remove"])
    result.update({
        "add": summarise(records["add"]),
        "remove": summarise(records["remove"]),
        "classifier_accuracy": float(np.mean(correct_orig)),
        "classifier_heldout_accuracy": _heldout(cmeta, attribute),
        "split": split,
        "image_size": size,
        "generator_step": int(gmeta["step"]),
    })
    rows_all = grid_rows["add"] + grid_rows["remove"]
    grid = _grid([np.stack(c) for c in zip(*rows_all)]) if rows_all else None
    return result, grid


def _heldout(cmeta: dict, attribute: str) -> float | None:
    m = (cmeta.get("metrics") or {}).get(attribute) or {}
    return m.get("accuracy")


def run_stage(cfg: PipelineConfig, inputs: StageInputs, run_dir: Path) -> StageOutputs:
    """eval_sagan: every generator of ``generators`` on the ``eval_sagan.split`` of
    ``aligned`` -> ``<run_dir>/metrics.json``."""
    sagan_eval_cfg = cfg.eval_sagan
    device = resolve_device(cfg.device)
    gens: mf.Manifest = inputs["generators"]
    gt: mf.Manifest | None = inputs.get("groundtruth")
    metrics: dict[str, dict] = {}
    aligned = inputs.get("sagan_aligned", inputs["aligned"])  # data.sagan, else data.train
    for _, row in gens.df.iterrows():
        attribute = row["attribute"]
        result, grid = evaluate_attribute(attribute, gens.root / row["path"], inputs["classifiers"],
                                          aligned, gt, sagan_eval_cfg.split, sagan_eval_cfg.max_images,
                                          sagan_eval_cfg.batch_size, device)
        result["generator_id"] = row["generator_id"]
        result.update(_identity(cfg, inputs, gens.root / row["path"], attribute, gt, device))
        metrics[attribute] = result
        log.info("[eval_sagan] %s: %s", attribute, json.dumps(
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()
             if k in ("edit_success", "outside_change", "mask_iou", "psnr_vs_truth", "psnr_region_gain",
                      "smudge_accept", "classifier_accuracy",
                      "mask_area", "images")}))
        if grid is not None:
            save_png(grid, run_dir / "samples" / component(f"{attribute}.png", f"{gens.file or gens.root}: attribute"))
    path = run_dir / "metrics.json"
    write_json(path, metrics)
    return {"sagan_metrics": path}


def _identity(cfg: PipelineConfig, inputs: dict, generator_dir: Path, attribute: str, gt: mf.Manifest | None,
              device) -> dict:
    """id_preserved and (with SynthFaces' ground truth) its oracle twin
    (augment.sagan.identity), when this pipeline has trained and evaluated a
    baseline recognizer; on the images judged above (data.sagan's, else data.train's
    ``eval_sagan.split`` rows: people neither the generator nor the recognizer trained on)."""
    if "recognizers" not in inputs or "recognition_metrics" not in inputs:
        return {}
    from augment.sagan.identity import baseline_recognizer, id_preservation, lfw_threshold

    G, gmeta = load_generator(generator_dir, attribute, device)
    rec, rsize = baseline_recognizer(inputs["recognizers"], device)
    aligned = inputs.get("sagan_aligned", inputs["aligned"])
    rows = aligned.df[aligned.df["split"] == cfg.eval_sagan.split].reset_index(drop=True)
    if cfg.eval_sagan.max_images > 0:
        rows = rows.iloc[: cfg.eval_sagan.max_images]
    out = id_preservation(G, int(gmeta["image_size"]), attribute, aligned, rows, gt, rec, rsize,
                          lfw_threshold(inputs["recognition_metrics"]), device, cfg.eval_sagan.batch_size)
    oracle = (f" (oracle {out['id_preserved_oracle']:.3f}, {out['id_similarity_oracle']:.3f})"
              if out["id_preserved_oracle"] is not None else " (no ground truth: no oracle)")
    log.info("[eval_sagan] %s: id_preserved %.3f, id_similarity %.3f on %d images%s", attribute,
             out["id_preserved"], out["id_similarity"], out["id_images"], oracle)
    return out
