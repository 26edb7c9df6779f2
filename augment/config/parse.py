"""YAML and ``--set`` overrides -> typed, frozen config dataclasses.

Every error names the source (the YAML file or the ``--set`` flag) and the
dotted key; an unknown key also gets the closest valid key ("did you mean ...").
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from augment.config.sections import ConfigError, PipelineConfig



def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    if origin in (tuple, list):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of {_type_name(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return f"a mapping ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return the typed value."""
    origin = typing.get_origin(tp)

    def bad() -> ConfigError:
        return ConfigError(
            f"{source}: key '{key}' must be {_type_name(tp)}, got {value!r} ({type(value).__name__})"
        )

    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError as e:
                errors.append(e)
        raise bad()
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise bad()
    if origin in (tuple, list):
        if isinstance(value, str) and "," in value:  # --set stages=a,b
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise bad()
        (item_tp, *_rest) = typing.get_args(tp)
        items = [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise bad()
        _, val_tp = typing.get_args(tp)
        return {str(k): _coerce(v, val_tp, f"{key}.{k}", source) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise bad()
        return _build(tp, value, key, source)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad()
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad()
    raise ConfigError(f"{source}: key '{key}' has an unsupported type {tp!r}")  # pragma: no cover


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key reachable in ``cls`` (for "did you mean" suggestions)."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        keys.append(dotted)
        tp = hints[f.name]
        if typing.get_origin(tp) is dict:  # its keys are names (attributes), not fields
            continue
        for arg in (tp, *typing.get_args(tp)):
            if dataclasses.is_dataclass(arg):
                keys.extend(_all_keys(arg, dotted + "."))
    return keys


def _suggest(key: str, root_cls: type) -> str:
    candidates = _all_keys(root_cls)
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not close:
        # a right leaf in the wrong section, or a misspelt leaf anywhere
        by_leaf = {c.rsplit(".", 1)[-1]: c for c in candidates}
        leaf_match = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.7)
        close = [by_leaf[leaf_match[0]]] if leaf_match else []
    return f"; did you mean '{close[0]}'?" if close else ""


def _build(cls: type, data: dict, prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for k in data:
        if k not in names:
            dotted = f"{prefix}.{k}" if prefix else str(k)
            # a close key of this same mapping first (it also names a mapping
            # reached through a dict, train_sagan.per_attribute.<attribute>)
            near = difflib.get_close_matches(str(k), sorted(names), n=1, cutoff=0.7) if prefix else []
            hint = f"; did you mean '{prefix}.{near[0]}'?" if near else _suggest(dotted, PipelineConfig)
            raise ConfigError(f"{source}: unknown key '{dotted}'{hint}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            dotted = f"{prefix}.{f.name}" if prefix else f.name
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], dotted, source)
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str, value: Any, source: str) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: '{dotted}' goes inside '{p}', which is not a mapping")
        node = child
    node[parts[-1]] = value


def parse_overrides(overrides: typing.Iterable[str]) -> list[tuple[str, Any]]:
    """``["a.b=1", "c=x,y"]`` -> ``[("a.b", 1), ("c", "x,y")]``; values are YAML scalars."""
    out = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train_sagan.steps=100")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--set {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out.append((key, value))
    return out


def read_tree(path: str | Path | None) -> dict:
    """The mapping of a pipeline YAML file ({} for no file)."""
    if path is None:
        return {}
    source = str(path)
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{source}: pipeline file not found")
    try:
        loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}:{where} is not valid YAML: {getattr(e, 'problem', e)}") from e
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(loaded).__name__}")
    return loaded


def build_config(tree: dict, overrides: typing.Iterable[str], source: str) -> PipelineConfig:
    """The typed config of a YAML tree, with the ``--set`` overrides applied one at a
    time, so that an error names the flag, not the file."""
    cfg = _build(PipelineConfig, tree, "", source)
    for key, value in parse_overrides(overrides):
        flag = f"--set {key}"
        _set_dotted(tree, key, value, flag)
        cfg = _build(PipelineConfig, tree, "", flag)
    return cfg
