"""Recognition evaluation: the ``evaluate`` stage and the ``augment evaluate`` command.

Protocols (``recognition.protocols``), all scored with cosine similarity of
flip-fused, L2-normalised embeddings (``recognition.embed``):

- ``lfw``: the pairs of an LFW pairs file (View 2: 10 folds; View 1: one fold),
  accuracy by the LFW protocol, plus the ROC of all pairs pooled (the paper's
  figures): TAR at FAR 1e-3/1e-2/1e-1, AUC, EER.
- ``celeba-ident``: the paper's CelebA test protocol. For each test identity one
  seeded random image is the target and the others are queries; the ROC is that
  of all query x target scores. Its "accuracy" is rank-1 identification
  accuracy (mean and std over 10 identity-disjoint folds of the queries).
- ``attr-shift:<Attribute>``: pairs of the evaluation images built around the
  attribute (genuine pairs across its values, impostor pairs within one),
  scored like ``lfw``; the pairs file is written next to metrics.json.

Pairs protocols are also reported per stratum of ``evaluate.strata`` (genuine /
impostor pairs whose photos share the attribute's value or not). Each augmented
model is compared with the baseline of the same seed (``recognition.scoring``);
with ``:oracle`` twins, the SaGAN gain is also given as a fraction of the
oracle's. This module maps the stage's inputs to protocols and models; the
pieces live in ``protocols`` (what is scored), ``sources`` (images and models),
``scoring`` (metrics and comparisons) and ``output`` (table, plot, JSON);
``augment pairs`` is ``recognition.pairs``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from augment import manifest as mf
from augment.config import PipelineConfig
from augment.data.errors import DatasetError
from augment.stages import StageInputs, StageOutputs
from recognition.attribute_values import kind_of, values_for
from recognition.output import bundle, format_table, plot_roc, write_json
from recognition.pairs import pairs_command  # noqa: F401 (the CLI imports it from here)
from recognition.protocols import (
    ATTR_SHIFT, Protocol, attr_shift_pairs, attribute_of, ident_protocol, pairs_protocol, write_lfw_pairs,
)  # fmt: skip
from recognition.raw_images import align_for_evaluation, looks_aligned, models_alignment
from recognition.reference import annotate, crops_template, reference_model, stage_reference
from recognition.scoring import _seed, evaluate_models, reference_name, split_repeat
from recognition.matching import load_index, names_in, resolve
from recognition.sources import (
    ImageIndex, Model, index_from_manifest, load_pairs, models_from_recognizers, read_embedding_table,
    resolve_models,
)  # fmt: skip

__all__ = ["ImageIndex", "Model", "evaluate_command", "format_table", "reference_name", "run_stage",
           "split_repeat"]

log = logging.getLogger("augment.evaluate")

PROTOCOLS = ("lfw", "celeba-ident", ATTR_SHIFT + "<Attribute>")


# --------------------------------------------------------------------------- #
# The pipeline stage
# --------------------------------------------------------------------------- #


def run_stage(cfg: PipelineConfig, inputs: StageInputs, run_dir: Path) -> StageOutputs:
    """``evaluate``: every trained recognizer on each configured protocol.

    Inputs: ``recognizers`` (train_recognition), and per protocol ``eval_aligned``
    + ``pairs`` (lfw), ``eval_aligned`` with attribute values (attr-shift; from
    ``evaluate.attributes_from``, ``classifiers`` for predicted values) or
    ``aligned`` (celeba-ident: its ``evaluate.ident_split`` rows). Writes
    metrics.json, roc.png, the attr-shift pairs files and the embeddings it
    computed (``embeddings/<protocol>/<model>.parquet``, reused on a rerun).
    """
    from augment.runtime import derive_seed, resolve_device

    eval_cfg = cfg.evaluate
    models = models_from_recognizers(inputs["recognizers"])  # a declared input: the runner checked it
    device = resolve_device(cfg.device)
    strata_attrs = list(eval_cfg.strata) or [a for a in map(attribute_of, eval_cfg.protocols) if a]
    reference = stage_reference(eval_cfg.reference, cfg.align.template)
    results, curves = [], {}
    for name in eval_cfg.protocols:
        protocol, images = stage_protocol(name, inputs, eval_cfg, derive_seed(cfg.seed, "evaluate", name) % 2**32,
                                          run_dir, device)
        strata_values = None
        if protocol.is_pairs and strata_attrs and attribute_of(name) is None:
            rows = images.frame.iloc[images.rows(protocol.keys)]
            strata_values = {a: _values(rows, a, eval_cfg.attributes_from, inputs, device) for a in strata_attrs}
        cache_dir = run_dir / "embeddings" / _image_set(name)
        if reference is not None:
            reference.cache_file = cache_dir / f"reference_{reference.reference}.parquet"
        result, rocs = evaluate_models(
            protocol, models + ([reference] if reference else []), images, bootstrap=eval_cfg.bootstrap,
            seed=cfg.seed, device=device, batch_size=eval_cfg.batch_size, cache_dir=cache_dir,
            strata_values=strata_values,
        )  # fmt: skip
        if reference is not None:
            annotate(result, reference, protocol, images)
        if strata_values:
            result["strata_attributes"] = kind_of(eval_cfg.attributes_from)
        log.info("\n%s", format_table(result))
        results.append(result)
        curves[name] = rocs
    plot_roc(curves, run_dir / "roc.png")
    return {"recognition_metrics": write_json(bundle(results), run_dir / "metrics.json")}


def _image_set(name: str) -> str:
    """Which images a protocol embeds: the evaluation images (lfw, attr-shift) or the
    training dataset's held-out people (celeba-ident); one embeddings cache each."""
    return "ident" if name == "celeba-ident" else "eval"


