"""The ``eval_sagan`` stage: how well each generator edits, on held-out aligned faces.

Every image of the evaluation split with a known label is edited to the other
value (``add`` when it lacks the attribute, ``remove`` when it has it), at the
generator's own resolution; all images are on a [0, 1] scale. Per attribute,
overall and per direction:

- ``edit_success``: the independent attribute classifier (not D) agrees with
  the target (P > 0.5 for add, < 0.5 for remove);
- ``outside_change_mask``: mean |edit - input| where the mask is < 0.5;
- ``mask_area``: the mean of the mask;
- ``classifier_accuracy``: the classifier's accuracy on the unedited images;
- ``outside_change_region``: mean |edit - input| outside the attribute's
  template region (``augment.judges.regions``, placed by the aligned
  manifest's template at the generator's size: locality without a model), and
  ``mask_in_region``: the fraction of the mask's mass inside it; both absent
  for an attribute without a region or a manifest without a template;
- ``novel_colour``: of the pixels the edit changed, the share whose colour
  is far from every colour of the input's face (``augment.judges.colour``):
  the tints and colour speckle that can pass a classifier, counted without one.

Identity, by dlib's pretrained recognizer, a judge that owes nothing to the
generator (``augment.sagan.judged``; the ``judges`` extra): ``id_distance``,
``id_distance_p95``, ``id_kept`` and their ``_oracle`` twins, at the aligned
size, beside ``id_reference`` (the judge's distances between photos of one
person, of two people, and of a photo and itself shifted 2 px, on the same
aligned images). Without the extra those are absent and ``judges.identity``
holds the one line that says what installs it. ``judges`` names, per
attribute, which model made which figure: the attribute classifier made by
train_classifier, dlib's recognizer, the template regions, and for
``id_preserved`` / ``id_similarity`` (when train_recognition and evaluate run
before it) the run's own baseline recognizer.

With SynthFaces ground truth (the ``groundtruth`` manifest of the synth stage),
the true counterfactual and changed-region mask are warped with the aligned
row's own 2x3 transform and reduced to the generator's size exactly as the
input was (area averaging), which gives per pixel the fraction c of the true
changed region it covers:

- ``mask_iou``: IoU of (mask > 0.5) with (c > 0.5); ``mask_iou_relative``
  thresholds the mask at half its maximum instead (localisation alone);
- ``outside_change``: mean |edit - input| over pixels with c == 0 (untouched
  in truth), the change the edit should not have made (``outside_change_region``
  against the true region); ``mask_in_true_region``: the fraction of the mask's
  mass on pixels with c > 0 (``mask_in_region`` against the true region);
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

It also draws the report's edit grids, so that the report shows images a stage
wrote rather than running the generators itself: per attribute
``<run_dir>/grids/<attribute>.png``, ``report.grid_images`` held-out faces
(``grid_rows``: the first half with the attribute, the rest without) as rows of
input | edited to 1 | edited to 0 | mask (``edit_grid``, through the edit
stage's code path ``augment.sagan.apply.edit_batch``, at the aligned size).
``<run_dir>/grids.json``, the ``sagan_grids`` output, lists them in the order of
``generators``: [{"attribute", "file": "grids/<attribute>.png", "rows", "sha256"}].
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from augment import manifest as mf
from augment.config import PipelineConfig
from augment.data.errors import DatasetError
from augment.io import read_rgb, save_png, tile, to_tensor, to_uint8
from augment.fs import write_json
from augment.names import component
from augment.runtime import resolve_device
from augment.align.dataset import alignment_of
from augment.judges.regions import region_mask
from augment.sagan import judged
from augment.groundtruth import groundtruth_index, truth_for
from augment.sagan.apply import EditModels, edit_batch, strengthened
from augment.sagan.judge import classifier_from_manifest
from augment.sagan.quality import image_metrics, smudge, summarise
from augment.sagan.data import attribute_labels
from augment.sagan.judged import heldout_rows, locality_problem
from augment.sagan.generators import load_generator
from augment.stages import StageInputs, StageOutputs

log = logging.getLogger("augment.eval_sagan")

GRID_IMAGES = 8


@torch.no_grad()
def evaluate_attribute(attribute: str, generator_dir: Path, classifiers: mf.Manifest, aligned: mf.Manifest,
                       gt: mf.Manifest | None, split: str, max_images: int, batch_size: int,
                       device: torch.device, template: str | None = None,
                       strength: float = 1.0) -> tuple[dict, np.ndarray | None]:
    """Metrics of one generator (see the module docstring) and a sample grid;
    ``template``: the aligned crops' template, which places the locality region;
    ``strength``: the mask scaled by it and clipped at 1 (``edit.strength``; 1 = as trained)."""
    G, gmeta = load_generator(generator_dir, attribute, device)
    clf, cmeta = classifier_from_manifest(classifiers, attribute, device)
    size = int(gmeta["image_size"])
    # the region at the size of the arrays it is compared with: the generator's
    region = region_mask(attribute, template, size) if locality_problem(attribute, template) is None else None
    df, labels = heldout_rows(aligned, split, attribute, max_images)
    if len(df) == 0:
        raise DatasetError(f"{aligned.file or aligned.root}: no '{split}' image has a label for {attribute}")
    gt_index = groundtruth_index(gt, attribute, set(df["source"])) if gt is not None else {}

    records: dict[str, list[dict]] = {"add": [], "remove": []}
    correct_orig: list[bool] = []
    # the first GRID_IMAGES / 2 images of each direction: input | edit | truth | mask | true region
    sample_rows: dict[str, list[list[np.ndarray]]] = {"add": [], "remove": []}
    for start in tqdm(range(0, len(df), batch_size), desc=f"eval_sagan {attribute}", unit="batch"):
        rows = df.iloc[start : start + batch_size]
        y = labels[start : start + batch_size]
        x = to_tensor(np.stack([read_rgb(aligned.root / p, size) for p in rows["path"]])).to(device)
        c_trg = torch.from_numpy(1 - y).float().to(device)
        c_src = torch.from_numpy(y).float().to(device)  # a generator whose F_a sees the change needs them
        edit, mask, x_a = G(x, c_trg, with_manipulation=True, c_src=c_src)
        if strength != 1.0:  # the edit stage's blend with the scaled mask
            mask = strengthened(mask, strength)
            edit = G.blend(x, x_a, mask)
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
            rec = image_metrics(x01[i], e01[i], m01[i], cf, cov, region)
            target = int(1 - y[i])
            rec["edit_success"] = float((p_edit[i] > 0.5) == (target == 1))
            rec["attr_prob"] = float(p_edit[i])
            if cf is not None:
                truths.append((len(records["add" if target == 1 else "remove"]), target, cf))
                if target == 1:
                    smudges.append((len(records["add"]), smudge(x01[i], cov), smudge(x01[i], cov, blur=0.0)))
            direction = "add" if target == 1 else "remove"
            if len(sample_rows[direction]) < GRID_IMAGES // 2:
                blank = np.zeros_like(x01[i])
                sample_rows[direction].append([
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
    rows_all = sample_rows["add"] + sample_rows["remove"]
    grid = tile(rows_all) if rows_all else None
    return result, grid


# --------------------------------------------------------------------------- #
# The report's edit grids
# --------------------------------------------------------------------------- #


def grid_rows(df: pd.DataFrame, attribute: str, n: int) -> pd.DataFrame:
    """n held-out rows (the test split, else all) for an edit grid: the first half
    with ``attribute``, the second without, when both kinds are labelled (so the
    grid shows the attribute drawn and taken away); else n rows evenly spaced."""
    pick = df[df["split"] == "test"]
    if pick.empty:
        pick = df

    def spaced(rows: pd.DataFrame, k: int) -> pd.DataFrame:
        return rows.iloc[:: max(1, len(rows) // max(k, 1))].iloc[:k]

    labels = attribute_labels(pick, attribute)
    with_, without = pick[labels == 1], pick[labels == 0]
    if n >= 2 and len(with_) and len(without):
        k = min(n // 2, len(with_))
        return pd.concat([spaced(with_, k), spaced(without, n - k)])
    return spaced(pick, n)


def edit_grid(attribute: str, generator_id: str, generator_dir: Path, image_size: int, root: Path,
              paths, device: torch.device) -> np.ndarray:
    """One row per aligned image of ``paths`` (under ``root``): input | edited to 1 |
    edited to 0 | mask, at the aligned size, 2 white pixels apart -> (H, W, 3) uint8.
    The edit stage's code path: one attention pass per image (``edit_batch``)."""
    x = torch.stack([to_tensor(read_rgb(root / p)) for p in paths])
    G, _ = load_generator(generator_dir, attribute, device)
    with torch.inference_mode():
        masks, edits = edit_batch(EditModels(attribute, generator_id, G, image_size), x.to(device), [1, 0])
        mask = torch.maximum(masks[1], masks[0])  # one mask (shared, unless F_a sees the change)
    imgs = to_uint8(x)
    plus, minus = to_uint8(edits[1].cpu()), to_uint8(edits[0].cpu())
    m = (mask[:, 0].cpu().numpy() * 255).round().astype(np.uint8)
    return tile([[imgs[i], plus[i], minus[i], m[i]] for i in range(len(imgs))], pad=2)


