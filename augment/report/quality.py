"""The report's edit-quality details, from eval_sagan's metrics.json.

Narrow tables (each fits the 1280 px page): per attribute and direction the
success and identity figures, then the locality figures; the identity judge's
reference scale; per attribute the figures against SynthFaces' ground truth
(the mask, then the image); the run's own recognizer's identity figures. A
line above them says which judge made which figure (``judges_line``, also in
the summary, short).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from augment.report.doc import Doc

DIRECTIONS = ("add", "remove")
# (column header, metrics.json key), per attribute and direction
JUDGED = [("edits judged", "images"), ("edit success", "edit_success"),
          ("identity distance (dlib, mean)", "id_distance"), ("identity distance (p95)", "id_distance_p95"),
          ("identity kept (dlib < 0.6)", "id_kept"), ("perfect edit's distance (mean)", "id_distance_oracle")]
LOCALITY = [("mean change outside the region (pixels, 0-1)", "outside_change_region"),
            ("mask mass inside the region", "mask_in_region"), ("mask area (fraction of the image)", "mask_area"),
            ("new colours (share of changed pixels)", "novel_colour")]
# per attribute, both directions
TRUTH_MASK = [("mask IoU (mask > 0.5)", "mask_iou"), ("mask IoU (mask > half its max)", "mask_iou_relative"),
              ("mask mass in the true region", "mask_in_true_region"),
              ("mean change where the truth changed nothing", "outside_change")]
TRUTH_IMAGE = [("PSNR, edit vs truth (dB)", "psnr_vs_truth"), ("PSNR, input vs truth (dB)", "psnr_input_vs_truth"),
               ("PSNR gain inside the true region (dB)", "psnr_region_gain"),
               ("judge accepts a smudge", "smudge_accept"), ("judge's success on perfect edits", "truth_success")]
RUN_ID = [("identity kept (run's recognizer)", "id_preserved"), ("perfect edits kept", "id_preserved_oracle"),
          ("cosine similarity, edit to input", "id_similarity"), ("perfect edits' cosine", "id_similarity_oracle"),
          ("classifier accuracy on the inputs", "classifier_accuracy")]
# what each judge is, when metrics.json does not say (written before it named them)
JUDGE_NAMES = {"attribute": "the project's attribute classifier, trained by train_classifier",
               "identity": "dlib's pretrained recognizer", "locality": "template regions, no model"}


def attribute_metrics(path: Path | None) -> dict[str, dict] | None:
    """eval_sagan's metrics.json as {attribute: figures}; None when it did not run."""
    if path is None or not Path(path).is_file():
        return None
    return {a: v for a, v in json.loads(Path(path).read_text()).items() if isinstance(v, dict)}


def judges_line(metrics: dict[str, Any], people: str | None = None, short: bool = False) -> str:
    """One line: which judge made each figure (from the first attribute's ``judges``);
    ``people``: whom the attribute judge learnt from; ``short``: without the
    parentheses naming the model and the figures."""
    block = next((v["judges"] for v in metrics.values() if isinstance(v, dict) and isinstance(v.get("judges"), dict)),
                 None)
    trained = f", {people}" if people else ""
    if block is None:
        return (f"Judges: attribute: {JUDGE_NAMES['attribute']}{trained}; identity and locality: not measured "
                "(metrics.json written before eval_sagan named its judges).")

    def cut(text: str) -> str:
        return re.sub(r" \([^()]*\)", "", text) if short else text

    parts = [f"attribute: {cut(block.get('attribute', JUDGE_NAMES['attribute']))}{trained}",
             f"identity: {cut(block.get('identity', '—'))}", f"locality: {cut(block.get('locality', '—'))}"]
    if block.get("colour"):  # written since eval_sagan counts new colours
        parts.append(f"colour: {cut(block['colour'])}")
    if block.get("identity_run") and not short:  # the summary shows no figure of the run's recognizer
        parts.append(f"id_preserved: {cut(block['identity_run'])}")
    return "Judges: " + "; ".join(parts) + "."


def _present(metrics: dict[str, dict], cols: list[tuple[str, str]], directions: bool) -> list[tuple[str, str]]:
    """The columns some attribute (or, with ``directions``, some direction block) has a value for."""
    blocks = list(metrics.values())
    if directions:
        blocks += [v.get(d) for v in metrics.values() for d in DIRECTIONS if isinstance(v.get(d), dict)]
    return [(h, k) for h, k in cols if any(b.get(k) is not None for b in blocks)]


