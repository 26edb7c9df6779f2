"""Config validation: ``load_config`` reads a pipeline YAML (``augment.config``)
and checks it before any stage runs.

It sits near the top of the layering (docs/ARCHITECTURE.md) because the checks
ask the layers below: the stage registry, SynthFaces' settings, the SaGAN and
recognition network sizes, trained models' alignment.

Each error names the source (file or ``--set`` flag) and the dotted key, so
that a bad value exits with status 2 instead of failing later inside a stage.
Range checks apply to the sections of the stages this pipeline runs (the only
ones its results depend on); a new section's bounds go in ``RANGES``.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any

from augment import pretrained, trained
from augment.config import ConfigError, PipelineConfig
from augment.config.parse import build_config, read_tree
from augment.data.celeba import CELEBA_ATTRIBUTES
from augment.data.synthfaces import SettingError, settings_from_config, validate
from augment.sagan import diffaug
from augment.sagan.sizes import SizeError, stage_model_config
from augment.stages import STAGES
from recognition.sizes import backbone_size_problem

# Bounds of numeric keys, (lowest, highest) allowed, None = unbounded: values
# outside them make a stage fail part-way (a zero batch or chunk size, a
# modulo by zero every N steps) or mean nothing (a probability above 1).
RANGES: dict[str, tuple[float | None, float | None]] = {
    "align.size": (16, None),
    "align.min_prob": (0, 1),
    "align.min_face": (1, None),
    "align.detect_max_side": (0, None),
    "align.batch_size": (1, None),
    "train_classifier.width": (1, None),
    "train_classifier.batch_size": (1, None),
    "train_classifier.checkpoint_every": (1, None),
    "train_classifier.smudge_fraction": (0, 1),
    "train_sagan.batch_size": (1, None),
    "train_sagan.n_critic": (1, None),
    "train_sagan.checkpoint_every": (1, None),
    "train_sagan.sample_every": (1, None),
    "train_sagan.sample_images": (1, None),
    "train_sagan.log_every": (1, None),
    "train_sagan.mask_area_min": (0, 1),
    "train_sagan.mask_area_max": (0, 1),
    "train_sagan.lr_decay_from": (0, 1),
    "train_sagan.d_smudge_fraction": (0, 1),
    "train_sagan.mask_soft_steps": (0, None),
    "train_sagan.g_ema": (0, 0.9999),
    "train_sagan.r1_gamma": (0, None),
    "train_sagan.r1_every": (1, None),
    "train_sagan.lr_d": (0, None),
    "train_sagan.parallel": (1, None),
    "eval_sagan.max_images": (0, None),
    "eval_sagan.id_per_direction": (0, None),
    "eval_sagan.batch_size": (1, None),
    "edit.batch_size": (1, None),
    "edit.min_attr_prob": (0, 1),
    "edit.min_id_similarity": (-1, 1),
    "edit.max_mask_area": (0, 1),
    "edit.strength": (0, None),
    "edit.max_id_distance": (0, None),
    "edit.shard_size": (1, None),
    "edit.chunk_size": (1, None),
    "train_recognition.embedding_size": (1, None),
    "train_recognition.dropout": (0, 1),
    "train_recognition.repeats": (1, None),
    "train_recognition.epochs": (1, None),
    "train_recognition.batch_size": (1, None),
    "train_recognition.flip": (0, 1),
    "evaluate.bootstrap": (0, None),
    "evaluate.batch_size": (1, None),
    "report.grid_images": (0, None),
}
# SaganModelConfig fields -> the train_sagan keys that set them (d_layers and
# g_downsample follow from image_size and the preset).
_SAGAN_KEYS = {"image_size": "image_size", "g_width": "g_width", "d_width": "d_width", "g_res_blocks": "res_blocks",
               "g_downsample": "image_size", "d_layers": "image_size", "mask_scale": "mask_scale"}


def used_sections(cfg: PipelineConfig) -> set[str]:
    return {sec for name in cfg.stages for sec in STAGES[name].sections}


def check_stage_names(cfg: PipelineConfig, source: str) -> None:
    for i, name in enumerate(cfg.stages):
        if name not in STAGES:
            close = difflib.get_close_matches(name, list(STAGES), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known stages: {', '.join(STAGES)}"
            raise ConfigError(f"{source}: key 'stages[{i}]' names an unknown stage '{name}'{hint}")


def _check_bounds(key: str, value: float, lo: float | None, hi: float | None, source: str) -> None:
    """ConfigError naming ``key`` when ``value`` lies outside [lo, hi] (None = unbounded)."""
    if (lo is None or value >= lo) and (hi is None or value <= hi):
        return
    bound = f"within [{lo}, {hi}]" if lo is not None and hi is not None else \
        f"at least {lo}" if lo is not None else f"at most {hi}"
    raise ConfigError(f"{source}: key '{key}' must be {bound}, got {value}")


def check_ranges(cfg: PipelineConfig, source: str) -> None:
    """``RANGES``, the synth settings and the network sizes of the sections this pipeline uses."""
    used = used_sections(cfg)
    for key, (lo, hi) in RANGES.items():
        section, name = key.split(".")
        if section in used:
            _check_bounds(key, getattr(getattr(cfg, section), name), lo, hi, source)
    if "synth" in used:
        _check_synth(cfg, source)
    if "train_sagan" in used:
        _check_sagan_sizes(cfg, source)
        _check_per_attribute(cfg, source)
    if "train_recognition" in used:
        problem = backbone_size_problem(cfg.train_recognition.backbone, cfg.train_recognition.image_size)
        if problem:
            raise ConfigError(f"{source}: key 'train_recognition.image_size': {problem} "
                              f"(backbone {cfg.train_recognition.backbone})")


def _check_per_attribute(cfg: PipelineConfig, source: str) -> None:
    """train_sagan.per_attribute names trained attributes, and its values keep
    the bounds of the section's keys (a step count at least 1)."""
    s = cfg.train_sagan
    for attribute, recipe in s.per_attribute.items():
        prefix = f"train_sagan.per_attribute.{attribute}"
        if attribute not in s.attributes:
            raise ConfigError(f"{source}: key '{prefix}' names an attribute that train_sagan.attributes does not "
                              f"train ({', '.join(s.attributes)})")
        for name, value in dataclasses.asdict(recipe).items():
            if value is not None:
                lo, hi = (1, None) if name == "steps" else RANGES.get(f"train_sagan.{name}", (0, None))
                _check_bounds(f"{prefix}.{name}", value, lo, hi, source)


