"""The ``report`` stage (``augment.report.stage:run_stage``): report.html and
report.md in ``<workdir>/report/``, a copy of report.html at the top of the workdir.

It runs no model: the edit grids are the images eval_sagan wrote (its
``sagan_grids`` output, ``augment.sagan.evaluate``), read back here."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

from PIL import Image

from augment.config import PipelineConfig
from augment.data.errors import DatasetError
from augment.fs import write_text
from augment.report.page import build
from augment.stages import StageInputs, StageOutputs

log = logging.getLogger("augment.report")


def read_grids(index: Path) -> dict[str, Image.Image]:
    """eval_sagan's ``grids.json`` -> {attribute: RGB image}, in its order. Each
    file must lie under the index's folder and have the sha256 written there
    (the report's fingerprint covers the index only)."""
    index = Path(index)
    root = index.parent.resolve()
    grids = {}
    for entry in json.loads(index.read_text()):
        path = (root / entry["file"]).resolve()
        if root not in path.parents:
            raise DatasetError(f"{index}: grid file '{entry['file']}' lies outside {root}")
        if not path.is_file():
            raise DatasetError(f"{path}: edit grid listed in {index} not found; run eval_sagan again")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise DatasetError(f"{path}: not the edit grid eval_sagan wrote (sha256 differs from {index}); "
                               "run eval_sagan again")
        with Image.open(io.BytesIO(data)) as img:
            grids[entry["attribute"]] = img.convert("RGB")
    return grids


def run_stage(cfg: PipelineConfig, inputs: StageInputs, run_dir: Path) -> StageOutputs:
    index = inputs.get("sagan_grids")
    grids = read_grids(index) if index is not None else None  # None: eval_sagan did not run
    doc = build(cfg, inputs, run_dir, grids)
    write_text(run_dir / "report.md", doc.render_md())
    out = run_dir / "report.html"
    write_text(out, doc.render_html())
    # A copy at the top of the workdir, where a user looks first.
    write_text(Path(cfg.workdir) / "report.html", doc.render_html())
    log.info("report: %s", out)
    return {"report": out}
