"""The report's recognition details, from the evaluate stage's ``metrics.json``:
per protocol the models, their deltas with significance, the spread over
seeds, the oracle comparison (levels, gains, per seed) and the pairs by
attribute; then the ROC overlay. Wide tables are split so each fits the page;
the paper's values have their own section (``augment.report.paper``)."""

from __future__ import annotations

from pathlib import Path

from augment.fs import write_bytes
from augment.report.claim import load, protocols
from augment.report.doc import Doc
from augment.report.text import fraction, pvalue, seed_fractions, signed, spread

TAR = {"0.001": "TAR @ FAR 1e-3", "0.01": "TAR @ FAR 1e-2", "0.1": "TAR @ FAR 1e-1"}
GAINS = (("accuracy", "accuracy"), ("tar_at_far_0.01", "TAR @ FAR 1e-2"))


def recognition_section(doc: Doc, metrics_path: Path | None, out_dir: Path | None = None) -> None:
    metrics = load(metrics_path)
    if metrics is None:
        return
    for name, protocol in protocols(metrics).items():
        _protocol_section(doc, name, protocol)
    roc = Path(metrics_path).parent / "roc.png"
    if roc.is_file():
        png = roc.read_bytes()
        doc.h2("ROC curves (first seed)")
        doc.image(png, "ROC overlay", "roc.png")
        if out_dir is not None:
            write_bytes(out_dir / "roc.png", png)


def _protocol_section(doc: Doc, protocol: str, metrics: dict) -> None:
    models = metrics.get("models", {})
    if not models:
        return
    doc.h2(f"Face recognition: baseline vs augmented ({protocol})")
    kind = next(iter(models.values())).get("accuracy_kind")
    if kind:
        doc.p(f"accuracy: {kind}", muted=True)
    doc.table(["model", "accuracy (mean ± std over folds)", *TAR.values(), "AUC", "EER"],
              [[name, f"{m.get('accuracy_mean', float('nan')):.4f} ± {m.get('accuracy_std', float('nan')):.4f}",
                *[(m.get("tar_at_far") or {}).get(k) for k in TAR], m.get("auc"), m.get("eer")]
               for name, m in models.items()])
    _deltas_table(doc, metrics.get("deltas") or {})
    for note in metrics.get("notes", []):
        if not note.startswith("paper:"):  # the paper's values are shown once, in their own section
            doc.p(note, muted=True)
    _repeats_table(doc, metrics.get("repeats") or {})
    _oracle_tables(doc, metrics)
    _strata_table(doc, metrics)


def _deltas_table(doc: Doc, deltas: dict) -> None:
    """Each augmented model against its same-seed baseline, with the test's p-value."""
    rows, tests = [], {}
    for name, d in deltas.items():
        row = [name]
        for key, _ in GAINS:
            v = d.get(key)
            if isinstance(v, dict):
                row += [signed(v.get("delta")), pvalue(v.get("p_value"))]
                tests.setdefault(key, v.get("test"))
            else:
                row += [signed(v) if isinstance(v, (int, float)) else "—", "—"]
        rows.append(row + [d.get("reference", "baseline")])
    if not rows:
        return
    doc.table(["model", "Δ accuracy", "p (accuracy)", "Δ TAR @ FAR 1e-2", "p (TAR)", "against"], rows)
    said = "; ".join(f"{label}: {tests[k]}" for k, label in GAINS if tests.get(k))
    if said:
        doc.p(f"Differences to the baseline trained from the same seed; p-values by {said}.", muted=True)


def _repeats_table(doc: Doc, repeats: dict) -> None:
    if not repeats:
        return
    n = max(r["seeds"] for r in repeats.values())
    doc.p(f"Over the {n} recognizer seeds (mean ± sample std; each augmented model is compared with the "
          "baseline trained from the same seed; (3/3): above it in 3 of 3 seeds):")
    rows = []
    for stem, r in repeats.items():
        d = r.get("deltas", {})
        rows.append([stem, r["seeds"], spread(r.get("accuracy")), spread(r.get("tar_at_far_0.01")),
                     _with_seeds(d.get("accuracy")), _with_seeds(d.get("tar_at_far_0.01"))])
    doc.table(["model", "seeds", "accuracy", "TAR @ FAR 1e-2", "Δ accuracy (seeds higher)",
               "Δ TAR @ FAR 1e-2 (seeds higher)"], rows)