def _folder(name: str) -> str:
    return name.replace(":", "_")


def _values(rows: pd.DataFrame, attribute: str, source: str, inputs: dict, device) -> np.ndarray:
    return values_for(rows, attribute, source, classifiers=inputs.get("classifiers"), device=device)


def stage_protocol(name: str, inputs: dict, eval_cfg, seed: int, run_dir: Path | None = None,
                   device="cpu") -> tuple[Protocol, ImageIndex]:
    attribute = attribute_of(name)
    if name == "lfw" or attribute is not None:
        if "eval_aligned" not in inputs or (name == "lfw" and "pairs" not in inputs):
            raise DatasetError(
                f"evaluate: protocol '{name}' needs the aligned evaluation images"
                + (" and their pairs" if name == "lfw" else "")
                + "; configure data.eval (with a pairs file for lfw) and run read + align"
            )
        images = index_from_manifest(inputs["eval_aligned"])
        if name == "lfw":
            _explain_rejects(inputs["pairs"].df, images, inputs.get("rejects"))
            return pairs_protocol(inputs["pairs"].df), images
        return attr_shift_protocol(images, inputs["eval_aligned"], attribute, eval_cfg.attributes_from, inputs, seed,
                                   run_dir, device), images
    if name == "celeba-ident":
        if "aligned" not in inputs:
            raise DatasetError("evaluate: protocol 'celeba-ident' needs the align stage's 'aligned' images")
        images = index_from_manifest(inputs["aligned"], split=eval_cfg.ident_split)
        if len(images.frame) == 0:
            raise DatasetError(f"evaluate: no aligned images in split '{eval_cfg.ident_split}' for 'celeba-ident'")
        return ident_protocol(images.frame["path"].tolist(), images.frame["identity"].to_numpy(), seed), images
    raise DatasetError(f"evaluate: unknown protocol '{name}' (known: {', '.join(PROTOCOLS)})")


def attr_shift_protocol(images: ImageIndex, aligned: mf.Manifest, attribute: str, source: str, inputs: dict,
                        seed: int, run_dir: Path | None, device="cpu") -> Protocol:
    """attr-shift pairs of the aligned evaluation images. Pairs name the images
    by their original (source) paths when known, so the written pairs file
    reads against the dataset itself."""
    frame = images.frame
    names = _source_paths(inputs.get("eval_source"), aligned.df.reset_index(drop=True))
    values = _values(frame, attribute, source, inputs, device)
    pairs, info = attr_shift_pairs(names, frame["identity"].to_numpy(), values, attribute, seed)
    info["attributes"] = kind_of(source)
    if run_dir is not None:
        try:
            info["pairs_file"] = write_lfw_pairs(pairs, Path(run_dir) / f"pairs_{_folder(ATTR_SHIFT + attribute)}.txt").name
        except DatasetError as e:  # a dataset not in LFW's layout: the pairs are still scored
            log.info("attr-shift:%s: no pairs file written (%s)", attribute, e)
    log.info("attr-shift:%s: %d pairs in %d folds from %d people (%d with both values); attributes: %s", attribute,
             len(pairs), info["folds"], info["people"], info["people_with_both_values"], info["attributes"])
    by_name = dict(zip(names, frame["path"]))
    pairs = pairs.assign(path_a=pairs["path_a"].map(by_name), path_b=pairs["path_b"].map(by_name))
    return pairs_protocol(pairs, ATTR_SHIFT + attribute, info)


