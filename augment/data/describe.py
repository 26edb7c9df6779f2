"""``augment datasets describe``: counts that let a user check a dataset before a long run."""

from __future__ import annotations

from pathlib import Path

from augment.data import celeba, lfw


def describe_celeba(root: Path | str, images: str = "") -> dict:
    data = celeba.load(root, images)
    f = data.frame
    return {
        "format": "celeba",
        "root": str(Path(root)),
        "image_dir": data.image_dir.name,
        "images": len(f),
        "identities": int(f["identity"].nunique()),
        "with_attributes": data.with_attributes,
        "with_landmarks": int(f["landmarks"].notna().sum()),
        "splits": {k: int(v) for k, v in f["split"].value_counts().sort_index().items()},
        "partition_file": data.has_partition,
        "missing_images": len(data.missing_images),
        "unlabelled_images": data.unlabelled_images,
    }


def describe_lfw(root: Path | str, pairs: str | None = None) -> dict:
    tree = lfw.load_tree(root)
    out = {
        "format": "lfw",
        "root": str(Path(root)),
        "images": len(tree.frame),
        "identities": int(tree.frame["identity"].nunique()),
    }
    if pairs:
        pf = lfw.match_extensions(lfw.read_pairs(lfw.resolve_pairs_path(Path(root), pairs)), set(tree.frame["path"]))
        lfw.check_pairs_exist(pf, Path(root), set(tree.frame["path"]), source=str(pairs))
        out.update(
            pairs=len(pf),
            same=int(pf["same"].sum()),
            different=int((~pf["same"]).sum()),
            folds=int(pf["fold"].nunique()),
        )
    return out
