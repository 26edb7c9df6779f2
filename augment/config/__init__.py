"""Pipeline configuration: YAML -> frozen dataclasses, checked at load.

Precedence: dataclass defaults < the pipeline YAML < ``--set a.b.c=value``.
Every error names the YAML file and the dotted key; an unknown key also gets the
closest valid key ("did you mean ..."). Relative paths are resolved against the
current working directory, as a shell user expects.

Each stage reads its own section (``synth``, ``data``, ``align``, ...); the
runner fingerprints only the sections a stage declares, so editing one section
reruns that stage and what follows it, nothing upstream.

- ``sections``: the dataclasses, the one place a key is defined;
- ``parse``: YAML and ``--set`` -> typed dataclasses;
- ``checks``: ranges, cross-section rules and paths, checked here before any stage runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from pathlib import Path
from typing import Any

import yaml

from augment.config import checks
from augment.config.parse import build_config, parse_overrides, read_tree
from augment.config.sections import (
    AlignConfig, ConfigError, DataConfig, DatasetConfig, EditConfig, EvalSaganConfig, EvaluateConfig,
    PipelineConfig, ReportConfig, SynthConfig, TrainClassifierConfig, TrainRecognitionConfig, TrainSaganConfig,
)  # fmt: skip

__all__ = ["AlignConfig", "ConfigError", "DataConfig", "DatasetConfig", "EditConfig", "EvalSaganConfig",
           "EvaluateConfig", "PipelineConfig", "ReportConfig", "SynthConfig", "TrainClassifierConfig",
           "TrainRecognitionConfig", "TrainSaganConfig", "config_hash", "dump_yaml", "load_config",
           "parse_overrides", "section_hash", "section_json", "to_dict"]


def load_config(
    path: str | Path | None = None,
    overrides: typing.Iterable[str] = (),
    *,
    check_paths: bool = True,
) -> PipelineConfig:
    """Read a pipeline YAML, apply ``--set`` overrides, validate, and freeze.

    Raises ConfigError naming the file and the dotted key on any problem.
    ``check_paths=False`` skips the checks that look at the disk.
    """
    source = str(path) if path is not None else "<defaults>"
    cfg = build_config(read_tree(path), overrides, source)
    checks.check_stage_names(cfg, source)
    checks.check_ranges(cfg, source)
    checks.check_evaluate(cfg, source)
    checks.check_edit_models(cfg, source)
    checks.check_edit_filters(cfg, source)
    checks.check_diffaugment(cfg, source)
    if check_paths:
        checks.check_paths(cfg, "", source)
        checks.check_datasets(cfg, source)
        if "edit" in cfg.stages and cfg.edit.generators:
            checks.check_generators_alignment(cfg, source)
    return cfg


def to_dict(cfg: Any) -> Any:
    """A dataclass tree as plain YAML/JSON-able data (tuples become lists)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (tuple, list)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def dump_yaml(cfg: PipelineConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def section_json(cfg: PipelineConfig, keys: typing.Iterable[str]) -> str:
    """Canonical JSON of the named top-level sections (what a stage depends on)."""
    return json.dumps({k: to_dict(getattr(cfg, k)) for k in keys}, sort_keys=True)


def config_hash(cfg: PipelineConfig) -> str:
    """16 hex digits of the WHOLE config (recorded in every manifest the run writes)."""
    return hashlib.sha256(dump_yaml(cfg).encode()).hexdigest()[:16]


def section_hash(cfg: PipelineConfig, keys: typing.Iterable[str]) -> str:
    """16 hex digits of the named sections only (recorded in a stage's checkpoints)."""
    return hashlib.sha256(section_json(cfg, keys).encode()).hexdigest()[:16]