def _per_direction(doc: Doc, metrics: dict[str, dict], cols: list[tuple[str, str]]) -> None:
    cols = _present(metrics, cols, directions=True)
    if not cols:
        return
    rows = []
    for attr, v in metrics.items():
        blocks = [(d, v[d]) for d in DIRECTIONS if isinstance(v.get(d), dict)] or [("both", v)]
        rows += [[attr, d, *[b.get(k) for _, k in cols]] for d, b in blocks]
    doc.table(["attribute", "direction", *[h for h, _ in cols]], rows)


def _per_attribute(doc: Doc, metrics: dict[str, dict], cols: list[tuple[str, str]], note: str) -> None:
    cols = _present(metrics, cols, directions=False)
    if cols:
        doc.table(["attribute", *[h for h, _ in cols]], [[a, *[v.get(k) for _, k in cols]] for a, v in metrics.items()])
        doc.p(note, muted=True)


def edit_quality_section(doc: Doc, metrics_path: Path | None, people: str | None = None) -> None:
    """The section, or nothing when eval_sagan did not run."""
    metrics = attribute_metrics(metrics_path)
    if metrics is None:
        return
    doc.h2("Edit quality, in detail (test split)")
    doc.p(judges_line(metrics, people), muted=True)
    _per_direction(doc, metrics, JUDGED)
    _per_direction(doc, metrics, LOCALITY)
    doc.p("Per direction (add: images without the attribute edited to have it; remove: the reverse). Edit success: "
          "the attribute classifier agrees with the target. Identity distance: dlib's distance between a held-out "
          "face and its edit at the aligned size (p95: its 95th percentile; perfect edit: the same for the exact "
          "counterfactual, on SynthFaces); identity kept: the fraction of edits under dlib's threshold 0.6 (the same "
          "person). Change outside the region: mean absolute change outside the attribute's template region; mask "
          "mass inside the region: the fraction of the mask's mass inside it; mask area: the mask's mean.",
          muted=True)
    _reference(doc, metrics)
    _per_attribute(doc, metrics, TRUTH_MASK,
                   "Against SynthFaces' ground truth, both directions: IoU of the mask with the true region (the mask "
                   "thresholded at 0.5, or at half its maximum); the mask's mass where the truth changed something; "
                   "the mean absolute change where it changed nothing.")
    _per_attribute(doc, metrics, TRUTH_IMAGE,
                   "PSNR of the edit against the exact counterfactual (and of the unedited input); inside the true "
                   "region, edit minus input. Smudge: how often the attribute classifier takes a blurred dark patch "
                   "on the true region for the attribute; its success on the exact counterfactuals.")
    _per_attribute(doc, metrics, RUN_ID,
                   "By this run's own models: the fraction of edits the baseline recognizer (trained by "
                   "train_recognition) verifies as the same person at its LFW threshold, and their mean cosine "
                   "similarity (also for the exact counterfactuals); the attribute classifier on the unedited images.")


def _reference(doc: Doc, metrics: dict[str, dict]) -> None:
    """dlib's reference scale, once per distinct scale (every attribute carries the run's)."""
    refs = {json.dumps(v["id_reference"], sort_keys=True): v["id_reference"] for v in metrics.values()
            if isinstance(v.get("id_reference"), dict)}
    if not refs:
        return
    rows = []
    for r in refs.values():
        rows += [["distance", r.get("noise_floor"), r.get("same_person"), r.get("different_people"),
                  r.get("threshold")],
                 ["measured on", f"{r.get('noise_floor_images', 0)} images",
                  f"{r.get('same_person_pairs', 0)} pairs: {r.get('same_person_from', '?')}",
                  f"{r.get('different_people_pairs', 0)} pairs: {r.get('different_people_from', '?')}", ""]]
    doc.table(["dlib reference scale", "noise floor", "same person", "different people", "threshold"], rows)
    doc.p("The identity judge's distances on the same aligned images: a face and itself shifted 2 px (noise "
          "floor), two photos of one person, photos of two people. An edit's identity distance near the noise floor "
          "kept the face; near different people, it made someone else.", muted=True)
