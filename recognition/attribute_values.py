"""Attribute values of evaluation images, for attr-shift pairs and strata.

Three sources, and the metrics record which one was used:

- ``dataset``: the images manifest's own labels (SynthFaces renders them;
  CelebA's ``list_attr_celeba.txt``) -> ``attributes: dataset``;
- a CSV ``image,attribute,value`` (``augment.data.attributes``) -> ``csv``;
- ``classifier``: the project's attribute classifier on the aligned crops,
  P > 0.5 -> ``predicted`` (for images nobody labelled, e.g. LFW).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from augment import manifest as mf
from augment.data.attributes import from_vectors, read_csv
from augment.data.errors import DatasetError

def kind_of(source: str) -> str:
    return {"dataset": "dataset", "classifier": "predicted"}.get(source, "csv")


def values_for(frame: pd.DataFrame, attribute: str, source: str, *, classifiers: mf.Manifest | None = None,
               device="cpu", batch_size: int = 128) -> np.ndarray:
    """(len(frame),) int8 values 1 / 0 / -1 (unknown) of ``attribute``.

    ``frame``: rows with ``path`` (as the protocol names them) and, per source,
    ``attributes`` (dataset) or ``file`` (classifier: the aligned crop on disk).
    """
    if source == "dataset":
        if "attributes" not in frame:
            raise DatasetError("attributes from 'dataset': these images carry no attribute labels; "
                               "give a CSV (image,attribute,value) or use the classifier")
        return from_vectors(frame["attributes"], attribute)
    if source == "classifier":
        if classifiers is None:
            raise DatasetError("attributes from 'classifier' need a trained attribute classifier "
                               "(the train_classifier stage, or --attributes-from CLASSIFIERS.parquet)")
        return predict(frame["file"].tolist(), attribute, classifiers, device, batch_size)
    from recognition.matching import table_values
    from recognition.sources import ImageIndex

    # The rule every reader of image names shares: a CSV naming the photos finds
    # their aligned crops (sample id) and .jpg finds .png.
    return table_values(ImageIndex(frame, "the evaluation images"), read_csv(source), attribute, named_by=source)[0]


def predict(files: Sequence[str], attribute: str, classifiers: mf.Manifest, device="cpu",
            batch_size: int = 128) -> np.ndarray:
    """The classifier's decision (P(attribute) > 0.5) on each aligned crop -> (N,) int8 1 / 0."""
    import torch

    from augment.sagan.judge import classifier_from_manifest
    from augment.sagan.data import ImageDataset

    model, _ = classifier_from_manifest(classifiers, attribute, device)
    data = ImageDataset([Path(f) for f in files], model.cfg.image_size)
    out = []
    with torch.no_grad():
        for b in range(0, len(data), batch_size):
            x = torch.stack([data[i][0] for i in range(b, min(len(data), b + batch_size))]).to(device)
            out.append(model.attribute_probability(x, attribute).cpu().numpy())
    probs = np.concatenate(out) if out else np.zeros(0, np.float32)
    return (probs > 0.5).astype(np.int8)


def classifiers_at(path: Path) -> mf.Manifest:
    """A ``classifiers`` manifest, or a run / train_classifier folder holding one."""
    for cand in (path, path / "classifiers.parquet", path / "train_classifier" / "classifiers.parquet"):
        if cand.is_file():
            return mf.read(cand, kind="classifiers")
    raise DatasetError(f"{path}: no classifiers manifest (classifiers.parquet) here")