def _source_paths(source: mf.Manifest | None, aligned: pd.DataFrame) -> list[str]:
    """Each aligned row's original path (relative to the dataset root), else its own path."""
    if source is None:
        return aligned["path"].tolist()
    by_sid = dict(zip(source.df["sample_id"], source.df["path"]))
    return [by_sid.get(s, p) for s, p in zip(aligned["sample_id"], aligned["path"])]



def _explain_rejects(pairs: pd.DataFrame, images: ImageIndex, rejects: mf.Manifest | None) -> None:
    """Name the pairs' images that the align stage rejected, with its reasons (never skip them)."""
    keys = sorted(set(pairs["path_a"]) | set(pairs["path_b"]))
    missing = [k for k in keys if images.lookup(k) is None]
    if not missing:
        return
    by_sid = {}
    if rejects is not None and len(rejects):
        by_sid = dict(zip(rejects.df["sample_id"], rejects.df["reason"]))
    sources = images._sources or ["lfw"]

    def reason(key: str) -> str:
        found = [by_sid[sid] for sid in (mf.sample_id(src, key) for src in sources) if sid in by_sid]
        return found[0] if found else "not aligned"

    shown = ", ".join(f"{k} ({reason(k)})" for k in missing[:5])
    raise DatasetError(
        f"{len(missing)} image(s) named by the pairs have no aligned face: {shown}"
        f"{' ...' if len(missing) > 5 else ''}. Every pair must be scored: lower align.min_prob / "
        "align.min_face, or check those images"
    )


def cli_protocol(
    protocol: str, pairs: Path | None, images: ImageIndex | None, models: Sequence[Model], split: str | None,
    seed: int, reference: bool = False,
) -> tuple[Protocol, ImageIndex | None]:
    """The protocol of ``augment evaluate``: lfw from --pairs; celeba-ident from
    --images or the first embeddings file. ``split`` keeps only the images of that
    split (a manifest's ``split`` column) for either protocol; None: every image
    for lfw, the ``test`` rows (when there are any) for celeba-ident. Where the
    images are embedded (a checkpoint model, a ``reference``), every image the
    pairs name is found in them first (``recognition.matching``), or one error
    says which are missing and where they are."""
    if split is not None:
        images = _split_rows(images, split)
    if protocol == "lfw":
        if pairs is None:
            raise DatasetError("--protocol lfw needs --pairs (an LFW pairs file or a pairs manifest)")
        frame = load_pairs(pairs)
        if images is not None and (reference or any(m.checkpoint is not None for m in models)):
            # checked here, named as written: each model finds them its own way (crops, an embeddings table)
            resolve(images, names_in(frame), named_by=str(pairs))
        return pairs_protocol(frame), images
    if images is not None:
        frame = images.frame
        if split is None and "split" in frame and (frame["split"] == "test").any():
            frame = frame[frame["split"] == "test"]
        return ident_protocol(frame["path"].tolist(), frame["identity"].to_numpy(), seed), images
    table = next((m.table for m in models if m.table is not None), None)
    if table is None:
        raise DatasetError("--protocol celeba-ident needs --images (aligned test images) or an embeddings file")
    frame, _ = read_embedding_table(table)
    return ident_protocol(frame["path"].tolist(), frame["identity"].to_numpy(), seed), images


def _split_rows(images: ImageIndex | None, split: str) -> ImageIndex:
    """The index restricted to one split; an error where the images carry no splits."""
    if images is None or "split" not in images.frame:
        raise DatasetError(f"--split {split}: needs --images as an images manifest (its 'split' column); "
                           "a folder of images has no splits")
    frame = images.frame[images.frame["split"] == split]
    if frame.empty:
        have = sorted(images.frame["split"].dropna().unique())
        raise DatasetError(f"--split {split}: {images.where} has no images in that split (it has {have})")
    return ImageIndex(frame, images.where, images.root)


