"""The ``synth`` stage: render SynthFaces into ``synth.out`` (or the stage folder)."""

from __future__ import annotations

from pathlib import Path

from augment import manifest as mf
from augment.config import PipelineConfig
from augment.data.synthfaces import settings_from_config, synthesize
from augment.stages import StageInputs, StageOutputs


def run_stage(cfg: PipelineConfig, inputs: StageInputs, run_dir: Path) -> StageOutputs:
    """The ``synth`` stage: render into ``synth.out`` (empty: ``<run_dir>/data``)
    unless a complete dataset with the same settings is already there."""
    from augment.runtime import workers

    out = Path(cfg.synth.out) if cfg.synth.out else Path(run_dir) / "data"
    manifest = synthesize(out, settings_from_config(cfg), workers=workers(cfg.synth.workers))
    return {"groundtruth": mf.Manifest("groundtruth", manifest.df, out, manifest.meta)}
