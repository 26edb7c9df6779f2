"""The paper's values, shown once in their own section: TAR at three FARs that
Zhang et al. (SaGAN, ECCV 2018) report for recognizers trained on real photos
(CelebA), read off their ROC figures. The evaluate stage copies them into each
protocol's ``paper`` block, once per seed's model name; here each paper model
appears once per protocol."""

from __future__ import annotations

from pathlib import Path

from augment.report.claim import load, protocols
from augment.report.doc import Doc
from recognition.scoring import split_repeat as seed_of

NAMES = {"tar_at_far_0.001": "TAR @ FAR 1e-3", "tar_at_far_0.01": "TAR @ FAR 1e-2", "tar_at_far_0.1": "TAR @ FAR 1e-1"}


def paper_section(doc: Doc, metrics_path: Path | None) -> None:
    """The section, or nothing when no protocol carries the paper's values."""
    metrics = load(metrics_path)
    if metrics is None:
        return
    rows, keys, notes = [], [], []
    seen = set()
    for name, block in protocols(metrics).items():
        for model, values in (block.get("paper") or {}).items():
            if not isinstance(values, dict):
                continue
            label = values.get("paper_model") or seed_of(model)[0]
            if (name, label) in seen:
                continue
            seen.add((name, label))
            keys += [k for k in values if k != "paper_model" and k not in keys]
            rows.append((name, seed_of(model)[0], label, values))
        notes += [n for n in block.get("notes", []) if n.startswith("paper:") and n not in notes]
    if not rows:
        return
    keys.sort()
    doc.h2("The paper's values (real data, not this run's)")
    doc.p("Figures from the SaGAN paper (Zhang et al., ECCV 2018) for recognizers trained on real photos (CelebA), "
          "read off its ROC figures (about ±0.01). They are the paper's, on its data; this run's own figures are in "
          "the sections above. Shown for scale, not as a target the synthetic world should reproduce.", muted=True)
    doc.table(["protocol", "this run's model", "paper's model", *[NAMES.get(k, k) for k in keys]],
              [[name, model, label, *[values.get(k) for k in keys]] for name, model, label, values in rows])
    for note in notes:
        doc.p(note, muted=True)