def _check_synth(cfg: PipelineConfig, source: str) -> None:
    try:
        validate(settings_from_config(cfg))
    except SettingError as e:
        raise ConfigError(f"{source}: key 'synth.{e.key}' {e.reason}") from None


def _check_sagan_sizes(cfg: PipelineConfig, source: str) -> None:
    """The SaGAN networks can take the sizes train_sagan asks for (augment/sagan/sizes.py)."""
    try:
        stage_model_config(cfg.train_sagan)
    except SizeError as e:
        raise ConfigError(f"{source}: key 'train_sagan.{_SAGAN_KEYS[e.field]}': {e}") from None
    s = cfg.train_sagan
    if s.mask_soft_steps and s.mask_scale != "hard":
        raise ConfigError(f"{source}: key 'train_sagan.mask_soft_steps' is {s.mask_soft_steps}, but it only "
                          f"applies to train_sagan.mask_scale 'hard' (got {s.mask_scale!r}): set it to 0 or "
                          "mask_scale to 'hard'")


def check_diffaugment(cfg: PipelineConfig, source: str) -> None:
    """train_sagan.diffaugment names known policies (augment/sagan/diffaug.py)."""
    try:
        diffaug.parse(cfg.train_sagan.diffaugment)
    except ValueError as e:
        raise ConfigError(f"{source}: key 'train_sagan.diffaugment': {e}") from None


