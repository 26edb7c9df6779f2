"""Pipeline configuration: YAML -> frozen dataclasses (checked at load by
``augment.validate.load_config``).

Precedence: dataclass defaults < the pipeline YAML < ``--set a.b.c=value``.
Every error names the YAML file and the dotted key; an unknown key also gets the
closest valid key ("did you mean ..."). Relative paths are resolved against the
current working directory, as a shell user expects.

Each stage reads its own section (``synth``, ``data``, ``align``, ...); the
runner fingerprints only the sections a stage declares, so editing one section
reruns that stage and what follows it, nothing upstream.

- ``sections``: the dataclasses, the one place a key is defined;
- ``parse``: YAML and ``--set`` -> typed dataclasses;
- ``augment/validate.py`` (a layer above): ranges, cross-section rules and paths, checked
  before any stage runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from typing import Any

import yaml

from augment.config.parse import build_config, parse_overrides, read_tree  # noqa: F401 (the package's API)
from augment.config.sections import (
    AlignConfig, AttributeRecipe, ConfigError, DataConfig, DatasetConfig, EditConfig, EvalSaganConfig, EvaluateConfig,
    PipelineConfig, ReportConfig, SynthConfig, TrainClassifierConfig, TrainRecognitionConfig, TrainSaganConfig,
)  # fmt: skip

__all__ = ["AlignConfig", "AttributeRecipe", "ConfigError", "DataConfig", "DatasetConfig", "EditConfig",
           "EvalSaganConfig", "EvaluateConfig", "PipelineConfig", "ReportConfig", "SynthConfig", "TrainClassifierConfig",
           "TrainRecognitionConfig", "TrainSaganConfig", "config_hash", "dump_yaml", "build_config", "read_tree",
           "parse_overrides", "section_hash", "section_json", "to_dict"]


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
