"""Models trained earlier, found from a path: generators and attribute classifiers.

``augment edit --generators PATH`` and the pipeline keys ``edit.generators`` /
``edit.classifier`` accept any of:

- a manifest: ``generators.parquet`` / ``classifiers.parquet``;
- a stage folder holding it (``<run>/train_sagan/``, ``<run>/train_classifier/``);
- a finished run folder (``<run>/``, its ``train_sagan`` or ``train_classifier`` stage);
- a checkpoint folder (``meta.json`` + ``weights.safetensors``), or an attribute
  folder holding ``generator/``;
- for generators, ``pretrained`` (or its pinned form ``pretrained@<digest>``):
  the generators shipped with the package (``augment.pretrained``), whose rows
  name ``<Attribute>.safetensors`` files rather than checkpoint folders.

Each gives a manifest of the kind the training stage writes, so the edit
stage loads models the same way whichever stage or path they come from
(``load_generator``: a checkpoint folder or a shipped file). ``ship`` makes the
shipped files from a finished run.

A generator also says how its training images were aligned (template and crop
size, recorded by ``train_sagan``); ``alignment`` reads it and
``check_alignment`` refuses to apply a generator to faces aligned otherwise.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from augment import checkpoint as ckpt
from augment import manifest as mf
from augment import pretrained
from augment.align.dataset import alignment_of
from augment.config import ConfigError
from augment.names import printable

STAGE_OF = {"generators": "train_sagan", "classifiers": "train_classifier"}


def _manifest_file(path: Path, kind: str) -> Path | None:
    """The ``kind`` manifest that ``path`` names or holds, or None."""
    if path.is_file():
        return path
    for candidate in (path / f"{kind}.parquet", path / STAGE_OF[kind] / f"{kind}.parquet"):
        if candidate.is_file():
            return candidate
    return None


def _checkpoint_folder(path: Path) -> Path | None:
    for candidate in (path, path / "generator", path / "classifier"):
        if (candidate / ckpt.META).is_file():
            return candidate
    return None


def _generator_row(folder: Path) -> dict:
    from augment.sagan.generators import CHECKPOINT_KIND, GENERATOR_KIND

    meta = ckpt.read_meta(folder)
    if meta.get("kind") not in (CHECKPOINT_KIND, GENERATOR_KIND):
        raise ckpt.CheckpointError(f"{folder}: a {meta.get('kind')!r} checkpoint, not a SaGAN generator")
    return {"attribute": meta["attribute"], "path": folder.name, "generator_id": ckpt.weights_id(folder),
            "step": int(meta.get("step", 0)), "preset": str(meta.get("preset", "")),
            "image_size": int(meta["image_size"])}


def _classifier_row(folder: Path) -> dict:
    meta = ckpt.read_meta(folder)
    cfg = meta.get("model_config") or {}
    if "attributes" not in cfg:
        raise ckpt.CheckpointError(f"{folder}: a {meta.get('kind')!r} checkpoint, not an attribute classifier")
    return {"path": folder.name, "classifier_id": ckpt.weights_id(folder), "attributes": list(cfg["attributes"]),
            "image_size": int(cfg["image_size"]), "step": int(meta.get("step", 0))}


def _inside_root(m: mf.Manifest) -> mf.Manifest:
    """``m``, unless a row's checkpoint path leaves the manifest's root (absolute, or
    through ``..``): a run folder received from someone else must not make us load
    files from anywhere (train_sagan and train_classifier write paths inside it)."""
    for row, p in enumerate(m.df["path"]):
        pp = PurePosixPath(p)
        if pp.is_absolute() or Path(p).is_absolute() or ".." in pp.parts:
            raise mf.ManifestError(f"{m.file}: row {row}: path {p!r} leaves the folder of the manifest "
                                   f"({m.root}); models are loaded from inside it only")
    return m


def resolve(path: str | Path, kind: str, key: str = "") -> mf.Manifest:
    """A ``generators`` or ``classifiers`` manifest for ``path`` (see the module docstring).

    ``key`` names the flag or config key in error messages.
    """
    if kind == "generators" and pretrained.is_keyword(str(path)):
        return shipped(str(path), key)
    path = Path(path)
    where = f"{key}: " if key else ""
    if not path.exists():
        raise ConfigError(f"{where}{path} does not exist")
    file = _manifest_file(path, kind)
    if file is not None:
        return _inside_root(mf.read(file, kind))
    folder = _checkpoint_folder(path)
    if folder is None:
        raise ConfigError(
            f"{where}{path} holds no {kind}.parquet (nor {STAGE_OF[kind]}/{kind}.parquet) and is not a checkpoint "
            "folder; give a finished run folder, its stage folder, the manifest, or a checkpoint folder"
        )
    row = _generator_row(folder) if kind == "generators" else _classifier_row(folder)
    return mf.Manifest(kind, mf.frame(kind, [row]), folder.parent)


def shipped(value: str = pretrained.KEYWORD, key: str = "", attribute: str | None = None) -> mf.Manifest:
    """The shipped generators as a ``generators`` manifest (root: their folder; rows
    name their ``.safetensors``). ``value``, pinned (``pretrained@<digest>``), must
    match the files shipped now. With ``attribute``, its generator alone, or a
    ConfigError naming it, what is shipped and ``--generators RUN``."""
    where = f"{key}: " if key else ""
    try:
        pretrained.pinned(value)
    except pretrained.PretrainedError as e:
        raise ConfigError(f"{where}{e}") from None
    try:
        metas = pretrained.available()
        if attribute is not None:
            weights = pretrained.path_for(attribute)
            metas = [m for m in metas if Path(m["weights"]) == weights]
    except pretrained.NotShipped as e:
        raise ConfigError(f"{where}{e}; pass --generators RUN, a finished run whose train_sagan trained one "
                          "(e.g. of pipelines/pretrain.yaml)") from None
    except pretrained.PretrainedError as e:
        raise ckpt.CheckpointError(str(e)) from None
    if not metas:
        raise ConfigError(f"{where}no generators are shipped with this installation (none in {pretrained.folder()}): "
                          f"{pretrained.TRAIN_HINT}, or give generators trained in a run of your own")
    rows = [{"attribute": m["attribute"], "path": Path(m["weights"]).name,
             # the digest its JSON records (load_generator checks the bytes against it), else the file's own
             "generator_id": (m.get("weights_sha256") or mf.file_digest(m["weights"]))[:16],
             "step": int(m.get("step", 0)),
             "preset": str(m.get("preset", "")), "image_size": int(m["image_size"]),
             "train_images": (m.get("training") or {}).get("images"),
             "train_positive": (m.get("training") or {}).get("positive")} for m in metas]
    return mf.Manifest("generators", mf.frame("generators", rows), pretrained.folder(),
                       {"extra": {"shipped": True}})


def _is_shipped(path: Path) -> bool:
    return path.suffix == pretrained.WEIGHTS_SUFFIX and path.is_file()


def generator_meta(path: Path) -> dict:
    """The metadata of a generator: a checkpoint folder's ``meta.json``, or a shipped
    ``<Attribute>.safetensors``'s ``<Attribute>.json``."""
    if not _is_shipped(path):
        return ckpt.read_meta(path)
    try:
        return pretrained.meta_of(path)
    except pretrained.PretrainedError as e:
        raise ckpt.CheckpointError(str(e)) from None


