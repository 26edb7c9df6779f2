"""Recognizers: ``augment evaluate`` compares them, ``augment pairs`` writes attr-shift pairs to compare them on."""

from __future__ import annotations

from pathlib import Path

import click

from augment.cli.output import echo_json, friendly_errors


@click.command("evaluate")
@click.option("--baseline", required=True, metavar="[NAME=]M",
              help="The baseline: an embeddings Parquet (path, embedding), a recognizer checkpoint folder, "
                   "or a run folder (its model named 'baseline').")
@click.option("--augmented", multiple=True, metavar="[NAME=]M",
              help="A model to compare with the baseline (repeatable); a run folder gives all its augmented models.")
@click.option("--pairs", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="LFW pairs file (View 1 or View 2) or a pairs manifest; paths relative to --images, matched by "
                   "stem (pairs naming .jpg find .png).")
@click.option("--images", type=click.Path(exists=True, path_type=Path), default=None,
              help="The images: an images manifest (e.g. align/eval_aligned.parquet) or an <identity>/<image> "
                   "folder of aligned faces or of raw photos (see --align).")
@click.option("--align", "align", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="--images a folder: auto aligns its photos with MTCNN (into OUT/aligned) unless they are "
                   "crops of the checkpoints' training size; always / never force it.")
@click.option("--select", type=click.Choice(["central", "largest", "probable"]), default="central",
              show_default=True,
              help="Aligning raw photos: the face kept where there are several (central: LFW's convention, the "
                   "labelled person is in the middle; the largest is often someone behind them).")
@click.option("--reference", type=click.Choice(["dlib"]), default=None,
              help="Score a pretrained recognizer beside the models, on the same crops, pairs and protocol, as its "
                   "own row: dlib (the 'judges' extra). Its descriptors are cached in OUT/embeddings/.")
@click.option("--protocol", type=click.Choice(["lfw", "celeba-ident"]), default="lfw", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/evaluate"),
              show_default=True, help="Folder for metrics.json and roc.png.")
@click.option("--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Paired bootstrap resamples for the deltas' confidence intervals (0 = none).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--split", default=None,
              help="Only the --images manifest's rows of this split (train, val, test); without it, every image "
                   "for lfw, the test rows for celeba-ident.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json instead of the table.")
@friendly_errors
def evaluate_cmd(baseline, augmented, pairs, images, align, select, reference, protocol, out, bootstrap, seed, split,
                 device, batch_size, as_json) -> None:
    """Compare a baseline recognizer with augmented ones on LFW pairs or the CelebA protocol.

    Prints accuracy, TAR at FAR 1e-3/1e-2/1e-1, AUC, EER, each delta to the
    baseline with its significance, and the paper's values where they apply;
    writes OUT/metrics.json and OUT/roc.png. With --reference dlib, a pretrained
    recognizer's row shows how far the models are from a strong one.

    
    Example:
      augment evaluate --baseline runs/demo --pairs ~/lfw/pairs.txt --images ~/lfw/lfw-deepfunneled \\
        --reference dlib --out eval/
    """
    if reference:
        from augment.config import ConfigError
        from recognition.reference import problem

        if problem(reference):  # the extra is missing: a usage error (exit 2), before any work
            raise ConfigError(f"--reference {reference}: {problem(reference)}")
    from recognition.evaluate import evaluate_command, format_table

    result = evaluate_command(baseline, augmented, pairs, images, protocol, out, bootstrap, seed, split, device,
                              batch_size, align, reference, select)
    if as_json:
        echo_json(result)
    else:
        note = result.get("images_aligned")
        if note:
            whose = "for the reference" if note["alignment_from"].startswith("--reference") else \
                "like the models' training faces"
            click.echo(
                f"--images {note['folder']}: raw photos ({note['sizes_seen']}), not {note['alignment']} {whose}: "
                f"aligned {note['images']} with MTCNN ({note['select']} face) into "
                f"{note['out']} "
                f"({note['aligned']} faces found, {note['centre_cropped']} centre-cropped without a face, "
                f"{note['rejects']} rejected)"
            )
        click.echo(format_table(result))
        click.echo(f"wrote {out / 'metrics.json'} and {out / 'roc.png'}")


@click.command("pairs")
@click.argument("images", type=click.Path(exists=True, path_type=Path))
@click.option("--attribute", required=True, help="The CelebA attribute the pairs are built around, e.g. Eyeglasses.")
@click.option("--attributes-from", "source", required=True, metavar="SOURCE",
              help="A CSV (image,attribute,value), 'dataset' (IMAGES is a manifest with labels), or a "
                   "classifiers manifest / run folder (IMAGES is an aligned manifest; values predicted).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The pairs file to write (LFW View 2 format).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--folds", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--max-per-fold", type=click.IntRange(min=1), default=300, show_default=True,
              help="At most this many genuine (and impostor) pairs per fold.")
@friendly_errors
def pairs_cmd(images, attribute, source, out, seed, folds, max_per_fold) -> None:
    """Write attr-shift pairs of IMAGES: genuine pairs are one person with different values
    of ATTRIBUTE, impostor pairs two people with the same value, in person-disjoint folds.

    IMAGES: an LFW-layout folder (Name/Name_0001.jpg; SynthFaces' lfw/) or an
    images manifest, an aligned one included (the pairs then name each crop's
    photo, as the CSV or the run's read/ manifests name it). A CSV's names are
    matched as evaluate matches a pairs file's: .jpg finds the .png of the same stem.

    
    Example:
      augment pairs ~/lfw/lfw-deepfunneled --attribute Eyeglasses --attributes-from eyeglasses.csv \\
        --out pairs_eyeglasses.txt
    """
    from recognition.evaluate import pairs_command

    info = pairs_command(images, attribute, source, out, seed, folds, max_per_fold)
    click.echo(f"{info['pairs']} pairs ({info['folds']} folds x {info['pairs_per_fold']} genuine + "
               f"{info['pairs_per_fold']} impostor) from {info['people']} people, "
               f"{info['people_with_both_values']} of them with and without {attribute} "
               f"(attributes: {info['attributes']}); wrote {out}")
