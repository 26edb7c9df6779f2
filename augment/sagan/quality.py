"""Edit quality of one image, and its summary over many: pure numpy, no I/O.

``image_metrics`` compares an edit with its input, its mask, the attribute's
template region (``augment.judges.regions``: locality without a model) and (on
SynthFaces) the exact counterfactual and the true changed region; ``smudge``
makes the failed-edit look-alike that ``smudge_accept`` shows the judge.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from augment.judges.colour import novel_colour
from augment.judges.regions import mass_in_region, outside_change

SMUDGE_DARKEN = 0.5  # smudge_accept: the (blurred) true region at half its brightness
SMUDGE_BLUR = 1 / 12  # Gaussian sigma of the smudge, a fraction of the image side (4 px at 48 px)



def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1] (capped at 100 for identical images)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse <= 1e-10 else 10 * math.log10(1.0 / mse)


def image_metrics(x: np.ndarray, edit: np.ndarray, mask: np.ndarray, cf: np.ndarray | None = None,
                  cov: np.ndarray | None = None, region: np.ndarray | None = None) -> dict[str, float]:
    """One image. x, edit, cf: (S,S,3) in [0,1]; mask, cov: (S,S) in [0,1]; region:
    (S,S) in {0,1}, the attribute's template region at the same S (or None)."""
    change = np.abs(edit - x).mean(axis=2)
    outside = mask < 0.5
    out = {
        "mask_area": float(mask.mean()),
        "outside_change_mask": float(change[outside].mean()) if outside.any() else 0.0,
        # colours the edit brought that the face did not have (tints, speckle); None: nothing changed
        "novel_colour": novel_colour(x, edit),
    }
    if region is not None:  # where the attribute lives on an aligned face: no model, no ground truth
        out["outside_change_region"] = outside_change(x, edit, region)
        out["mask_in_region"] = mass_in_region(mask, region)
    if cf is not None and cov is not None:
        true = cov > 0.5
        untouched = cov <= 0
        out.update({
            "mask_iou": _iou(mask > 0.5, true),
            # where the mask is, whatever its scale: a mask that localises the
            # change but stays below 0.5 scores 0 above and high here
            "mask_iou_relative": _iou(mask > 0.5 * mask.max(), true) if mask.max() > 0 else 0.0,
            "outside_change": float(change[untouched].mean()) if untouched.any() else 0.0,
            # the mask's mass on pixels the truth changed at all (c > 0, the complement
            # of outside_change's pixels): mask_in_region against the true region
            "mask_in_true_region": mass_in_region(mask, (cov > 0).astype(np.float32)),
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
    for k in ("mask_iou", "outside_change", "mask_in_true_region", "outside_change_region", "mask_in_region",
              "novel_colour",
              "psnr_vs_truth", "psnr_region_vs_truth", "psnr_region_input_vs_truth",
              "smudge_accept", "darken_accept"):
        out.setdefault(k, None)
    if out["psnr_region_vs_truth"] is not None and out["psnr_region_input_vs_truth"] is not None:
        # how much closer to the truth the edit is than the input, where it matters
        out["psnr_region_gain"] = out["psnr_region_vs_truth"] - out["psnr_region_input_vs_truth"]
    else:
        out["psnr_region_gain"] = None
    return out