def check_edit_filters(cfg: PipelineConfig, source: str) -> None:
    """A filter the user set must have its judge: otherwise the edit stage would keep every edit silently."""
    if "edit" not in cfg.stages:
        return
    e, before = cfg.edit, cfg.stages[: cfg.stages.index("edit")]
    if e.min_attr_prob > 0 and not e.classifier and "train_classifier" not in before:
        raise ConfigError(
            f"{source}: key 'edit.min_attr_prob' is {e.min_attr_prob}, but no classifier scores the edits: "
            "add 'train_classifier' to 'stages' before 'edit', set 'edit.classifier' to one trained earlier, "
            "or set edit.min_attr_prob to 0"
        )
    if e.min_id_similarity > -1 and not e.recognizer:
        raise ConfigError(
            f"{source}: key 'edit.min_id_similarity' is {e.min_id_similarity}, but 'edit.recognizer' is empty, "
            "so no identity similarity is measured: set edit.recognizer to a recognition checkpoint, "
            "or set edit.min_id_similarity to -1"
        )
    if e.max_id_distance > 0:
        from augment.judges.identity import missing

        problem = missing()
        if problem:
            raise ConfigError(f"{source}: key 'edit.max_id_distance' is {e.max_id_distance}, but {problem}")


def check_judge_people(cfg: PipelineConfig, source: str) -> None:
    """A judge trained on the val people (train_classifier.people: others) must not
    score the edits of its own training people in eval_sagan."""
    if cfg.train_classifier.people == "others" and {"train_classifier", "eval_sagan"} <= set(cfg.stages) \
            and cfg.eval_sagan.split != "test":
        raise ConfigError(
            f"{source}: key 'train_classifier.people' is 'others', which trains the judge on the val people, "
            f"but eval_sagan.split is {cfg.eval_sagan.split!r}: set eval_sagan.split to test (people neither saw)")


