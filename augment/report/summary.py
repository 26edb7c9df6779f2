"""The report's opening summary, read in ten seconds: the claim and its answer
(``augment.report.claim``), how often the edits succeed per direction, whether
they keep the person (dlib's distances on its own scale), who judged each
figure, and eval_sagan's edit grids beside it. The details follow on the page."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from PIL import Image

from augment.fs import write_atomic
from augment.names import component
from augment.report.claim import CLAIM, Answer, answers, load
from augment.report.doc import Doc, file_part, png
from augment.report.idscale import scale_svg, scale_text
from augment.report.quality import DIRECTIONS, attribute_metrics, judges_line
from augment.report.text import higher, pvalue, spread

GRIDS = "The edits"
COLUMNS = ["input", "added", "removed", "mask"]  # eval_sagan's grid: input | +attribute | -attribute | mask


def summary_section(doc: Doc, inputs: dict, run_dir: Path, grids: Mapping[str, Image.Image] | None,
                    people: str | None = None) -> None:
    """The section; ``people``: whom the attribute judge learnt from (None: not known)."""
    doc.h2("Summary")
    many = grids is not None and len(grids) > 1
    doc.open("summary stacked" if many else "summary")
    doc.open("summary-text")
    _claim(doc, load(inputs.get("recognition_metrics")))
    _edits(doc, attribute_metrics(inputs.get("sagan_metrics")), people)
    doc.close()
    _grids(doc, run_dir, grids)
    doc.close()


def _claim(doc: Doc, metrics: dict | None) -> None:
    doc.p(CLAIM, lead="Claim.")
    rows, fallback = answers(metrics)
    if not rows:
        doc.p("No answer: this pipeline has no evaluate stage (it scores the recognizers), or evaluate found no "
              "augmented model.", cls="answer")
        return
    if fallback:
        doc.p(fallback, muted=True)
    for a in rows:
        doc.p(_sentence(a), lead=f"Answer: {a.verdict}.", cls="answer")
    doc.table(["protocol", "baseline accuracy", "SaGAN gain", "oracle gain", "SaGAN / oracle",
               "seeds higher", "p per seed (McNemar)"],
              [[a.label, spread(a.baseline, digits=3), spread(a.gain, signed=True, digits=3) or "—",
                spread(a.oracle_gain, signed=True, digits=3) or "n/a (no oracle model)", a.fraction,
                higher(a.gain) or "—", _pcell(a)] for a in rows])
    doc.p("Accuracy: the fraction of pairs decided right (rank-1 for identification); gains over the baseline "
          "trained from the same seed, mean ± std over seeds. Oracle: the same training with SynthFaces' exact "
          "counterfactuals in place of SaGAN's edits, the most that editing can buy. SaGAN / oracle: the ratio of "
          "the mean gains. \"yes\" needs a gain in every seed with p < 0.05 in each.", muted=True)


def _pcell(a: Answer) -> str:
    """The seeds' p-values: ``< 1e-3 in all 3`` when they read alike, else listed."""
    texts = [pvalue(p) for p in a.pvalues]
    if len(texts) > 1 and len(set(texts)) == 1:
        return f"{texts[0]} in all {len(texts)}"
    return a.pvalues_text()


def _sentence(a: Answer) -> str:
    """The answer in words: the gain, in how many seeds, how significant, against the oracle's."""
    if not a.gain:
        return f"{a.model} on {a.protocol}: no gain measured."
    text = f"On {a.protocol} pairs, training with SaGAN's {a.model.lstrip('+')} edits {_moves(a.gain['mean'])}"
    said = [f"in {higher(a.gain)} seeds"] if higher(a.gain) else []
    texts = [pvalue(p) for p in a.pvalues]
    if len(set(texts)) == 1:
        said.append(f"p {_eq(texts[0])}" + (" in each" if len(texts) > 1 else ""))
    elif texts:
        said.append("p per seed " + ", ".join(texts))
    text += f" ({'; '.join(said)})" if said else ""
    if a.oracle_gain:
        text += (f"; perfect edits {_moves(a.oracle_gain['mean'], plural=True)}: "
                 f"SaGAN gets {a.fraction} of the oracle's gain")
    return text + "."


def _moves(v: float, plural: bool = False) -> str:
    """``raises accuracy by 0.033`` (``raise`` after a plural subject)."""
    s = "" if plural else "s"
    if v == 0:
        return f"leave{s} accuracy as it is"
    return f"{'raise' if v > 0 else 'lower'}{s} accuracy by {abs(v):.3f}"


def _eq(p: str) -> str:
    return p if p.startswith("<") else f"= {p}"


def _edits(doc: Doc, metrics: dict[str, dict] | None, people: str | None) -> None:
    if metrics is None:
        doc.p("No edit quality: eval_sagan, which judges the edits, is not among this pipeline's stages.",
              muted=True)
        return
    judged = any((v.get(d) or {}).get("id_distance") is not None for v in metrics.values() for d in DIRECTIONS)
    rows = []
    for attr, v in metrics.items():
        for d in DIRECTIONS:
            b = v.get(d) if isinstance(v.get(d), dict) else None
            if b is None:
                continue
            row = [attr, d, b.get("images"), _two(b.get("edit_success"))]
            if judged:
                row += [_two(b.get("id_kept")), _two(b.get("id_distance"), 3), _two(b.get("id_distance_oracle"), 3)]
            rows.append(row)
    if rows:
        header = ["attribute", "direction", "edits judged", "edit success"]
        if judged:
            header += ["identity kept (dlib < 0.6)", "identity distance (dlib, mean)", "perfect edit's distance"]
        doc.table(header, rows)
    else:  # written before eval_sagan split the directions
        doc.table(["attribute", "edit success (both directions)"],
                  [[a, _two(v.get("edit_success"))] for a, v in metrics.items()])
    ref = next((v["id_reference"] for v in metrics.values() if isinstance(v.get("id_reference"), dict)), None)
    if judged and ref:
        edits = [(f"{a} {d}" if len(metrics) > 1 else d, v[d]["id_distance"]) for a, v in metrics.items()
                 for d in DIRECTIONS if (v.get(d) or {}).get("id_distance") is not None]
        doc.raw(scale_svg(ref, edits))
        doc.p(scale_text(ref, edits), muted=True)
    doc.p(judges_line(metrics, people, short=True), muted=True)


def _two(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _grids(doc: Doc, run_dir: Path, grids: Mapping[str, Image.Image] | None) -> None:
    """eval_sagan's edit grids, each embedded and copied beside report.md as
    ``grid_<attribute>.png``; ``None``: eval_sagan did not run, and the page says
    so. Nothing when eval_sagan drew none (``report.grid_images`` 0)."""
    if grids is not None and not grids:
        return
    doc.open("summary-figs-col")
    doc.h3(GRIDS)
    if grids is None:
        doc.p("No edit grids: eval_sagan, which draws them, is not among this pipeline's stages.", muted=True)
        doc.close()
        return
    doc.open("summary-figs")
    for attr, img in grids.items():
        name = component(f"grid_{file_part(attr)}.png", "an edit-grid figure")
        write_atomic(run_dir / name, lambda tmp: img.save(tmp, format="PNG"))
        doc.figure(png(img), f"edit grid {attr}", name, attr, COLUMNS)
    doc.close()
    doc.close()
