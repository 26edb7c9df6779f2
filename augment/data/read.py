"""The ``read`` stage: datasets on disk -> source manifests (+ the pairs manifest).

Outputs:
- ``source``: the training dataset, one row per image (image manifest v1), its
  root the dataset root;
- ``sagan_source``: the dataset of the classifier and the generators, when
  ``data.sagan`` is configured (else they learn from ``source``);
- ``eval_source`` and ``pairs``: the evaluation dataset and its pairs, when
  ``data.eval`` is configured.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from augment import manifest as mf
from augment.config import DatasetConfig
from augment.data import celeba, folder, lfw
from augment.data.errors import DatasetError

log = logging.getLogger("augment.read")

# SynthFaces keeps each part in the format of the real dataset it stands for.
SYNTH_CELEBA = "celeba"
SYNTH_LFW = "lfw"
SYNTH_LFW_PAIRS = "pairs.txt"
SYNTH_LFW_LANDMARKS = "lfw_landmarks.txt"  # not an official LFW file; CelebA's landmark format
SYNTH_LFW_ATTRIBUTES = "lfw_attributes.csv"  # image,attribute,value of the rendered attributes


def _images_frame(rows: pd.DataFrame, source: str) -> pd.DataFrame:
    """Fill a reader's frame out to the image-manifest columns."""
    n = len(rows)
    data = {
        "sample_id": [mf.sample_id(source, p) for p in rows["path"]],
        "path": rows["path"].tolist(),
        "identity": rows["identity"].astype(np.int64).tolist(),
        "identity_name": rows["identity_name"].tolist() if "identity_name" in rows else [str(i) for i in rows["identity"]],
        "split": rows["split"].tolist() if "split" in rows else ["test"] * n,
        "source": [source] * n,
        "attributes": rows["attributes"].tolist() if "attributes" in rows else [None] * n,
        "landmarks": rows["landmarks"].tolist() if "landmarks" in rows else [None] * n,
    }
    return mf.frame("images", [dict(zip(data, vals)) for vals in zip(*data.values())])


def _limit(frame: pd.DataFrame, max_images: int) -> pd.DataFrame:
    return frame.iloc[:max_images].reset_index(drop=True) if max_images > 0 else frame


def load_celeba_like(root: Path, images: str, source: str, max_images: int = 0, split: str = "auto"
                     ) -> mf.Manifest:
    """A CelebA-format folder -> images manifest. ``split: by_identity`` replaces the
    partition file by an identity-disjoint 80/10/10 split of the kept rows,
    ``train`` puts every row in train; ``auto`` keeps the partition file. Real
    CelebA's aligned landmarks are declared in the 178x218 frame (``landmark_frame``
    in the manifest's extra), so that a resized copy's are scaled to it."""
    data = celeba.load(root, images)
    if data.missing_images:
        log.warning("%s: %d image(s) named in %s are not on disk (first: %s)", root, len(data.missing_images),
                    celeba.IDENTITY_FILE, ", ".join(data.missing_images[:3]))
    if data.unlabelled_images:
        # Not an error (a partial identity file is common), but never a silent drop.
        log.warning("%s: %d image(s) in %s have no row in %s and are left out", root, data.unlabelled_images,
                    data.image_dir.name, celeba.IDENTITY_FILE)
    n_lm = int(data.frame["landmarks"].notna().sum())
    if data.has_landmarks and n_lm < len(data.frame):
        log.info("%s: %d of %d image(s) have a landmark row", root, n_lm, len(data.frame))
    frame = _limit(data.frame, max_images)
    if split == "by_identity":
        frame = frame.assign(split=celeba.split_by_identity(frame["identity"].to_numpy()))
        log.info("%s: identity-disjoint split instead of %s: %s", root,
                 celeba.PARTITION_FILE if data.has_partition else "a partition file", split_counts(frame))
    elif split == "train":
        frame = frame.assign(split="train")
    elif data.has_partition and frame["split"].nunique() == 1 and len(frame) > 1:
        log.warning("%s: %s puts all %d image(s) in '%s'; data.<role>.split: by_identity makes an "
                    "identity-disjoint train/val/test split", root, celeba.PARTITION_FILE, len(frame),
                    frame["split"].iloc[0])
    frame_px = celeba.LANDMARK_FRAMES.get(data.image_dir.name) if source == "celeba" else None
    extra = {"landmark_frame": list(frame_px)} if frame_px and n_lm else {}
    return mf.Manifest("images", _images_frame(frame, source), root, {"extra": extra} if extra else {})