def _with_seeds(s: dict | None) -> str:
    """``+0.0327 ± 0.0172 (3/3)``: the delta over seeds and how many seeds it is positive in."""
    text = spread(s, signed=True)
    return f"{text} ({s['higher']}/{s.get('n', '?')})" if text and "higher" in s else text


def _oracle_tables(doc: Doc, metrics: dict) -> None:
    """baseline / +SaGAN / +oracle side by side; the gains and the SaGAN gain as a
    fraction of the oracle's; the same per seed (``n/a`` where the oracle gained nothing)."""
    fractions = metrics.get("oracle_fraction") or {}
    if not fractions:
        return
    repeats = metrics.get("repeats") or {}
    base = repeats.get(metrics.get("baseline", "baseline"), {})
    doc.p("Baseline, SaGAN edits and perfect edits (SynthFaces' exact counterfactuals of the same rows, the most "
          "that editing can buy), same steps and seeds, mean ± std over seeds:")
    levels, gains, seeds = [], [], []
    for stem, fr in fractions.items():
        sagan, oracle = repeats.get(stem, {}), repeats.get(f"{stem}:oracle", {})
        for key, label in GAINS:
            f = fr.get(key) or {}
            levels.append([stem, label, spread(base.get(key)), spread(sagan.get(key)), spread(oracle.get(key))])
            gains.append([stem, label, spread((sagan.get("deltas") or {}).get(key), signed=True),
                          spread((oracle.get("deltas") or {}).get(key), signed=True),
                          fraction(f.get("fraction_of_mean_gains"), f.get("oracle_gain_mean")),
                          seed_fractions(fr, key)])
            for seed, per in sorted((fr.get("seeds") or {}).items(), key=lambda kv: int(kv[0])):
                s = per.get(key) or {}
                if s:
                    seeds.append([stem, label, seed, signed(s.get("gain")), signed(s.get("oracle_gain")),
                                  fraction(s.get("fraction"), s.get("oracle_gain"))])
    doc.table(["model", "metric", "baseline", "+SaGAN", "+oracle"], levels)
    doc.table(["model", "metric", "SaGAN gain", "oracle gain", "SaGAN / oracle (ratio of mean gains)",
               "SaGAN / oracle (per-seed mean ± std)"], gains)
    if seeds:
        doc.table(["model", "metric", "seed", "SaGAN gain", "oracle gain", "SaGAN / oracle"], seeds)


def _strata_table(doc: Doc, metrics: dict) -> None:
    """The protocol's pairs split by whether the two photos share an attribute's
    value: a row per kind of pair, a column per model (transposed when there are
    more models than kinds of pair, so that the table stays narrow)."""
    for attr, strata in (metrics.get("strata") or {}).items():
        first = next(iter(strata.values()), {})
        names = list(first.get("repeats") or first.get("models") or {})
        if not names:
            continue
        doc.p(f"Pairs by {attr} (fraction decided right at the protocol's thresholds; mean ± std over seeds; "
              f"attributes: {metrics.get('strata_attributes', 'dataset')}):")
        cells = {}
        for stratum, entry in strata.items():
            if entry.get("repeats"):
                cells[stratum] = [spread(entry["repeats"].get(n)) for n in names]
            else:
                cells[stratum] = [entry.get("models", {}).get(n) for n in names]
        if len(names) <= len(strata) + 1:
            doc.table(["pairs", "count", *names], [[k.replace("_", " "), strata[k].get("pairs"), *v]
                                                   for k, v in cells.items()])
        else:
            doc.table(["model", *[f"{k.replace('_', ' ')} ({strata[k].get('pairs')})" for k in cells]],
                      [[n, *[cells[k][i] for k in cells]] for i, n in enumerate(names)])