def check_paths_exist(cfg: Any, prefix: str, source: str) -> None:
    """Keys marked ``must_exist`` (augment/config/sections.py) name paths that exist."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        dotted = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(value):
            check_paths_exist(value, dotted, source)
        elif f.metadata.get("or_pretrained") and pretrained.is_keyword(value):
            continue  # the shipped generators: checked where they are resolved (check_generators_alignment)
        elif f.metadata.get("must_exist") and value and not Path(value).exists():
            raise ConfigError(f"{source}: key '{dotted}' names a path that does not exist: {value}")


def check_datasets(cfg: PipelineConfig, source: str) -> None:
    """Dataset roots must exist unless the synth stage of this pipeline makes them."""
    for role in ("train", "eval", "sagan"):
        ds = getattr(cfg.data, role)
        if ds is None:
            continue
        key = f"data.{role}.root"
        if not ds.root:
            if ds.format != "synthfaces":
                raise ConfigError(f"{source}: key '{key}' is required for format '{ds.format}'")
            if "synth" not in cfg.stages:
                raise ConfigError(
                    f"{source}: key '{key}' is empty, which means the synth stage's output, "
                    "but 'synth' is not in 'stages'"
                )
            continue
        made_by_synth = ds.format == "synthfaces" and "synth" in cfg.stages
        if not made_by_synth and not Path(ds.root).exists():
            raise ConfigError(f"{source}: key '{key}' names a path that does not exist: {ds.root}")


def check_evaluate(cfg: PipelineConfig, source: str) -> None:
    """Protocol names and attribute names of the evaluate section."""
    def attribute(key: str, name: str) -> None:
        if name not in CELEBA_ATTRIBUTES:
            close = difflib.get_close_matches(name, CELEBA_ATTRIBUTES, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{source}: key '{key}' names '{name}', not a CelebA attribute{hint}")

    for i, p in enumerate(cfg.evaluate.protocols):
        key = f"evaluate.protocols[{i}]"
        if p.startswith("attr-shift:"):
            attribute(key, p.split(":", 1)[1])
        elif p not in ("lfw", "celeba-ident"):
            raise ConfigError(f"{source}: key '{key}' must be lfw, celeba-ident or attr-shift:<Attribute>, got {p!r}")
    for i, a in enumerate(cfg.evaluate.strata):
        attribute(f"evaluate.strata[{i}]", a)
    src = cfg.evaluate.attributes_from
    if src not in ("dataset", "classifier") and not src.endswith(".csv"):
        raise ConfigError(f"{source}: key 'evaluate.attributes_from' must be dataset, classifier or a .csv file, "
                          f"got {src!r}")
    ref = cfg.evaluate.reference
    if ref and ref != "dlib":
        raise ConfigError(f"{source}: key 'evaluate.reference' must be dlib or empty (none), got {ref!r}")
    if ref and "evaluate" in cfg.stages:
        from augment.judges.identity import missing

        if missing():
            raise ConfigError(f"{source}: key 'evaluate.reference' is {ref}, but {missing()}")


def check_generators_alignment(cfg: PipelineConfig, source: str) -> None:
    """Refuse, before anything runs, generators trained on faces aligned otherwise than this pipeline aligns."""
    gens = trained.resolve(cfg.edit.generators, "generators", f"{source}: key 'edit.generators'")
    for _, row in gens.df.iterrows():
        trained.check_alignment(gens, row, cfg.align.template, cfg.align.size,
                                f"{source}'s faces (align.template, align.size)")


def check_eval_sagan_order(cfg: PipelineConfig, source: str) -> None:
    """eval_sagan measures identity preservation with the run's baseline recognizer
    when this pipeline trains and evaluates one; it must then run after them, so
    that its figures do not depend on where it stands in ``stages``."""
    if "eval_sagan" not in cfg.stages:
        return
    at = cfg.stages.index("eval_sagan")
    later = [s for s in ("train_recognition", "evaluate") if s in cfg.stages[at:]]
    if later:
        raise ConfigError(
            f"{source}: key 'stages': 'eval_sagan' comes before {' and '.join(repr(s) for s in later)}, whose "
            "recognizer it uses to measure identity preservation; move 'eval_sagan' after 'evaluate'"
        )


def check_edit_models(cfg: PipelineConfig, source: str) -> None:
    """The edit stage's generators (and classifier) come from this pipeline or from a path, not both."""
    if "edit" not in cfg.stages:
        return
    for key, stage in (("generators", "train_sagan"), ("classifier", "train_classifier")):
        if getattr(cfg.edit, key) and stage in cfg.stages:
            raise ConfigError(
                f"{source}: key 'edit.{key}' is set, but '{stage}' is in 'stages' too; "
                f"remove one (edit.{key} reuses models trained earlier, {stage} trains new ones)"
            )
    if not cfg.edit.generators and "train_sagan" not in cfg.stages:
        raise ConfigError(
            f"{source}: the edit stage needs generators: add 'train_sagan' to 'stages' or set 'edit.generators' "
            "to a finished run (or its generators.parquet), or to 'pretrained' for the ones shipped with augment"
        )


def pin_pretrained(cfg: PipelineConfig, source: str) -> PipelineConfig:
    """``edit.generators: pretrained`` -> ``pretrained@<digest of the shipped files>``:
    the edit stage's fingerprint hashes its config section, so it reruns when the
    shipped generators change (a path's files are not hashed; these are)."""
    if not pretrained.is_keyword(cfg.edit.generators):
        return cfg
    try:
        pin = pretrained.pinned(cfg.edit.generators)
    except pretrained.PretrainedError as e:
        raise ConfigError(f"{source}: key 'edit.generators': {e}") from None
    return dataclasses.replace(cfg, edit=dataclasses.replace(cfg.edit, generators=pin))



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
    check_stage_names(cfg, source)
    check_ranges(cfg, source)
    check_evaluate(cfg, source)
    check_edit_models(cfg, source)
    cfg = pin_pretrained(cfg, source)
    check_eval_sagan_order(cfg, source)
    check_edit_filters(cfg, source)
    check_judge_people(cfg, source)
    check_diffaugment(cfg, source)
    if check_paths:
        check_paths_exist(cfg, "", source)
        check_datasets(cfg, source)
        if "edit" in cfg.stages and cfg.edit.generators:
            check_generators_alignment(cfg, source)
    return cfg