def load_generator(generators: mf.Manifest, row, device="cpu"):
    """(generator in eval mode, its metadata) of a row of ``generators``: a checkpoint
    folder (``augment.sagan.generators.load_generator``) or a shipped file."""
    from augment.sagan import generators as sg

    path, attribute = generators.root / row["path"], row["attribute"]
    if not _is_shipped(path):
        return sg.load_generator(path, attribute, device)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta = generator_meta(path)
    if meta.get("kind") != sg.GENERATOR_KIND or meta.get("attribute") != attribute:
        raise ckpt.CheckpointError(f"{path}: a {meta.get('kind')!r} of {meta.get('attribute')!r}, not the "
                                   f"{attribute} generator")
    recorded = meta.get("weights_sha256")
    if recorded and mf.file_digest(path) != recorded:  # a partial copy, or the files of two generators
        raise ckpt.CheckpointError(f"{path}: its bytes do not match the sha256 its .json records; ship it again")
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as e:
        raise ckpt.CheckpointError(f"{path}: damaged or not a safetensors file: {e}") from e
    return sg.build_generator(meta, {k[2:]: v for k, v in tensors.items() if k.startswith("G.")}, device), meta


def alignment(generators: mf.Manifest, row) -> dict | None:
    """``{"template", "size"}`` the generator of ``row`` was trained on, or None when not recorded.

    The generator's own metadata first, then the manifest's (both written by
    train_sagan); generators from before this was recorded have neither.
    """
    meta = generator_meta(generators.root / row["path"])
    found = meta.get("align") or (generators.meta.get("extra") or {}).get("align")
    if found and found.get("template") and found.get("size"):
        return {"template": str(found["template"]), "size": int(found["size"])}
    return None


def check_alignment(generators: mf.Manifest, row, template: str, size: int, what: str) -> None:
    """Refuse a generator trained on faces aligned with another template or crop size."""
    got = alignment(generators, row)
    if got is None:
        return
    if (got["template"], got["size"]) != (template, int(size)):
        raise ConfigError(
            f"generator {generators.root / row['path']} ({row['attribute']}) was trained on faces aligned with "
            f"template '{got['template']}' at {got['size']} px, but {what} are aligned with template "
            f"'{template}' at {size} px; set align.template: {got['template']} and align.size: {got['size']}"
        )


def pick(generators: mf.Manifest, attribute: str):
    """The row of ``generators`` for ``attribute``; an error naming the ones available."""
    rows = generators.df[generators.df["attribute"] == attribute]
    if rows.empty:
        have = printable(", ".join(sorted(map(str, generators.df["attribute"])))) or "none"  # one line, always
        raise ConfigError(f"{generators.file or generators.root}: no generator for {attribute!r} (have: {have})")
    return rows.iloc[0]


