"""The ``augment pairs`` command: attr-shift pairs of a folder or manifest of
images, written in LFW View 2's format (``recognition.protocols`` builds them).

IMAGES is any images folder or manifest the tool reads or writes: an LFW-layout
folder (``lfw-deepfunneled/``, SynthFaces' ``lfw/``), a ``read`` manifest, or an
aligned one (``align/eval_aligned.parquet``), whose crops are named by sample
id: the pairs name their original photos, from the attribute CSV's names or the
run's ``read`` manifests. CSV names are matched as ``augment evaluate`` matches
a pairs file's (``recognition.matching``).
"""

from __future__ import annotations

from pathlib import Path

from augment import manifest as mf
from augment.data.errors import DatasetError
from recognition.attribute_values import values_for
from recognition.matching import load_index, table_values
from recognition.protocols import LFW_NAME, attr_shift_pairs, write_lfw_pairs
from recognition.sources import ImageIndex


def pairs_command(images: Path, attribute: str, source: str, out: Path, seed: int = 0, folds: int = 10,
                  per_fold_max: int = 300, device: str = "auto") -> dict:
    """What ``augment pairs`` does: attr-shift pairs of IMAGES in LFW View 2's format.

    ``images``: an LFW-layout folder (``Name/Name_0001.jpg``) or an images
    manifest. ``source``: a CSV (image,attribute,value), ``dataset`` (the
    manifest's own labels), or a classifiers manifest / run folder (predicted on
    a manifest's aligned crops). Returns the counts (and ``out``)."""
    from augment.data.attributes import read_csv
    from augment.data.celeba import attribute_index
    from augment.runtime import resolve_device
    from recognition.attribute_values import classifiers_at, predict

    attribute_index(attribute)  # a clear error for a misspelt name
    images = Path(images)
    if source == "classifier":
        raise DatasetError("--attributes-from classifier: give the classifiers manifest or its run folder")
    table = read_csv(source) if source.endswith(".csv") else None
    index = load_index(images, sorted(table) if table else (), named_by=source, give="IMAGES")
    given: list[str | None] = [None] * len(index.frame)
    if table is not None:
        kind = "csv"
        values, given = table_values(index, table, attribute, named_by=source)
    elif source == "dataset":
        kind = "dataset"
        if images.is_dir():
            raise DatasetError(_no_labels_in_folder(images))
        values = values_for(index.frame, attribute, source)
    else:
        if not images.is_file():
            raise DatasetError(f"--attributes-from {source}: a classifier judges aligned crops; give IMAGES as an "
                               "aligned images manifest (align/eval_aligned.parquet)")
        kind = "predicted"
        values = predict(index.frame["file"].tolist(), attribute, classifiers_at(Path(source)),
                         resolve_device(device))
    names = photo_names(index, images, given)
    pairs, info = attr_shift_pairs(names, index.frame["identity"].to_numpy(), values, attribute, seed, folds,
                                   per_fold_max)
    write_lfw_pairs(pairs, out)
    return info | {"attribute": attribute, "attributes": kind, "pairs": len(pairs), "out": str(out)}


def photo_names(index: ImageIndex, images: Path, given: list[str | None]) -> list[str]:
    """The name each row has in the pairs file: its path where that is an LFW name,
    else the name the attribute CSV gave it, else (an aligned crop) its original
    photo's path in the run's ``read`` manifests. An error where rows that
    would be paired have none, before any pair is drawn."""
    paths = index.frame["path"].tolist()
    names = [p if LFW_NAME.match(p) else (g or p) for p, g in zip(paths, given)]
    unnamed = [i for i, n in enumerate(names) if not LFW_NAME.match(n)]
    if unnamed and images.is_file():
        originals = _read_manifest_paths(images)
        sids = index.frame["sample_id"] if "sample_id" in index.frame else None
        for i in unnamed:
            if sids is not None and sids.iat[i] in originals:
                names[i] = originals[sids.iat[i]]
        unnamed = [i for i in unnamed if not LFW_NAME.match(names[i])]
    if len(unnamed) == len(names) and names:
        raise DatasetError(
            f"{images}: its images are not named like LFW's photos (Name/Name_0001.jpg), e.g. {paths[unnamed[0]]}, "
            "and LFW's pairs format names photos so; give IMAGES as the photos' folder or their read manifest "
            "(run/read/eval_source.parquet), or, for aligned crops, the aligned manifest of a run (its read/ "
            "manifests name the photos)"
        )
    return names


def _read_manifest_paths(aligned: Path) -> dict[str, str]:
    """sample_id -> original path, from the ``read`` stage manifests of the run an
    aligned manifest belongs to (``<workdir>/align/x.parquet`` -> ``<workdir>/read/``)."""
    out: dict[str, str] = {}
    for f in sorted((aligned.resolve().parent.parent / "read").glob("*.parquet")):
        try:
            m = mf.read(f, kind="images")
        except mf.ManifestError:  # the read stage also writes pairs: not images
            continue
        out.update(zip(m.df["sample_id"], m.df["path"].astype(str)))
    return out


def _no_labels_in_folder(folder: Path) -> str:
    """``--attributes-from dataset`` on a folder: it has no labels; name a CSV nearby
    that does (SynthFaces writes ``lfw/lfw_attributes.csv`` beside its LFW part)."""
    csvs = [c for d in (folder, folder.parent) for c in sorted(d.glob("*.csv")) if _is_attribute_csv(c)]
    hint = f"; {csvs[0]} has them: --attributes-from {csvs[0]}" if csvs else \
        "; give a CSV (image,attribute,value) or a classifiers manifest"
    return f"--attributes-from dataset: {folder} is a folder of images, which carries no attribute labels{hint}"


def _is_attribute_csv(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().strip().replace(" ", "") == "image,attribute,value"
    except (OSError, UnicodeDecodeError):
        return False

