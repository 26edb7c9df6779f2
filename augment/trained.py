"""Models trained earlier, found from a path: generators and attribute classifiers.

``augment edit --generators PATH`` and the pipeline keys ``edit.generators`` /
``edit.classifier`` accept any of:

- a manifest: ``generators.parquet`` / ``classifiers.parquet``;
- a stage folder holding it (``<run>/train_sagan/``, ``<run>/train_classifier/``);
- a finished run folder (``<run>/``, its ``train_sagan`` or ``train_classifier`` stage);
- a checkpoint folder (``meta.json`` + ``weights.safetensors``), or an attribute
  folder holding ``generator/``.

Each gives a manifest of the kind the training stage writes, so the edit
stage loads models the same way whichever stage or path they come from.

A generator also says how its training images were aligned (template and crop
size, recorded by ``train_sagan``); ``alignment`` reads it and
``check_alignment`` refuses to apply a generator to faces aligned otherwise.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from augment import checkpoint as ckpt
from augment import manifest as mf
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


def alignment(generators: mf.Manifest, row) -> dict | None:
    """``{"template", "size"}`` the generator of ``row`` was trained on, or None when not recorded.

    The generator's own metadata first, then the manifest's (both written by
    train_sagan); generators from before this was recorded have neither.
    """
    meta = ckpt.read_meta(generators.root / row["path"])
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