def edit_models(cfg, inputs: dict) -> tuple[mf.Manifest, mf.Manifest | None]:
    """The edit stage's (generators, classifiers): this pipeline's training outputs, or the
    ``edit.generators`` / ``edit.classifier`` paths; each generator checked against the
    alignment of the aligned images it will edit."""
    generators = inputs.get("generators")
    if generators is None:
        generators = resolve(cfg.edit.generators, "generators", "edit.generators")
    classifiers = inputs.get("classifiers")
    if classifiers is None and cfg.edit.classifier:
        classifiers = resolve(cfg.edit.classifier, "classifiers", "edit.classifier")
    aligned: mf.Manifest = inputs["aligned"]
    made = alignment_of(aligned)
    if made is not None:
        what = f"the images of {aligned.file or aligned.root} (align.template, align.size)"
        for _, row in generators.df.iterrows():
            check_alignment(generators, row, made["template"], made["size"], what)
    return generators, classifiers


def _people(run: Path) -> int | None:
    """People in the train split SaGAN learnt from (data.sagan's aligned images, else data.train's)."""
    for name in ("sagan_aligned", "aligned"):
        file = run / "align" / f"{name}.parquet"
        if file.is_file():
            df = mf.read(file, "images").df
            return int(df.loc[df["split"] == "train", "identity"].nunique())
    return None


def _counts(row) -> dict:
    """The row's train_images / train_positive as ints (None where unknown: NaN)."""
    import pandas as pd

    return {k: None if pd.isna(row.get(k)) else int(row[k]) for k in ("train_images", "train_positive")}


def ship(run: Path | str, dest: Path | str | None = None, attributes: tuple[str, ...] = (),
         licence: str = "") -> list[Path]:
    """Copy the generators of a finished run (train_sagan and eval_sagan done; e.g.
    ``pipelines/pretrain.yaml``) into ``dest`` (default: the shipped folder,
    ``augment.pretrained.folder()``) as ``<Attribute>.safetensors`` (float16) +
    ``<Attribute>.json`` (their metadata, and ``augment.pretrained.record``'s
    training, quality and licence blocks); ``attributes``: those only (default
    all). Returns the JSON files written. The weights go first: a copy cut short
    leaves a JSON whose ``weights_sha256`` refuses the new weights, never a mix."""
    import json

    import yaml
    from safetensors.torch import load_file, save_file

    from augment.fs import write_atomic, write_json
    from augment.names import component
    from augment.pretrained import record
    from augment.sagan.generators import GENERATOR_KIND

    run = Path(run)
    dest = Path(dest) if dest is not None else pretrained.folder()
    gens = resolve(run, "generators", "RUN")
    metrics_file = run / "eval_sagan" / "metrics.json"
    if not metrics_file.is_file():
        raise ConfigError(f"{run}: no eval_sagan/metrics.json; a shipped generator carries its measured quality: "
                          "run the pipeline's eval_sagan stage first")
    quality = json.loads(metrics_file.read_text())
    config_file = run / "config.yaml"
    config = (yaml.safe_load(config_file.read_text()) or {}) if config_file.is_file() else {}
    missing = sorted(set(attributes) - set(gens.df["attribute"]))
    if missing:
        raise ConfigError(f"{gens.file or gens.root}: no generator for {', '.join(missing)} "
                          f"(have: {', '.join(sorted(gens.df['attribute']))})")
    people = _people(run)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for _, row in gens.df.iterrows():
        attribute = component(row["attribute"], f"{gens.file}: attribute")
        if attributes and attribute not in attributes:
            continue
        src = gens.root / row["path"]
        meta = ckpt.read_meta(src)
        q = quality.get(attribute) or {}
        if meta.get("kind") != GENERATOR_KIND or q.get("generator_id") != row["generator_id"]:
            raise ConfigError(f"{src}: not a generator export that {metrics_file} measured (its generator_id "
                              f"{q.get('generator_id')!r}, this one {row['generator_id']!r}); rerun eval_sagan")
        ckpt.verify_weights(src)
        tensors = load_file(str(src / ckpt.WEIGHTS))
        half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}  # BN counters stay int
        weights = dest / f"{attribute}{pretrained.WEIGHTS_SUFFIX}"
        write_atomic(weights, lambda tmp: save_file(half, str(tmp)), suffix=pretrained.WEIGHTS_SUFFIX)
        weights.chmod(0o644)  # safetensors writes 0600; package data must be readable by every user
        log_file = src.parent / "metrics.jsonl"
        spent = record.hours(log_file.read_text()) if log_file.is_file() else {"cpu_hours": None, "wall_hours": None}
        meta.update(weights_sha256=mf.file_digest(weights), dtype="float16", licence=licence or record.LICENCE,
                    training=record.training(config, _counts(row), meta, people, spent),
                    quality=record.quality(q), source={"run": run.name, "generator_id": row["generator_id"]})
        written.append(write_json(dest / f"{attribute}{pretrained.META_SUFFIX}", meta, indent=1, newline=True))
    return written
