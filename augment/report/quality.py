"""The report's edit-quality section, from eval_sagan's metrics.json.

Narrow tables (the page is ~1100 px wide): one row per attribute and direction
with the judges' figures (success by the attribute classifier, identity by
dlib's recognizer, locality by the template regions); the identity judge's
reference scale; per attribute the figures against SynthFaces' ground truth;
the run's own recognizer's identity figures. A line above them says which
judge made which figure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from augment.report.doc import Doc

DIRECTIONS = ("add", "remove")
# (header, metrics.json key) of the table per attribute and direction
JUDGED = [("images", "images"), ("success", "edit_success"), ("id_distance", "id_distance"),
          ("p95", "id_distance_p95"), ("id_kept", "id_kept"), ("oracle", "id_distance_oracle"),
          ("outside_region", "outside_change_region"), ("mask_in_region", "mask_in_region"),
          ("mask_area", "mask_area")]
TRUTH = [("mask_iou", "mask_iou"), ("iou_rel", "mask_iou_relative"), ("outside_true", "outside_change"),
         ("mask_in_true", "mask_in_true_region"), ("psnr", "psnr_vs_truth"), ("psnr_input", "psnr_input_vs_truth"),
         ("region_gain", "psnr_region_gain"), ("smudge_accept", "smudge_accept"), ("truth_success", "truth_success")]
RUN_ID = [("id_preserved", "id_preserved"), ("oracle", "id_preserved_oracle"), ("id_similarity", "id_similarity"),
          ("similarity oracle", "id_similarity_oracle"), ("classifier_accuracy", "classifier_accuracy")]
# what each judge is, when metrics.json does not say (written before it named them)
JUDGE_NAMES = {"attribute": "the project's attribute classifier, trained by train_classifier",
               "identity": "dlib's pretrained recognizer", "locality": "template regions, no model"}


def judges_line(metrics: dict[str, Any]) -> str:
    """One line: which judge made each figure (from the first attribute's ``judges``)."""
    block = next((v["judges"] for v in metrics.values() if isinstance(v, dict) and isinstance(v.get("judges"), dict)),
                 None)
    if block is None:
        return ("Judges: attribute: " + JUDGE_NAMES["attribute"] + "; identity and locality: not measured "
                "(metrics.json written before eval_sagan named its judges).")
    parts = [f"attribute: {block.get('attribute', JUDGE_NAMES['attribute'])}",
             f"identity: {block.get('identity', '—')}", f"locality: {block.get('locality', '—')}"]
    if block.get("identity_run"):
        parts.append(f"id_preserved: {block['identity_run']}")
    return "Judges: " + "; ".join(parts) + "."


def _present(metrics: dict[str, dict], cols: list[tuple[str, str]], directions: bool) -> list[tuple[str, str]]:
    """The columns some attribute (or, with ``directions``, some direction block) has a value for."""
    blocks = [v for v in metrics.values()]
    if directions:
        blocks += [v.get(d) for v in metrics.values() for d in DIRECTIONS if isinstance(v.get(d), dict)]
    return [(h, k) for h, k in cols if any(b.get(k) is not None for b in blocks)]


def edit_quality_section(doc: Doc, metrics_path: Path | None) -> None:
    """The section, or nothing when eval_sagan did not run."""
    if metrics_path is None or not Path(metrics_path).is_file():
        return
    raw = json.loads(Path(metrics_path).read_text())
    metrics = {a: v for a, v in raw.items() if isinstance(v, dict)}
    doc.h2("Edit quality (test split)")
    doc.p(judges_line(metrics), muted=True)

    cols = _present(metrics, JUDGED, directions=True)
    rows = []
    for attr, v in metrics.items():
        blocks = [(d, v[d]) for d in DIRECTIONS if isinstance(v.get(d), dict)] or [("both", v)]
        rows += [[attr, d, *[b.get(k) for _, k in cols]] for d, b in blocks]
    doc.table(["attribute", "direction", *[h for h, _ in cols]], rows)
    doc.p("Per direction (add: images without the attribute edited to have it; remove: the reverse). success: the "
          "attribute classifier agrees with the target; id_distance: mean dlib distance between a held-out face "
          "and its edit at the aligned size (p95: its 95th percentile; oracle: the same for the exact "
          "counterfactual, on SynthFaces); id_kept: the fraction of edits under dlib's threshold 0.6 (the same "
          "person); outside_region: mean absolute change outside the attribute's template region (pixels in "
          "[0,1]), mask_in_region: the fraction of the mask's mass inside it; mask_area: the mask's mean.", muted=True)

    refs = {json.dumps(v["id_reference"], sort_keys=True): v["id_reference"] for v in metrics.values()
            if isinstance(v.get("id_reference"), dict)}
    if refs:
        rows = []
        for r in refs.values():
            rows += [["distance", r.get("noise_floor"), r.get("same_person"), r.get("different_people"),
                      r.get("threshold")],
                     ["measured on", f"{r.get('noise_floor_images', 0)} images",
                      f"{r.get('same_person_pairs', 0)} pairs: {r.get('same_person_from', '?')}",
                      f"{r.get('different_people_pairs', 0)} pairs: {r.get('different_people_from', '?')}", ""]]
        doc.table(["dlib reference scale", "noise floor", "same person", "different people", "threshold"], rows)
        doc.p("The identity judge's distances on the same aligned images: a face and itself shifted 2 px (noise "
              "floor), two photos of one person, photos of two people. An edit's id_distance near the noise floor "
              "kept the face; near different people, it made someone else.", muted=True)

    truth = _present(metrics, TRUTH, directions=False)
    if truth:
        doc.table(["attribute", *[h for h, _ in truth]],
                  [[a, *[v.get(k) for _, k in truth]] for a, v in metrics.items()])
        doc.p("Against SynthFaces' ground truth, both directions: mask_iou: IoU of mask > 0.5 with the true region "
              "(iou_rel: mask > half its maximum); outside_true: mean absolute change where the truth changed "
              "nothing, mask_in_true: the mask's mass where it changed something; psnr: the edit against the exact "
              "counterfactual (psnr_input: the unedited input); region_gain: PSNR inside the true region, edit "
              "minus input; smudge_accept: how often the attribute classifier takes a blurred dark patch on the "
              "true region for the attribute; truth_success: its success on the exact counterfactuals.", muted=True)

    run_id = _present(metrics, RUN_ID, directions=False)
    if run_id:
        doc.table(["attribute", *[h for h, _ in run_id]], [[a, *[v.get(k) for _, k in run_id]]
                                                            for a, v in metrics.items()])
        doc.p("By this run's own models: id_preserved: the fraction of edits the baseline recognizer (trained by "
              "train_recognition) verifies as the same person at its LFW threshold, id_similarity: mean cosine "
              "(oracle: the exact counterfactuals); classifier_accuracy: the attribute classifier on the unedited "
              "images.", muted=True)

