"""The report page: its sections in their order. A summary first (the claim
and its answer, the edits' success and identity, the edit grids), then the
details, the paper's values, the run's data and timings, and the
configuration folded away at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from PIL import Image

from augment import manifest as mf
from augment.config import PipelineConfig
from augment.report.doc import Doc
from augment.report.paper import paper_section
from augment.report.plots import curves_section
from augment.report.quality import edit_quality_section
from augment.report.recognition import recognition_section
from augment.report.sections import config_section, counts_section, timings_section
from augment.report.summary import summary_section

PEOPLE = {"same": "trained on the generator's own training people",
          "others": "trained on people the generator never saw"}


def judge_people(cfg: PipelineConfig) -> str | None:
    """Whom the attribute judge learnt from, when this pipeline trains it (None otherwise)."""
    if "train_classifier" not in cfg.stages:
        return None
    people = cfg.train_classifier.people
    return f"{PEOPLE.get(people, people)} (train_classifier.people: {people})"


def build(cfg: PipelineConfig, inputs: dict, run_dir: Path, grids: Mapping[str, Image.Image] | None = None) -> Doc:
    """The page from the stage's ``inputs`` and eval_sagan's edit ``grids``
    ({attribute: image}; ``None`` when eval_sagan did not run); the figures it
    embeds are also written into ``run_dir``, beside report.md, which links them."""
    doc = Doc(f"augment report: {cfg.name}")
    people = judge_people(cfg)
    summary_section(doc, inputs, run_dir, grids, people)
    edit_quality_section(doc, inputs.get("sagan_metrics"), people)
    recognition_section(doc, inputs.get("recognition_metrics"), run_dir)
    gens = inputs.get("generators")
    curves_section(doc, run_dir, gens if isinstance(gens, mf.Manifest) else None)
    paper_section(doc, inputs.get("recognition_metrics"))
    counts_section(doc, inputs)
    timings_section(doc, cfg)
    config_section(doc, cfg)  # last, folded: every key, one row each
    return doc
