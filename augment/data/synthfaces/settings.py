"""The settings a SynthFaces dataset is rendered with, and their checks.

``Settings`` holds everything the rendered bytes depend on (it is stored in
the dataset's stamp, see dataset.py); ``validate`` raises a ``SettingError``
naming the offending setting.
"""

from __future__ import annotations

import dataclasses

from augment.config import ConfigError, SynthConfig
from augment.data.synthfaces.params import ATTRIBUTES

FORMAT_VERSION = 1


# The settings the rendered bytes depend on: the ``synth`` config section
# (augment/config/data_sections.py, where each key is defined and commented) without
# where the dataset goes and how many processes render it, and with the seed
# resolved (the section's, or the run's).
NOT_RENDERING = ("out", "workers")


class _SettingsMethods:
    @property
    def ext(self) -> str:
        return "jpg" if self.jpeg_quality > 0 else "png"

    def habits(self, part: str) -> dict[str, float]:
        """{attribute: P(a photo shows the habitual value)} for the ``celeba`` or ``lfw`` part."""
        if part == "celeba":
            base, by = self.habit_strength, self.habit_by_attribute
        else:
            base = self.habit_strength if self.lfw_habit_strength is None else self.lfw_habit_strength
            by = self.lfw_habit_by_attribute
        return {a: float(by.get(a, base)) for a in ATTRIBUTES}

    def as_dict(self) -> dict:
        d = {**dataclasses.asdict(self), "format_version": FORMAT_VERSION}
        # Keys added later are recorded only when set, so a dataset made before
        # they existed still counts as complete (its bytes are the same).
        for key, default in OPTIONAL_DEFAULTS.items():
            if d[key] == default:
                del d[key]
        if "groundtruth_splits" in d:
            d["groundtruth_splits"] = list(d["groundtruth_splits"])
        return d


def _rendering_fields() -> list[tuple]:
    out = []
    for f in dataclasses.fields(SynthConfig):
        if f.name in NOT_RENDERING:
            continue
        if f.name == "seed":  # resolved: always a number here
            out.append(("seed", int, dataclasses.field(default=0)))
        elif f.default_factory is not dataclasses.MISSING:
            out.append((f.name, f.type, dataclasses.field(default_factory=f.default_factory)))
        else:
            out.append((f.name, f.type, dataclasses.field(default=f.default)))
    return out


Settings = dataclasses.make_dataclass("Settings", _rendering_fields(), bases=(_SettingsMethods,), frozen=True)
Settings.__module__ = __name__  # so that worker processes unpickle it from here
Settings.__doc__ = """Everything the output depends on (stored in the stamp): the fields of
``SynthConfig`` but ``out`` and ``workers``, with ``seed`` an int."""


OPTIONAL_DEFAULTS = {"lfw_habit_strength": None, "groundtruth_splits": ("test",), "habit_by_attribute": {},
                     "lfw_habit_by_attribute": {}, "habit_prior_by_attribute": {}}
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


class SettingError(ConfigError):
    """A bad setting; ``key`` names it (``identities``, ``size``, ``out``, ...)."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"synth.{key}: {reason}")
        self.key, self.reason = key, reason


def validate(s: Settings) -> None:
    """Raise SettingError naming the offending setting."""

    def bad(key: str, msg: str) -> None:
        raise SettingError(key, msg)

    if s.identities < 2:
        bad("identities", f"must be at least 2 (a train and a test identity), got {s.identities}")
    if s.images_per_identity < 1:
        bad("images_per_identity", f"must be at least 1, got {s.images_per_identity}")
    if s.size < 32:
        bad("size", f"must be at least 32 pixels, got {s.size}")
    if s.lfw_identities < 2:
        bad("lfw_identities", f"must be at least 2 (pairs of different people), got {s.lfw_identities}")
    if s.lfw_images_per_identity < 2:
        bad("lfw_images_per_identity",
            f"must be at least 2 (pairs of the same person), got {s.lfw_images_per_identity}")
    same = s.lfw_identities * s.lfw_images_per_identity * (s.lfw_images_per_identity - 1) // 2
    if same < 10:
        bad("lfw_identities", f"the LFW part has {same} same-person pair(s); 10 folds need at least 10 "
            "(raise lfw_identities or lfw_images_per_identity)")
    if not 0.0 <= s.habit_strength <= 1.0:
        bad("habit_strength", f"must be within [0, 1], got {s.habit_strength}")
    if s.lfw_habit_strength is not None and not 0.0 <= s.lfw_habit_strength <= 1.0:
        bad("lfw_habit_strength", f"must be within [0, 1] (or null = habit_strength), got {s.lfw_habit_strength}")
    for key in ("habit_by_attribute", "lfw_habit_by_attribute", "habit_prior_by_attribute"):
        for a, v in getattr(s, key).items():
            if a not in ATTRIBUTES:
                bad(key, f"{a!r} is not a rendered attribute ({', '.join(ATTRIBUTES)})")
            if not 0.0 <= float(v) <= 1.0:
                bad(key, f"{a}: must be within [0, 1], got {v}")
    unknown = [x for x in s.groundtruth_splits if x not in SPLIT_CODES]
    if unknown:
        bad("groundtruth_splits", f"unknown split(s) {unknown}; choose from {list(SPLIT_CODES)}")
    if not 0 <= s.jpeg_quality <= 100:
        bad("jpeg_quality", f"must be 0 (PNG) or a JPEG quality 1..100, got {s.jpeg_quality}")
