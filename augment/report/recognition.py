"""The report's recognition tables, from the evaluate stage's ``metrics.json``: per
protocol the models, the paper's values, the spread over seeds, the oracle
comparison and the pairs by attribute; then the ROC overlay."""

from __future__ import annotations

import json
from pathlib import Path

from augment.fs import write_bytes
from augment.report.doc import Doc


def recognition_section(doc: Doc, metrics_path: Path | None, out_dir: Path | None = None) -> None:
    if metrics_path is None or not Path(metrics_path).is_file():
        return
    metrics = json.loads(Path(metrics_path).read_text())
    for name, protocol in (metrics.get("protocols") or {metrics.get("protocol", ""): metrics}).items():
        _protocol_section(doc, name, protocol)
    roc = Path(metrics_path).parent / "roc.png"
    if roc.is_file():
        png = roc.read_bytes()
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
    deltas = metrics.get("deltas", {})
    rows = []
    for name, m in models.items():
        tar = m.get("tar_at_far", {})
        d = deltas.get(name, {})
        rows.append([
            name,
            f"{m.get('accuracy_mean', float('nan')):.4f} ± {m.get('accuracy_std', float('nan')):.4f}",
            tar.get("0.001"), tar.get("0.01"), tar.get("0.1"), m.get("auc"), m.get("eer"),
            _delta_text(d),
        ])
    doc.table(["model", "accuracy (mean ± std over folds)", "TAR@FAR=1e-3", "TAR@FAR=1e-2", "TAR@FAR=1e-1",
               "AUC", "EER", "delta vs baseline"], rows)
    paper = metrics.get("paper")
    if paper:
        doc.p("The paper's values, read off its ROC figures (about ±0.01), for comparison:")
        header = ["model", *sorted(next(iter(paper.values())).keys())]
        doc.table(header, [[k, *[v.get(h) for h in header[1:]]] for k, v in paper.items()])
    for note in metrics.get("notes", []):
        doc.p(note, muted=True)
    repeats = metrics.get("repeats")
    if repeats:
        n = max(r["seeds"] for r in repeats.values())
        doc.p(f"Over the {n} recognizer seeds (mean ± sample std; each augmented model is compared with the "
              "baseline trained from the same seed; 'higher' counts the seeds where it is above it):")
        rows = []
        for stem, r in repeats.items():
            d = r.get("deltas", {})
            rows.append([stem, r["seeds"], _spread(r["accuracy"]), _spread(r["tar_at_far_0.01"]),
                         _spread(d.get("accuracy"), signed=True), _spread(d.get("tar_at_far_0.01"), signed=True)])
        doc.table(["model", "seeds", "accuracy", "TAR@FAR=1e-2", "delta accuracy", "delta TAR@FAR=1e-2"], rows)
    _oracle_table(doc, metrics)
    _strata_table(doc, metrics)


def _oracle_table(doc: Doc, metrics: dict) -> None:
    """baseline / +SaGAN / +oracle side by side, and the SaGAN gain as a fraction of the oracle's."""
    fractions = metrics.get("oracle_fraction") or {}
    repeats = metrics.get("repeats") or {}
    if not fractions:
        return
    base = repeats.get(metrics.get("baseline", "baseline"), {})
    doc.p("Baseline, SaGAN edits and perfect edits (SynthFaces' exact counterfactuals of the same rows, the most "
          "that editing can buy), same steps and seeds; the SaGAN gain as a fraction of the oracle's (mean ± std of "
          "the per-seed fractions, and the ratio of the mean gains):")
    rows = []
    for stem, fr in fractions.items():
        sagan, oracle = repeats.get(stem, {}), repeats.get(f"{stem}:oracle", {})
        for key, label in (("accuracy", "accuracy"), ("tar_at_far_0.01", "TAR@FAR=1e-2")):
            f = fr.get(key) or {}
            frac = "" if f.get("fraction_mean") is None else f"{f['fraction_mean']:.2f} ± {f['fraction_std']:.2f}"
            ratio = "" if f.get("fraction_of_mean_gains") is None else f"{f['fraction_of_mean_gains']:.2f}"
            rows.append([stem, label, _spread(base.get(key)), _spread(sagan.get(key)), _spread(oracle.get(key)),
                         _spread((sagan.get("deltas") or {}).get(key), signed=True),
                         _spread((oracle.get("deltas") or {}).get(key), signed=True), frac, ratio])
    doc.table(["attribute", "metric", "baseline", "+SaGAN", "+oracle", "SaGAN gain", "oracle gain",
               "SaGAN / oracle (per seed)", "SaGAN / oracle (mean gains)"], rows)


def _strata_table(doc: Doc, metrics: dict) -> None:
    """The protocol's pairs split by whether the two photos share an attribute's value."""
    for attr, strata in (metrics.get("strata") or {}).items():
        names = [n for n in next(iter(strata.values()), {}).get("repeats", {})] or \
            [n for n in next(iter(strata.values()), {}).get("models", {})]
        if not names:
            continue
        doc.p(f"Pairs by {attr} (fraction decided right at the protocol's thresholds; mean ± std over seeds; "
              f"attributes: {metrics.get('strata_attributes', 'dataset')}):")
        rows = []
        for stratum, entry in strata.items():
            if entry.get("repeats"):
                cells = [_spread(entry["repeats"].get(n)) for n in names]
            else:
                cells = [entry.get("models", {}).get(n) for n in names]
            rows.append([stratum.replace("_", " "), entry.get("pairs"), *cells])
        doc.table(["pairs", "count", *names], rows)


def _spread(s: dict | None, signed: bool = False) -> str:
    if not s:
        return ""
    fmt = "+.4f" if signed else ".4f"
    text = f"{s['mean']:{fmt}} ± {s['std']:.4f}"
    if "higher" in s:
        text += f" (higher in {s['higher']} of {s['n']})"
    return text


def _delta_text(d: dict) -> str:
    if not d:
        return ""
    parts = []
    for key in ("accuracy", "tar_at_far_0.01"):
        if key in d:
            v = d[key]
            if isinstance(v, dict):
                txt = f"{key} {v.get('delta', float('nan')):+.4f}"
                if "p_value" in v:
                    txt += f" (p={v['p_value']:.3g})"
                parts.append(txt)
            else:
                parts.append(f"{key} {v:+.4f}")
    return "; ".join(parts) if parts else json.dumps(d, sort_keys=True)
