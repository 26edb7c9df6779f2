"""Datasets on disk: ``augment datasets describe``, ``augment synth`` renders one, ``augment align`` aligns one."""

from __future__ import annotations

from pathlib import Path

import click

from augment.cli.output import echo_json, fail, friendly_errors
from augment.cli.synth_options import flag, settings_of, synth_options
from augment.config import AlignConfig

_ALIGN = AlignConfig()  # the align options' defaults are the align section's, shown in --help


@click.group()
def datasets() -> None:
    """Inspect datasets on disk."""


@datasets.command("describe")
@click.argument("fmt", metavar="{celeba|lfw|synthfaces|folder}",
                type=click.Choice(["celeba", "lfw", "synthfaces", "folder"]))
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--pairs", default=None, help="LFW pairs file (View 1 or View 2), relative to ROOT or absolute.")
@click.option("--images", default="", help="CelebA image folder name; without it, whichever exists.")
@click.option("--identities", default="", help="folder: a CSV 'path,identity' naming each photo's person.")
@click.option("--split", type=click.Choice(["train", "by_identity"]), default="train", show_default=True,
              help="folder: the split a training pipeline gives it (data.train.split).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly_errors
def describe(fmt: str, root: Path, pairs, images: str, identities: str, split: str, as_json: bool) -> None:
    """Count images, identities, attributes and pairs of a dataset at ROOT.

    
    Example:
      augment datasets describe lfw ~/data/lfw/lfw-deepfunneled
    """
    from augment.data import describe as d

    if fmt == "celeba":
        info = d.describe_celeba(root, images)
    elif fmt == "lfw":
        info = _describe_lfw(root, pairs)
    elif fmt == "folder":
        from augment.data import folder

        info = folder.describe(root, identities, split)
    else:
        from augment.data.synthfaces import describe as describe_synth

        info = describe_synth(root)
    if as_json:
        echo_json(info)
    else:
        for k, v in info.items():
            click.echo(f"{k:<18} {v}")


def _describe_lfw(root: Path, pairs):
    """``describe_lfw``, whose error for images the pairs name but ROOT lacks also says
    where they are (a folder nearby, another extension), as ``augment evaluate``'s does."""
    from augment.data import describe as d
    from augment.data.errors import DatasetError

    try:
        return d.describe_lfw(root, pairs)
    except DatasetError as e:
        if not pairs:
            raise
        from augment.data import lfw
        from recognition.matching import folder_hint, names_in

        try:
            names = names_in(lfw.read_pairs(lfw.resolve_pairs_path(root, pairs)))
        except DatasetError:
            raise e from None  # the pairs file itself is the problem: its own error says so
        hint = folder_hint(root, names, "ROOT")
        if not hint:
            raise
        raise DatasetError(f"{e}; {hint}") from None


@click.command("synth")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@synth_options  # one option per field of SynthConfig (the synth config section), named like it
@click.option("--preview", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a contact sheet PNG (identities x attribute toggles).")
@friendly_errors
def synth_cmd(out: Path, preview, **options) -> None:
    """Render SynthFaces into OUT: CelebA and LFW formats plus counterfactual ground truth.

    
    Example:
      augment synth synthfaces/ --identities 20 --preview synthfaces.png
    """
    from augment.data import synthfaces

    settings = settings_of(options)
    workers = settings.pop("workers")  # not a Settings field: the output does not depend on it
    try:
        info = synthfaces.make(out, synthfaces.Settings(**settings), workers=workers, preview=preview)
    except synthfaces.SettingError as e:
        raise click.BadParameter(e.reason, param_hint="OUT" if e.key == "out" else flag(e.key)) from None
    click.echo(
        f"{info['images']} CelebA-part and {info['lfw_images']} LFW-part images, {info['groundtruth_rows']} "
        f"ground-truth rows in {out} ({info['seconds']:.1f} s)" + (f"; preview {preview}" if preview else "")
    )


@click.command("align")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for aligned.parquet, rejects.parquet and the aligned images.")
@click.option("--mode", type=click.Choice(["auto", "mtcnn", "landmarks", "prealigned", "none"]), default="auto",
              show_default=True,
              help="auto: the rows' landmarks where present, MTCNN otherwise; prealigned: CelebA-style aligned crops "
                   "of any size; none: already aligned, crop/resize only.")
@click.option("--template", type=click.Choice(["sagan", "arcface"]), default=_ALIGN.template, show_default=True,
              help="sagan: a loose crop keeping hair and glasses, like CelebA's; arcface: the 5-point template.")
@click.option("--size", type=click.IntRange(min=16), default=_ALIGN.size, show_default=True,
              help="Output side in px.")
@click.option("--dataset", type=click.Choice(["celeba", "lfw", "synthfaces", "folder"]), default=None,
              help="Format of INPUT when it is a folder; guessed without it.")
@click.option("--images", default="", help="CelebA image folder name (img_celeba | img_align_celeba).")
@click.option("--role", type=click.Choice(["train", "eval"]), default="train", show_default=True,
              help="eval: images without a usable face are centre-cropped instead of rejected.")
@click.option("--select", type=click.Choice(["largest", "central", "probable"]), default=_ALIGN.select,
              show_default=True, help="Which face to keep when there are several.")
@click.option("--keep-all", is_flag=True, help="Keep every face that passes the filters (train role).")
@click.option("--min-prob", type=click.FloatRange(0, 1), default=_ALIGN.min_prob, show_default=True,
              help="Minimum detection probability.")
@click.option("--max-images", type=click.IntRange(min=0), default=0, show_default=True,
              help="Align only the first N images; 0 = all.")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="0 = all CPU cores.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@friendly_errors
def align_cmd(input_path: Path, out_dir: Path, mode, template, size, dataset, images, role, select, keep_all,
              min_prob, max_images, workers, device) -> None:
    """Detect and align the faces of INPUT (a dataset folder or an images manifest).

    Exits 1 when no image gave an aligned face, naming each skipped image and why.

    
    Example:
      augment align ~/data/celeba --images img_celeba --out aligned/ --template sagan --size 128
    """
    from dataclasses import replace

    from augment.align.command import align_input
    from augment.runtime import resolve_device
    from augment.runtime import workers as n_workers

    cfg = replace(AlignConfig(keep_all=keep_all), template=template, size=size, select=select, min_prob=min_prob)
    result = align_input(input_path, out_dir, cfg, mode=mode, dataset=dataset, role=role, images=images,
                         max_images=max_images, device=resolve_device(device).type, workers=n_workers(workers))
    st = result.stats
    rate = f"; detection rate {100 * st['detection_rate']:.1f}%" if "detection_rate" in st else ""
    fallback = st["centre_crop_fallback"]["count"]
    n_images = sum(st["modes"].values())
    click.echo(
        f"{n_images} image(s) -> {st['aligned_faces']} aligned face(s), "
        f"{len(result.rejects)} reject(s) {st['rejects'] or ''}{rate}"
        + (f"; {fallback} centre-cropped without a face" if fallback else "")
    )
    if len(result.aligned) == 0:
        # a script must tell this run from a good one: the manifest it asked for is empty
        _name_skipped(result.rejects, out_dir)
        fail(f"nothing aligned: none of the {n_images} image(s) of {input_path} gave a face (the reasons above, "
             f"also in {out_dir / 'rejects.parquet'}); --min-prob lowers the detector's threshold, --role eval "
             "centre-crops images without a face, --mode none takes crops as they are", 1)
    click.echo(f"wrote {out_dir / 'aligned.parquet'} and {out_dir / 'rejects.parquet'}")


SKIPPED_SHOWN = 50  # a whole dataset without a face (a wrong --mode) must not flood the terminal


def _name_skipped(rejects, out_dir: Path) -> None:
    """One line per skipped image: its path, reason and detail (the first SKIPPED_SHOWN)."""
    rows = list(rejects.df.itertuples(index=False))
    for r in rows[:SKIPPED_SHOWN]:
        detail = f" ({r.detail})" if isinstance(r.detail, str) and r.detail else ""
        click.echo(f"  skipped: {r.path}: {r.reason}{detail}")
    if len(rows) > SKIPPED_SHOWN:
        click.echo(f"  ... and {len(rows) - SKIPPED_SHOWN} more in {out_dir / 'rejects.parquet'}")
