"""The ``augment pairs`` command: attr-shift pairs of a folder or manifest of
images, written in LFW View 2's format (``recognition.protocols`` builds them).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from augment import manifest as mf
from augment.data.errors import DatasetError
from recognition.attribute_values import kind_of, values_for
from recognition.protocols import attr_shift_pairs, write_lfw_pairs
from recognition.sources import index_from_manifest


def pairs_command(images: Path, attribute: str, source: str, out: Path, seed: int = 0, folds: int = 10,
                  per_fold_max: int = 300, device: str = "auto") -> dict:
    """What ``augment pairs`` does: attr-shift pairs of IMAGES in LFW View 2's format.

    ``images``: an LFW-layout folder (``Name/Name_0001.jpg``) or an images
    manifest (its rows' original paths are named). ``source``: a CSV
    (image,attribute,value), ``dataset`` (the manifest's own labels), or a
    classifiers manifest / run folder (predicted on a manifest's aligned crops).
    Returns the counts (and ``out``)."""
    from augment.data import lfw
    from augment.data.celeba import attribute_index
    from augment.runtime import resolve_device
    from recognition.attribute_values import classifiers_at, predict

    attribute_index(attribute)  # a clear error for a misspelt name
    images = Path(images)
    if images.is_file():
        m = mf.read(images, kind="images")
        frame = index_from_manifest(m).frame
        names = frame["path"].tolist()  # LFW layout for read's manifests; aligned crops cannot be named so
    else:
        tree = lfw.load_tree(images).frame
        frame = pd.DataFrame({"path": tree["path"], "identity": tree["identity"],
                              "file": [str(images / p) for p in tree["path"]]})
        names = frame["path"].tolist()
    if source == "classifier":
        raise DatasetError("--attributes-from classifier: give the classifiers manifest or its run folder")
    if source == "dataset" or source.endswith(".csv"):
        kind = kind_of(source)
        values = values_for(frame, attribute, source)
    else:
        if not images.is_file():
            raise DatasetError(f"--attributes-from {source}: a classifier judges aligned crops; give IMAGES as an "
                               "aligned images manifest (align/eval_aligned.parquet)")
        kind = "predicted"
        values = predict(frame["file"].tolist(), attribute, classifiers_at(Path(source)), resolve_device(device))
    pairs, info = attr_shift_pairs(names, frame["identity"].to_numpy(), values, attribute, seed, folds, per_fold_max)
    write_lfw_pairs(pairs, out)
    return info | {"attribute": attribute, "attributes": kind, "pairs": len(pairs), "out": str(out)}

