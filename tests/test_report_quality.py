"""The report's edit-quality section: per attribute and direction the judges'
figures, dlib's reference scale, and one line naming the judge of each figure."""

from __future__ import annotations

import json

from augment.report.doc import Doc
from augment.report.quality import edit_quality_section
from augment.sagan.judged import judges_block

REFERENCE = {"noise_floor": 0.05, "noise_floor_images": 6, "same_person": 0.3, "same_person_pairs": 15,
             "same_person_from": "test (6 images)", "different_people": 0.8, "different_people_pairs": 192,
             "different_people_from": "test and 16 images of other splits", "threshold": 0.6}


def _direction(success, dist=None, kept=None):
    out = {"images": 3, "edit_success": success, "outside_change_region": 0.01, "mask_in_region": 0.7,
           "mask_area": 0.2, "novel_colour": 0.03}
    if dist is not None:
        out.update(id_distance=dist, id_distance_p95=dist + 0.1, id_kept=kept, id_distance_oracle=0.2)
    return out


def _metrics(identity_problem=None):
    judged = identity_problem is None
    m = {}
    for attr in ("Eyeglasses", "Smiling"):
        m[attr] = {"edit_success": 0.5, "mask_iou": 0.4, "id_preserved": 0.9, "id_similarity": 0.8,
                   "add": _direction(0.25, 0.35 if judged else None, 1.0),
                   "remove": _direction(0.75, 0.45 if judged else None, 0.5),
                   "judges": judges_block(identity_problem, "arcface", None, run_recognizer=True)}
        if judged:
            m[attr]["id_reference"] = REFERENCE
    return m


def _section(tmp_path, metrics, people=None) -> tuple[str, list[list[list[str]]]]:
    """The section's Markdown and its tables (each a list of rows, the header first)."""
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics))
    doc = Doc("t")
    edit_quality_section(doc, path, people)
    md = doc.render_md()
    tables, current = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|---"):
            continue  # the header's rule
        if line.startswith("| "):
            current.append([c.strip() for c in line.strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    return md, tables


def test_rows_per_attribute_and_direction_with_the_reference_scale(tmp_path):
    md, tables = _section(tmp_path, _metrics(), people="trained on the generator's own training people")
    line = next(x for x in md.splitlines() if x.startswith("Judges: "))
    assert "attribute: the project's attribute classifier (train_classifier" in line
    assert "smudge_accept), trained on the generator's own training people;" in line  # whose people it learnt from
    assert "identity: dlib's pretrained recognizer" in line and "locality: template regions, no model" in line
    assert "id_preserved: the run's own baseline recognizer" in line
    assert "colour: the input's own colours, no model" in line
    judged, locality = tables[0], tables[1]
    header = judged[0]
    assert header[:5] == ["attribute", "direction", "edits judged", "edit success", "identity distance (dlib, mean)"]
    assert "identity kept (dlib < 0.6)" in header and "perfect edit's distance (mean)" in header
    body = {(r[0], r[1]): dict(zip(header, r)) for r in judged[1:]}
    assert set(body) == {(a, d) for a in ("Eyeglasses", "Smiling") for d in ("add", "remove")}
    assert body[("Smiling", "remove")]["edit success"] == "0.7500"
    assert body[("Smiling", "remove")]["identity distance (dlib, mean)"] == "0.4500"
    assert body[("Eyeglasses", "add")]["identity kept (dlib < 0.6)"] == "1.0000"
    assert body[("Eyeglasses", "add")]["identity distance (p95)"] == "0.4500"
    # the locality figures, per attribute and direction, in a table of their own
    assert locality[0][:2] == ["attribute", "direction"] and "mask mass inside the region" in locality[0]
    loc = {(r[0], r[1]): dict(zip(locality[0], r)) for r in locality[1:]}
    assert loc[("Eyeglasses", "add")]["mask mass inside the region"] == "0.7000"
    assert loc[("Smiling", "remove")]["new colours (share of changed pixels)"] == "0.0300"
    # one reference table for the run, though every attribute carries it
    rows = [r for t in tables for r in t]
    assert sum(r[0] == "distance" for r in rows) == 1
    assert ["distance", "0.0500", "0.3000", "0.8000", "0.6000"] in rows
    assert any(r[0] == "measured on" and r[3].startswith("192 pairs") for r in rows)
    assert max(len(t[0]) for t in tables) <= 8  # every table narrow enough for the page


def test_without_the_judge_the_line_says_not_installed(tmp_path):
    message = "the pretrained identity judge needs the 'judges' extra: pip install 'augment[judges]'"
    md, tables = _section(tmp_path, _metrics(message))
    assert f"identity: not installed: {message}" in md
    header = tables[0][0]
    assert not any(h.startswith("identity") for h in header) and "edit success" in header
    assert not any(r[0] == "distance" for t in tables for r in t)  # no reference scale


def test_metrics_written_before_the_judges_still_render(tmp_path):
    md, tables = _section(tmp_path, {"Eyeglasses": {"edit_success": 0.7, "mask_iou": 0.2}})
    assert "identity and locality: not measured" in md
    assert tables[0] == [["attribute", "direction", "edit success"], ["Eyeglasses", "both", "0.7000"]]
