"""The report's sections about the run itself: configuration, datasets, stage
timings and the edit grids (eval_sagan's images); the edit-quality tables are
in ``augment.report.quality``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from PIL import Image

from augment import manifest as mf
from augment import workdir
from augment.config import PipelineConfig, to_dict
from augment.fs import write_atomic
from augment.report.doc import Doc, file_part, png
from augment.names import component


def config_section(doc: Doc, cfg: PipelineConfig) -> None:
    doc.h2("Configuration")
    d = to_dict(cfg)
    rows = [["name", cfg.name], ["seed", cfg.seed], ["device", cfg.device], ["stages", ", ".join(cfg.stages)]]
    # every key of the sections this pipeline's stages read (the read stage's section is data)
    for section in ("synth", "data", "align", "train_classifier", "train_sagan", "edit", "train_recognition",
                    "evaluate"):
        if ("read" if section == "data" else section) in cfg.stages:
            rows += [[key, value] for key, value in _flat(d[section], section)]
    doc.table(["key", "value"], rows)


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


def grids_section(doc: Doc, run_dir: Path, grids: Mapping[str, Image.Image] | None) -> None:
    """eval_sagan's edit grids, each embedded and copied beside report.md as
    ``grid_<attribute>.png``; ``None``: eval_sagan did not run, and the page says so.
    No section when eval_sagan drew none (``report.grid_images`` 0)."""
    if grids is None:
        doc.h2("Edits (input | +attribute | -attribute | mask)")
        doc.p("No edit grids: eval_sagan, which draws them, is not among this pipeline's stages.", muted=True)
        return
    if not grids:
        return
    doc.h2("Edits (input | +attribute | -attribute | mask)")
    for attr, img in grids.items():
        name = component(f"grid_{file_part(attr)}.png", "an edit-grid figure")
        write_atomic(run_dir / name, lambda tmp: img.save(tmp, format="PNG"))
        doc.p(attr)
        doc.image(png(img), f"edit grid {attr}", name)
