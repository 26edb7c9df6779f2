"""The ``augment synth`` options, made from the fields of ``SynthConfig`` (the ``synth`` config section).

``SynthConfig`` is the one definition of each setting: its name, its type and
its default. ``OPTIONS`` adds only what a command line needs beyond that: the
options' order, a shorter flag where one is used, the help text, and a default
where the command's differs (``seed``: the section's None means the run's seed,
and the command has no run). A field missing from ``OPTIONS`` still gets an
option, named after it, with its default and no help; ``out`` is the command's
OUT argument. tests/test_synthfaces.py checks that the options follow the section.

How a field's type becomes an option: int, float, str and bool (or None of
them) one value; a tuple one comma-separated string; a dict of attribute ->
number a repeatable ATTRIBUTE=P.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, NamedTuple

import click

from augment.config import SynthConfig


class Spec(NamedTuple):
    help: str | None = None
    flag: str = ""  # "" = --the-field-name
    default: Any = dataclasses.MISSING  # MISSING = SynthConfig's


# Field -> its option, in the order `augment synth --help` lists them.
OPTIONS: dict[str, Spec] = {
    "identities": Spec("People in the CelebA part."),
    "images_per_identity": Spec(),
    "lfw_identities": Spec("People in the LFW part (disjoint from the CelebA part)."),
    "lfw_images_per_identity": Spec(),
    "size": Spec("Side of the CelebA-part images, px."),
    "seed": Spec(default=0),
    "habit_strength": Spec("P(a photo shows the person's habitual value of an attribute)."),
    "lfw_habit_strength": Spec("The same for the LFW-part people; without it, --habit-strength's value."),
    "habit_by_attribute": Spec("Per-attribute habit strength of the CelebA-part people, e.g. Eyeglasses=1.0 "
                               "(repeatable).", "--habit"),
    "lfw_habit_by_attribute": Spec("The same for the LFW-part people.", "--lfw-habit"),
    "habit_prior_by_attribute": Spec("P(a person's habitual value of ATTRIBUTE is 1), e.g. Eyeglasses=0.5 "
                                     "(repeatable).", "--prior"),
    "groundtruth_splits": Spec("CelebA-part splits that also get exact counterfactuals, comma-separated "
                               "(train,val,test)."),
    "jpeg_quality": Spec("0 = lossless PNG; 1..100 = JPEG (masks then mark the pixels whose decoded values differ)."),
    "workers": Spec("Rendering processes; 0 = all cores. The output does not depend on it."),
}
NOT_OPTIONS = frozenset({"out"})

_TYPES = typing.get_type_hints(SynthConfig)
_DEFAULTS = SynthConfig()


def fields() -> list[str]:
    """The SynthConfig fields that are options, in their order on the command line."""
    names = [f.name for f in dataclasses.fields(SynthConfig) if f.name not in NOT_OPTIONS]
    return [n for n in OPTIONS if n in names] + [n for n in names if n not in OPTIONS]


def flag(name: str) -> str:
    """The option of field ``name``, e.g. ``--habit`` for ``habit_by_attribute``."""
    return OPTIONS.get(name, Spec()).flag or "--" + name.replace("_", "-")


def _kind(name: str) -> tuple[str, type]:
    """'value', 'list' (a tuple) or 'attribute_values' (a dict), and the type of one value."""
    annotation = _TYPES[name]
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        (annotation,) = [a for a in args if a is not type(None)]  # Optional[X]: an X, or the default None
    origin = typing.get_origin(annotation)
    if origin is tuple:
        return "list", str
    if origin is dict:
        return "attribute_values", str
    if annotation in (int, float, str, bool):
        return "value", annotation
    raise TypeError(f"SynthConfig.{name}: {annotation} has no command-line form; add one in {__name__}")


def _option(name: str):
    spec = OPTIONS.get(name, Spec())
    kind, value_type = _kind(name)
    default = getattr(_DEFAULTS, name) if spec.default is dataclasses.MISSING else spec.default
    decls = (flag(name), name)
    if kind == "attribute_values":
        given = {"default": tuple(f"{k}={v}" for k, v in default.items()), "show_default": True} if default else {}
        return click.option(*decls, multiple=True, metavar="ATTRIBUTE=P", help=spec.help, **given)
    if kind == "list":
        default = ",".join(default)
    shown = {"show_default": True} if default is not None else {}  # None: the help says what it means
    return click.option(*decls, type=value_type, default=default, help=spec.help, **shown)


def synth_options(func):
    """Decorator: one click option per field of ``fields()``, in that order."""
    for name in reversed(fields()):  # click lists the options in the order their decorators are written
        func = _option(name)(func)
    return func


def settings_of(options: dict[str, Any]) -> dict[str, Any]:
    """The command's values of these options -> SynthConfig field values (a usage error names the flag)."""
    out = dict(options)
    for name in fields():
        kind, _ = _kind(name)
        if kind == "attribute_values":
            out[name] = _attribute_values(options[name], flag(name))
        elif kind == "list":
            out[name] = tuple(x.strip() for x in options[name].split(",") if x.strip())
    return out


def _attribute_values(items, flag: str) -> dict[str, float]:
    """``("Eyeglasses=1.0", ...)`` -> ``{"Eyeglasses": 1.0}``; a usage error names the flag."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise click.BadParameter(f"expected ATTRIBUTE=P, e.g. Eyeglasses=1.0; got {item!r}", param_hint=flag)
    return out