def split_counts(frame: pd.DataFrame) -> str:
    counts = frame["split"].value_counts()
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in ("train", "val", "test"))


def load_lfw_like(
    root: Path, pairs: str, source: str, landmarks: Path | None = None, max_images: int = 0
) -> tuple[mf.Manifest, mf.Manifest | None]:
    tree = lfw.load_tree(root)
    frame = _limit(tree.frame, max_images)
    if landmarks is not None and landmarks.is_file():
        lms = celeba.read_landmarks(landmarks)
        frame = frame.assign(landmarks=[lms.get(p) for p in frame["path"]])
    images = mf.Manifest("images", _images_frame(frame.assign(split="test"), source), root)
    return images, _pairs(root, pairs, tree.frame, frame, max_images)


def _pairs(root: Path, pairs: str, everything: pd.DataFrame, kept: pd.DataFrame, max_images: int
           ) -> mf.Manifest | None:
    """The pairs manifest of an ``<identity>/<image>`` tree (None without a pairs file);
    with ``max_images``, only the pairs whose two images were kept."""
    if not pairs:
        return None
    ppath = lfw.resolve_pairs_path(root, pairs)
    available = set(kept["path"])
    pf = lfw.match_extensions(lfw.read_pairs(ppath), set(everything["path"]))
    if max_images > 0:
        keep = pf["path_a"].isin(available) & pf["path_b"].isin(available)
        log.info("max_images=%d keeps %d of %d pairs", max_images, int(keep.sum()), len(pf))
        pf = pf[keep].reset_index(drop=True)
    lfw.check_pairs_exist(pf, root, available, source=str(ppath))
    return mf.Manifest("pairs", pf, root)


def load_folder(ds: DatasetConfig, root: Path, role: str) -> tuple[mf.Manifest, mf.Manifest | None]:
    """A photo folder (tree, flat, or flat + identities CSV; see augment.data.folder).

    Training roles (train, sagan): the split is ``data.<role>.split`` (``auto`` =
    every image in train); evaluation role: every image in ``test``.
    """
    f = folder.load(root, ds.identities)
    frame = _limit(f.frame, ds.max_images)
    if role != "eval":
        split = "train" if ds.split == "auto" else ds.split
        frame = frame.assign(split=folder.splits(frame["identity"].to_numpy(), split))
    else:
        frame = frame.assign(split="test")
    images = mf.Manifest("images", _images_frame(frame, "folder"), root)
    return images, _pairs(root, ds.pairs, f.frame, frame, ds.max_images)


def load_dataset(ds: DatasetConfig, role: str, synth_root: Path | None) -> tuple[mf.Manifest, mf.Manifest | None]:
    """One configured dataset -> (images manifest, pairs manifest or None)."""
    root = Path(ds.root) if ds.root else synth_root
    if root is None:
        raise DatasetError(f"data.{role}.root is empty and no synth stage output is available")
    if ds.format == "celeba":
        return load_celeba_like(root, ds.images, "celeba", ds.max_images, ds.split), None
    if ds.format == "folder":
        return load_folder(ds, root, role)
    if ds.format == "lfw":
        images, pairs = load_lfw_like(root, ds.pairs, ds.format, max_images=ds.max_images)
        if role != "eval":  # LFW has no partition file: identity-disjoint 80/10/10 unless configured
            split = "by_identity" if ds.split == "auto" else ds.split
            images.df["split"] = folder.splits(images.df["identity"].to_numpy(), split)
        return images, pairs
    if ds.format == "synthfaces":
        if role != "eval":
            return load_celeba_like(root / SYNTH_CELEBA, "", "synthfaces", ds.max_images, ds.split), None
        lroot = root / SYNTH_LFW
        images, pairs = load_lfw_like(
            lroot, ds.pairs or str(lroot / SYNTH_LFW_PAIRS), "synthfaces",
            landmarks=lroot / SYNTH_LFW_LANDMARKS, max_images=ds.max_images,
        )
        if (lroot / SYNTH_LFW_ATTRIBUTES).is_file():  # datasets rendered before it existed have none
            from augment.data.attributes import AttributeTable

            table = AttributeTable.from_csv(lroot / SYNTH_LFW_ATTRIBUTES)
            images.df["attributes"] = table.vectors(images.df["path"])
        return images, pairs
    raise DatasetError(f"data.{role}.format: unknown format {ds.format!r}")  # pragma: no cover