def _file_part(text: str) -> str:
    """``text`` as one safe file-name part: attribute names come from manifests,
    and a ``/`` or ``..`` in one must not place a file outside ``run_dir``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def _heldout(cmeta: dict, attribute: str) -> float | None:
    m = (cmeta.get("metrics") or {}).get(attribute) or {}
    return m.get("accuracy")


def run_stage(cfg: PipelineConfig, inputs: StageInputs, run_dir: Path) -> StageOutputs:
    """eval_sagan: every generator of ``generators`` on the ``eval_sagan.split`` of
    ``aligned`` -> ``<run_dir>/metrics.json``, and the report's edit grids ->
    ``<run_dir>/grids.json`` and ``<run_dir>/grids/``."""
    sagan_eval_cfg = cfg.eval_sagan
    device = resolve_device(cfg.device)
    gens: mf.Manifest = inputs["generators"]
    gt: mf.Manifest | None = inputs.get("groundtruth")
    metrics: dict[str, dict] = {}
    grids: list[dict] = []  # grids.json: the report's edit grids
    aligned = inputs.get("sagan_aligned", inputs["aligned"])  # data.sagan, else data.train
    template = (alignment_of(aligned) or {}).get("template")
    id_problem = judged.identity_problem(template)  # None: dlib's recognizer judges identity
    if id_problem:
        log.info("[eval_sagan] no identity judge: %s", id_problem)
    figures = None if id_problem else judged.IdentityFigures(
        template, aligned, device, sagan_eval_cfg.batch_size, sagan_eval_cfg.id_per_direction)
    reference = None  # id_reference: one for the run, measured at the first attribute
    for _, row in gens.df.iterrows():
        attribute = row["attribute"]
        result, grid = evaluate_attribute(attribute, gens.root / row["path"], inputs["classifiers"],
                                          aligned, gt, sagan_eval_cfg.split, sagan_eval_cfg.max_images,
                                          sagan_eval_cfg.batch_size, device, template)
        result["generator_id"] = row["generator_id"]
        result.update(_identity(cfg, inputs, gens.root / row["path"], attribute, gt, device))
        result["judges"] = judged.judges_block(id_problem, template, locality_problem(attribute, template),
                                               "id_preserved" in result)
        if figures is not None:
            G, gmeta = load_generator(gens.root / row["path"], attribute, device)
            reference = judged.judge_identity(figures, result, reference, G, int(gmeta["image_size"]), attribute,
                                              gt, sagan_eval_cfg.split, sagan_eval_cfg.max_images, cfg.seed)
        metrics[attribute] = result
        log.info("[eval_sagan] %s: %s", attribute, json.dumps(
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()
             if k in ("edit_success", "outside_change", "mask_iou", "psnr_vs_truth", "psnr_region_gain",
                      "smudge_accept", "classifier_accuracy", "outside_change_region", "mask_in_region",
                      "id_distance", "id_kept", "mask_area", "images")}))
        if grid is not None:
            save_png(grid, run_dir / "samples" / component(f"{attribute}.png", f"{gens.file or gens.root}: attribute"))
        pick = grid_rows(aligned.df, attribute, cfg.report.grid_images)
        if not pick.empty:
            name = "grids/" + component(f"{_file_part(attribute)}.png", "an edit-grid figure")
            pixels = edit_grid(attribute, row["generator_id"], gens.root / row["path"], int(row["image_size"]),
                               aligned.root, pick["path"], device)
            grids.append({"attribute": attribute, "file": name, "rows": len(pick),
                          "sha256": save_png(pixels, run_dir / name)})
    path = run_dir / "metrics.json"
    write_json(path, metrics)
    write_json(run_dir / "grids.json", grids)
    return {"sagan_metrics": path, "sagan_grids": run_dir / "grids.json"}


def _identity(cfg: PipelineConfig, inputs: dict, generator_dir: Path, attribute: str, gt: mf.Manifest | None,
              device) -> dict:
    """id_preserved and (with SynthFaces' ground truth) its oracle twin
    (augment.sagan.identity), by the run's OWN baseline recognizer (not an
    independent judge: dlib's figures are ``id_distance`` etc.), when this
    pipeline trains and evaluates a baseline recognizer (load_config then puts
    eval_sagan after them); on the images judged
    above: data.sagan's, else data.train's, ``eval_sagan.split`` rows (with the
    default split, ``test``, people the generator did not train on)."""
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