def evaluate_command(
    baseline: str,
    augmented: Iterable[str],
    pairs: Path | None,
    images: Path | None,
    protocol: str = "lfw",
    out: Path = Path("runs/evaluate"),
    bootstrap: int = 1000,
    seed: int = 0,
    split: str | None = None,
    device: str = "auto",
    batch_size: int = 128,
    align: str = "auto",
    reference: str | None = None,
    select: str = "central",
) -> dict:
    """What ``augment evaluate`` does; returns the metrics it wrote to ``out``.

    ``align`` (``--images`` a folder): ``auto`` aligns the photos when they are
    not crops of the models' training size, ``always`` aligns them, ``never``
    takes them as they are (``recognition.raw_images``); ``select``: which face
    of a photo with several. ``reference`` (``dlib``): a pretrained recognizer
    scored beside the models on the same crops (``recognition.reference``), its
    descriptors cached in ``out/embeddings/``."""
    from augment.runtime import resolve_device

    models = resolve_models(baseline, "baseline")
    for spec in augmented:
        models += resolve_models(spec, "augmented")
    out = Path(out)
    dev = resolve_device(device)
    index, aligned_note, alignment = evaluation_images(images, models, pairs if protocol == "lfw" else None, align,
                                                       out, dev, bool(reference), select)
    proto, index = cli_protocol(protocol, pairs, index, models, split, _seed(seed, protocol), bool(reference))
    ref = None
    if reference:
        ref = reference_model(reference, crops_template(images, alignment),
                              out / "embeddings" / f"reference_{reference}.parquet")
    result, rocs = evaluate_models(proto, models + ([ref] if ref else []), index, bootstrap=bootstrap, seed=seed,
                                   device=dev, batch_size=batch_size)  # fmt: skip
    if ref is not None:
        annotate(result, ref, proto, index)
    if aligned_note is not None:
        result["images_aligned"] = aligned_note
    result["roc_png"] = str(plot_roc({protocol: rocs}, out / "roc.png"))
    write_json(result, out / "metrics.json")
    return result


def evaluation_images(images: Path | None, models: Sequence[Model], pairs: Path | None, align: str, out: Path,
                      device, reference: bool = False, select: str = "central"):
    """(the image index to embed, what was aligned here (None: the images were used as given),
    the models' alignment (None: unknown)). With a ``reference`` and no checkpoint at all
    (embedding tables only), raw photos are aligned as ``reference.DEFAULT_ALIGNMENT``."""
    from augment.runtime import workers
    from recognition.reference import DEFAULT_ALIGNMENT

    frame = load_pairs(pairs) if pairs is not None else None
    index = load_index(images, names_in(frame), named_by=str(pairs))
    checkpoints = [m for m in models if m.checkpoint is not None]
    if index is None or not Path(images).is_dir() or align == "never":
        return index, None, models_alignment(checkpoints) if reference else None
    alignment = models_alignment(checkpoints)
    if alignment is None and reference and not checkpoints:
        alignment = DEFAULT_ALIGNMENT
    if alignment is None:
        if align == "always":  # a usage error (exit 2): the option cannot be honoured
            from augment.config import ConfigError

            raise ConfigError("--align always: the models' checkpoints record no alignment (trained before it "
                               "was recorded, outside a run folder): align the photos with `augment align` "
                               "and pass its aligned.parquet as --images")
        log.info("--images %s: the models record no alignment; the images are used as they are", images)
        return index, None, None
    aligned_already, sizes = looks_aligned(index.frame["file"].tolist(), alignment.size)
    if aligned_already and align == "auto":
        return index, None, alignment
    keys = resolve(index, names_in(frame), named_by=str(pairs))  # the folder's files the pairs name
    result = align_for_evaluation(Path(images), keys, alignment, out / "aligned", device=device.type,
                                  workers=workers(0), select=select)
    fallback = result.stats.get("centre_crop_fallback", {}).get("count", 0)
    note = {
        "folder": str(images), "sizes_seen": sizes, "alignment": alignment.describe(),
        "alignment_from": alignment.where, "select": select, "images": len(result.aligned) + len(result.rejects),
        "aligned": len(result.aligned) - fallback, "centre_cropped": fallback, "rejects": len(result.rejects),
        "out": str(out / "aligned" / "aligned.parquet"),
    }
    log.info("--images %s: raw photos (%s), not %s: aligned them with MTCNN", images, sizes, alignment.describe())
    return index_from_manifest(result.aligned), note, alignment
