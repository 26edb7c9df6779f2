"""The report's sections about the run itself: datasets, stage timings and the
configuration (folded away at the end of the page); the edit grids open the
page, in ``augment.report.summary``."""

from __future__ import annotations

from typing import Any

from augment import manifest as mf
from augment import workdir
from augment.config import PipelineConfig, to_dict
from augment.report.doc import Doc


def config_section(doc: Doc, cfg: PipelineConfig) -> None:
    """Every key of the stages' config sections, one row each, inside a closed ``<details>``."""
    doc.details("Configuration (every key the stages read)")
    d = to_dict(cfg)
    rows = [["name", cfg.name], ["seed", cfg.seed], ["device", cfg.device], ["stages", ", ".join(cfg.stages)]]
    # every key of the sections this pipeline's stages read (the read stage's section is data)
    for section in ("synth", "data", "align", "train_classifier", "train_sagan", "edit", "train_recognition",
                    "evaluate"):
        if ("read" if section == "data" else section) in cfg.stages:
            rows += [[key, value] for key, value in _flat(d[section], section)]
    doc.table(["key", "value"], rows)
    doc.end_details()


def _flat(value: Any, key: str) -> list[tuple[str, Any]]:
    """A config section as (dotted key, value) rows; lists joined by commas."""
    if isinstance(value, dict):
        if not value:
            return [(key, "{}")]
        return [row for k, v in value.items() for row in _flat(v, f"{key}.{k}")]
    if isinstance(value, list):
        return [(key, ", ".join(str(v) for v in value))]
    return [(key, value)]


def counts_section(doc: Doc, inputs: dict) -> None:
    doc.h2("Datasets")
    rows = []
    for key, label in (("source", "training images (read)"), ("eval_source", "evaluation images (read)"),
                       ("aligned", "aligned training images"), ("eval_aligned", "aligned evaluation images"),
                       ("rejects", "alignment rejects"), ("edits", "SaGAN edits")):
        m = inputs.get(key)
        if isinstance(m, mf.Manifest):
            ident = int(m.df["identity"].nunique()) if "identity" in m.df else None
            rows.append([label, len(m), ident])
    pairs = inputs.get("pairs")
    if isinstance(pairs, mf.Manifest):
        rows.append(["evaluation pairs", len(pairs), f"{int(pairs.df['fold'].nunique())} fold(s)"])
    doc.table(["set", "rows", "identities"], rows)
    rej = inputs.get("rejects")
    if isinstance(rej, mf.Manifest) and len(rej):
        doc.table(["reject reason", "count"], [[k, int(v)] for k, v in rej.df["reason"].value_counts().items()])


def timings_section(doc: Doc, cfg: PipelineConfig) -> None:
    doc.h2("Stage timings")
    rows = []
    total = 0.0
    for name, state, marker in workdir.states(cfg):
        secs = marker.get("seconds") if marker else None
        if secs is not None and name != "report":
            total += secs
        if name == "report" and state == "interrupted":
            state = "running"  # this report is being written: its stage is not finished yet
        # seconds as text, so that every row has one decimal (numbers under 100 get four)
        rows.append([name, state, None if secs is None else f"{secs:.1f}",
                     marker.get("peak_rss_mib") if marker else None])
    rows.append(["total", "", f"{total:.1f}", None])
    doc.table(["stage", "state", "seconds", "peak RSS (MiB)"], rows)
