"""The report's layout: a summary first (the claim's answer: SaGAN gain, oracle
gain, their fraction, with significance; edit success and identity), small
p-values as ``< 1e-3``, undefined ratios as ``n/a`` with the reason, the
paper's values once in their own section, the configuration folded away at
the end, every table narrow enough for a 1280 px page."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

import augment.workdir
from augment.config import PipelineConfig
from augment.report import build
from augment.report.plots import panels
from augment.report.text import fraction, pvalue
from augment.sagan.judged import judges_block
from recognition.scoring import oracle_fractions, over_repeats

BASE = [0.90, 0.91, 0.92]  # the baseline's accuracy per seed
PAPER = {"baseline": {"tar_at_far_0.001": 0.57, "tar_at_far_0.01": 0.777, "tar_at_far_0.1": 0.965},
         "Eyeglasses": {"tar_at_far_0.001": 0.62, "tar_at_far_0.01": 0.788, "tar_at_far_0.1": 0.96}}


def _model(acc: float) -> dict:
    return {"accuracy_mean": acc, "accuracy_std": 0.01, "accuracy_kind": "verification, LFW protocol",
            "tar_at_far": {"0.001": acc - 0.3, "0.01": acc - 0.1, "0.1": acc - 0.01}, "auc": 0.98, "eer": 0.05}


def _protocol(gains, oracle_gains, pvalues, paper=False) -> dict:
    """A protocol's block as recognition.evaluate writes it, for three seeds."""
    models, deltas = {}, {}
    for k, (b, g, o, p) in enumerate(zip(BASE, gains, oracle_gains, pvalues)):
        at = f"@{k}" if k else ""
        models[f"baseline{at}"] = _model(b)
        for name, d in ((f"+Eyeglasses{at}", g), (f"+Eyeglasses:oracle{at}", o)):
            models[name] = _model(b + d)
            deltas[name] = {"accuracy": {"delta": d, "test": "McNemar exact", "p_value": p},
                            "tar_at_far_0.01": {"delta": 2 * d, "test": "paired bootstrap", "p_value": p}}
            if k:
                deltas[name]["reference"] = f"baseline{at}"
    block = {"baseline": "baseline", "models": models, "deltas": deltas,
             "notes": ["paper: TAR values read off the paper's ROC figures (about +-0.01)"] if paper else []}
    if paper:
        block["paper"] = {n: {**PAPER[paper_model], "paper_model": paper_model} for n in models
                          if ":oracle" not in n
                          for paper_model in ["baseline" if n.startswith("baseline") else "Eyeglasses"]}
    block["repeats"] = over_repeats(block)
    block["oracle_fraction"] = oracle_fractions(block)
    return block


def _report(tmp_path, monkeypatch, protocols: dict) -> tuple[str, str]:
    monkeypatch.setattr(augment.workdir, "states", lambda cfg: [("synth", "done", {"seconds": 1.0})])
    rec = tmp_path / "evaluate" / "metrics.json"
    rec.parent.mkdir()
    rec.write_text(json.dumps({"protocols": protocols}))
    sagan = tmp_path / "sagan.json"
    direction = {"images": 40, "edit_success": 0.9, "id_distance": 0.22, "id_kept": 1.0, "id_distance_oracle": 0.3}
    sagan.write_text(json.dumps({"Eyeglasses": {
        "edit_success": 0.8, "add": direction, "remove": {**direction, "edit_success": 0.65},
        "id_reference": {"noise_floor": 0.09, "same_person": 0.25, "different_people": 0.48, "threshold": 0.6},
        "judges": judges_block(None, "arcface", None, run_recognizer=False)}}))
    cfg = replace(PipelineConfig(), name="demo", workdir=str(tmp_path / "work"),
                  stages=("synth", "train_classifier", "evaluate", "eval_sagan", "report"))
    run_dir = tmp_path / "work" / "report"
    run_dir.mkdir(parents=True)
    doc = build(cfg, {"recognition_metrics": rec, "sagan_metrics": sagan}, run_dir, grids=None)
    return doc.render_html(), doc.render_md()


