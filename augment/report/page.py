"""The report page: its sections in their order."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from PIL import Image

from augment import manifest as mf
from augment.config import PipelineConfig
from augment.report.doc import Doc
from augment.report.plots import curves_section
from augment.report.recognition import recognition_section
from augment.report.quality import edit_quality_section
from augment.report.sections import config_section, counts_section, grids_section, timings_section


def build(cfg: PipelineConfig, inputs: dict, run_dir: Path, grids: Mapping[str, Image.Image] | None = None) -> Doc:
    """The page from the stage's ``inputs`` and eval_sagan's edit ``grids``
    ({attribute: image}; ``None`` when eval_sagan did not run); the figures it
    embeds are also written into ``run_dir``, beside report.md, which links them."""
    doc = Doc(f"augment report: {cfg.name}")
    counts_section(doc, inputs)
    timings_section(doc, cfg)
    grids_section(doc, run_dir, grids)
    gens = inputs.get("generators")
    curves_section(doc, run_dir, gens if isinstance(gens, mf.Manifest) else None)
    edit_quality_section(doc, inputs.get("sagan_metrics"))
    recognition_section(doc, inputs.get("recognition_metrics"), run_dir)
    config_section(doc, cfg)  # last: every key, one row each
    return doc
