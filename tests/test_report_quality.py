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
           "mask_area": 0.2}
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


def _section(tmp_path, metrics) -> tuple[str, list[list[str]]]:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics))
    doc = Doc("t")
    edit_quality_section(doc, path)
    md = doc.render_md()
    tables = [line for line in md.splitlines() if line.startswith("| ")]
    return md, [[c.strip() for c in t.strip("|").split("|")] for t in tables]


def test_rows_per_attribute_and_direction_with_the_reference_scale(tmp_path):
    md, rows = _section(tmp_path, _metrics())
    line = next(x for x in md.splitlines() if x.startswith("Judges: "))
    assert "attribute: the project's attribute classifier (train_classifier" in line
    assert "identity: dlib's pretrained recognizer" in line and "locality: template regions, no model" in line
    assert "id_preserved: the run's own baseline recognizer" in line
    header = rows[0]
    assert header[:5] == ["attribute", "direction", "images", "success", "id_distance"] and "id_kept" in header
    body = {(r[0], r[1]): dict(zip(header, r)) for r in rows[1:5]}
    assert set(body) == {(a, d) for a in ("Eyeglasses", "Smiling") for d in ("add", "remove")}
    assert body[("Smiling", "remove")]["success"] == "0.7500" and body[("Smiling", "remove")]["id_distance"] == "0.4500"
    assert body[("Eyeglasses", "add")]["id_kept"] == "1.0000" and body[("Eyeglasses", "add")]["mask_in_region"] == "0.7000"
    # one reference table for the run, though every attribute carries it
    assert sum(r[0] == "distance" for r in rows) == 1
    assert ["distance", "0.0500", "0.3000", "0.8000", "0.6000"] in rows
    assert any(r[0] == "measured on" and r[3].startswith("192 pairs") for r in rows)
    assert max(len(r) for r in rows) <= 11  # narrow enough for the page


def test_without_the_judge_the_line_says_not_installed(tmp_path):
    message = "the pretrained identity judge needs the 'judges' extra: pip install 'augment[judges]'"
    md, rows = _section(tmp_path, _metrics(message))
    assert f"identity: not installed: {message}" in md
    assert "id_distance" not in rows[0] and "success" in rows[0]
    assert not any(r[0] == "distance" for r in rows)  # no reference scale


def test_metrics_written_before_the_judges_still_render(tmp_path):
    md, rows = _section(tmp_path, {"Eyeglasses": {"edit_success": 0.7, "mask_iou": 0.2}})
    assert "identity and locality: not measured" in md
    assert rows[0] == ["attribute", "direction", "success"] and rows[1] == ["Eyeglasses", "both", "0.7000"]
