"""SynthFaces: procedural faces with exact counterfactual attribute edits.

Written in the CelebA and LFW formats (so the ordinary readers load it) plus
ground truth no real dataset has: for each test photo and each rendered
attribute, the same photo with the attribute toggled and a mask of the
changed pixels. It is the project's embedded default dataset.

- ``synthesize(out, Settings(...))``: write a dataset (the ``augment synth`` command);
- ``stage``: the ``synth`` pipeline stage;
- ``describe(root)``: counts for ``augment datasets describe synthfaces``;
- ``contact_sheet`` / ``write_contact_sheet``: a preview for people.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from augment import manifest as mf
from augment.config import PipelineConfig
from augment.data.synthfaces.dataset import Settings, SettingError, check_out, read_stamp, synthesize, validate
from augment.data.synthfaces.params import ATTRIBUTES
from augment.data.synthfaces.preview import contact_sheet, write_contact_sheet

__all__ = ["ATTRIBUTES", "SettingError", "Settings", "contact_sheet", "describe", "make",
           "settings_from_config", "synthesize", "validate", "write_contact_sheet"]


def settings_from_config(cfg: PipelineConfig) -> Settings:
    """The ``synth`` section of a PipelineConfig -> Settings (seed: the section's or the run's)."""
    sc = cfg.synth
    given = {f.name: getattr(sc, f.name) for f in dataclasses.fields(Settings)}
    return Settings(**{**given, "seed": cfg.seed if sc.seed is None else sc.seed})


def make(out: Path | str, settings: Settings, workers: int = 0, preview: Path | str | None = None,
         progress: bool = True) -> dict:
    """The ``augment synth`` command: check everything, render, optionally write
    a contact sheet; returns a summary. Bad settings raise SettingError."""
    import time

    from augment.runtime import workers as resolve_workers

    validate(settings)
    check_out(Path(out))
    if preview is not None:
        check_out_file(Path(preview))
    t0 = time.perf_counter()
    manifest = synthesize(out, settings, workers=resolve_workers(workers), progress=progress)
    seconds = time.perf_counter() - t0
    if preview is not None:
        write_contact_sheet(preview, settings.seed, size=settings.size, habit_strength=settings.habit_strength)
    stamp = read_stamp(Path(out)) or {}
    return {"out": str(out), "images": stamp.get("images"), "lfw_images": stamp.get("lfw_images"),
            "groundtruth_rows": len(manifest), "seconds": round(seconds, 2),
            "preview": str(preview) if preview else None}


def check_out_file(path: Path) -> None:
    """The preview's folder must be writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SettingError("preview", f"cannot create {path.parent}: {e.strerror or e}") from None
    if path.is_dir():
        raise SettingError("preview", f"{path} is a folder; give a .png file name")


def describe(root: Path | str) -> dict:
    """Counts of a SynthFaces dataset, read back through the CelebA/LFW readers."""
    from augment.data import celeba, lfw
    from augment.data.synthfaces import layout

    root = Path(root)
    data = celeba.load(root / layout.CELEBA_DIR)
    tree = lfw.load_tree(root / layout.LFW_DIR)
    pairs = lfw.match_extensions(lfw.read_pairs(root / layout.LFW_DIR / layout.LFW_PAIRS), set(tree.frame["path"]))
    pairs_file = root / layout.LFW_DIR / layout.LFW_PAIRS
    lfw.check_pairs_exist(pairs, root / layout.LFW_DIR, set(tree.frame["path"]), source=str(pairs_file))
    gt = mf.read(root / layout.GROUNDTRUTH_DIR / layout.INDEX, "groundtruth")
    f = data.frame
    stamp = read_stamp(root) or {}
    return {
        "format": "synthfaces",
        "root": str(root),
        "images": len(f),
        "identities": int(f["identity"].nunique()),
        "with_attributes": data.with_attributes,
        "with_landmarks": int(f["landmarks"].notna().sum()),
        "splits": {k: int(v) for k, v in f["split"].value_counts().sort_index().items()},
        "lfw_images": len(tree.frame),
        "lfw_identities": int(tree.frame["identity"].nunique()),
        "lfw_pairs": len(pairs),
        "lfw_folds": int(pairs["fold"].nunique()),
        "lfw_same_pairs_differing": stamp.get("same_pairs_differing"),
        "groundtruth_rows": len(gt),
        "attributes": list(ATTRIBUTES),
        "settings": stamp.get("settings"),
    }