def _summary(md: str) -> str:
    sections = md.split("\n## ")
    assert sections[1].startswith("Summary\n"), "the summary is not the first section"
    return sections[1]


GOOD = {"attr-shift:Eyeglasses": _protocol([0.03, 0.02, 0.04], [0.04, 0.03, 0.05], [1e-5, 2e-4, 0.0]),
        "lfw": _protocol([0.01, 0.01, 0.01], [0.02, 0.02, 0.02], [0.2, 0.3, 0.04], paper=True)}


def test_the_summary_comes_first_with_the_gain_and_the_fraction(tmp_path, monkeypatch):
    html, md = _report(tmp_path, monkeypatch, GOOD)
    summary = _summary(md)
    assert "**Answer: yes.** On attr-shift:Eyeglasses pairs" in summary
    row = next(r for r in summary.splitlines() if r.startswith("| attr-shift:Eyeglasses"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # baseline, SaGAN gain, oracle gain (mean ± std over seeds), their ratio, seeds higher, significance
    assert cells[1:] == ["0.910 ± 0.010", "+0.030 ± 0.010", "+0.040 ± 0.010", "0.75", "3 of 3", "< 1e-3 in all 3"]
    # edit success per direction and identity kept, on dlib's scale
    assert "| Eyeglasses | add | 40 | 0.90 | 1.00 | 0.220 | 0.300 |" in summary
    assert "| Eyeglasses | remove | 40 | 0.65 |" in summary
    assert "same person 0.250, different people 0.483" not in summary and "same person 0.250" in summary
    judges = next(line for line in summary.splitlines() if line.startswith("Judges: "))
    assert judges == ("Judges: attribute: the project's attribute classifier, trained on the generator's own training "
                      "people (train_classifier.people: same); identity: dlib's pretrained recognizer; locality: "
                      "template regions, no model; colour: the input's own colours, no model.")
    # in the HTML too: the first section, above every detail
    h2 = re.findall(r"<h2>([^<]*)</h2>", html)
    assert h2[0] == "Summary" and len(h2) > 3
    assert html.index("0.910 ± 0.010") < html.index("<h2>Face recognition")


def test_small_p_values_read_below_one_in_a_thousand():
    assert [pvalue(p) for p in (0.0, 1.9e-16, 9.99e-4)] == ["< 1e-3"] * 3
    assert [pvalue(p) for p in (1e-3, 0.0049, 0.0635, 0.25, 1.0)] == ["0.0010", "0.0049", "0.064", "0.250", "1.000"]
    assert pvalue(None) == "—"


def test_the_page_writes_no_tiny_p_value_in_full(tmp_path, monkeypatch):
    html, md = _report(tmp_path, monkeypatch, GOOD)
    assert "< 1e-3" in md and "&lt; 1e-3" in html
    assert not re.search(r"\de-\d\d", md) and "p=" not in md  # no 1.9e-16, no "(p=0)"
    deltas = next(line for line in md.splitlines() if line.startswith("| +Eyeglasses@1 | +0.0200 |"))
    assert "| < 1e-3 | +0.0400 | < 1e-3 | baseline@1 |" in deltas


def test_an_undefined_ratio_says_n_a_and_why(tmp_path, monkeypatch):
    assert fraction(None, -0.01) == "n/a (oracle gain ≤ 0)" and fraction(None, 0.0) == "n/a (oracle gain ≤ 0)"
    assert fraction(None, None) == "n/a (no oracle model)" and fraction(0.812, 0.02) == "0.81"
    # the oracle gains nothing on average: no fraction of the mean gains, none in two seeds
    worse = {"attr-shift:Eyeglasses": _protocol([0.03, -0.02, 0.01], [-0.03, 0.0, 0.02], [0.01, 0.5, 0.2])}
    html, md = _report(tmp_path, monkeypatch, worse)
    summary = _summary(md)
    row = next(r for r in summary.splitlines() if r.startswith("| attr-shift:Eyeglasses"))
    assert "| n/a (oracle gain ≤ 0) |" in row and "| 2 of 3 |" in row
    assert "**Answer: not settled.**" in summary  # a gain on average, not in every seed
    assert "0.50 (1 of 3 seeds; n/a in the rest: oracle gain ≤ 0)" in md  # the per-seed mean says how many
    seeds = [line for line in md.splitlines() if line.startswith("| +Eyeglasses | accuracy | ")]
    assert [s.split("|")[-2].strip() for s in seeds[-3:]] == ["n/a (oracle gain ≤ 0)", "n/a (oracle gain ≤ 0)",
                                                               "0.50"]


def test_the_paper_once_in_its_own_section_and_the_config_folded_at_the_end(tmp_path, monkeypatch):
    html, md = _report(tmp_path, monkeypatch, GOOD)
    assert md.count("## The paper's values (real data, not this run's)") == 1
    paper = md.split("## The paper's values", 1)[1].split("\n## ", 1)[0]
    assert "real photos (CelebA)" in paper
    assert paper.count("| lfw | baseline | baseline |") == 1 and paper.count("| lfw | +Eyeglasses |") == 1
    assert md.count("0.7770") == md.count("0.7880") == 1  # the paper's TAR@1e-2, in that section only
    # the configuration: a closed <details> after every section, the page's last element
    tail = html[html.rindex("<h2>"):]
    assert "<details><summary>Configuration" in tail and "<details open" not in html
    assert re.search(r"<details><summary>Configuration[^<]*</summary>\s*<div class=\"scroll\"><table><tr><th>key</th>",
                     html)
    assert html.rstrip().endswith("</table></div>\n</details>\n</body></html>")
    assert md.rstrip().endswith("</details>") and md.index("<details><summary>Configuration") > md.rindex("\n## ")


@pytest.mark.parametrize("protocols", [GOOD])
def test_every_table_fits_the_page(tmp_path, monkeypatch, protocols):
    """No table wider than eight columns, nor a cell of over 60 characters (the page is 1280 px)."""
    html, md = _report(tmp_path, monkeypatch, protocols)
    body = md.split("<details>")[0]
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in body.splitlines() if line.startswith("| ")]
    assert max(len(r) for r in rows) <= 8
    assert max(len(c) for r in rows for c in r) <= 60


def test_training_curves_get_a_plot_per_quantity():
    keys = ["d_loss", "d_real", "d_fake", "d_gp", "d_acc_real", "g_loss", "g_acc_fake", "mask_mean"]
    plots = panels(keys)
    assert plots[:2] == [("critic score (real, fake)", ["d_real", "d_fake"]),
                         ("accuracy (D on real, G on fake)", ["d_acc_real", "g_acc_fake"])]
    assert [p[1] for p in plots[2:]] == [["d_loss"], ["d_gp"], ["g_loss"], ["mask_mean"]]  # critic first
    assert sorted(k for _, group in plots for k in group) == sorted(keys)  # each quantity once


def test_without_an_attr_shift_protocol_the_answer_says_which_it_is_on(tmp_path, monkeypatch):
    html, md = _report(tmp_path, monkeypatch, {"lfw": GOOD["lfw"]})
    summary = _summary(md)
    note = ("evaluated no attr-shift protocol (evaluate.protocols), which asks the claim exactly: the answer below "
            "is on lfw.")
    assert note in summary and summary.index(note) < summary.index("**Answer:")
    assert "| +Eyeglasses on lfw | 0.910 ± 0.010 | +0.010 ± 0.000 | +0.020 ± 0.000 | 0.50 | 3 of 3 |" in summary
    assert "**Answer: not settled.**" in summary  # higher in every seed, but p = 0.2 and 0.3 in two of them
    assert "p per seed 0.200, 0.300, 0.040" in summary
