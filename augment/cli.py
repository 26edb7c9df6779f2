"""The ``augment`` command line: thin commands that parse, load a config, call one function.

Exit status: 0 success, 1 a data or stage error (the message names the file),
2 a usage or configuration error (the message names the flag or dotted key).
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from augment import __version__
from augment.config import ConfigError, SynthConfig

PIPELINE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _fail(message: str, code: int) -> None:
    from augment.names import printable

    # A message quotes names and paths from files received from others: with
    # their control characters escaped it stays one line and cannot drive the terminal.
    click.echo(f"Error: {printable(message)}", err=True)
    sys.exit(code)


def _file_name(ctx, param, value):
    """Click callback of an option that becomes part of a file name (``export --name``,
    ``edit --attribute``): one safe path component (``augment.names``), else a usage
    error naming the flag (exit 2) before anything is written."""
    from augment.names import problem, shown

    why = problem(value) if value else None
    if why is not None:
        raise click.BadParameter(f"{shown(value)} cannot be a file name: {why}")
    return value


def friendly_errors(func):
    """Turn the project's own exceptions into one clear line and an exit status."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from augment.checkpoint import CheckpointError
        from augment.data.errors import DatasetError
        from augment.lock import WorkdirBusy
        from augment.manifest import ManifestError
        from augment.pipeline import PipelineError

        try:
            return func(*args, **kwargs)
        except (ConfigError, WorkdirBusy) as e:
            _fail(str(e), 2)
        except (DatasetError, ManifestError, PipelineError, CheckpointError) as e:
            _fail(str(e), 1)
        except BrokenPipeError:
            raise  # the reader went away (``augment stages | head``): click exits quietly
        except OSError as e:  # full disk, no permission: the environment, not a bug; work done so far is kept
            _fail(f"I/O error: {e}", 1)
        except KeyboardInterrupt:
            _fail("interrupted; finished stages are kept and a rerun resumes the interrupted one", 130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="augment")
def cli() -> None:
    """SaGAN face-attribute augmentation for face-recognition training sets."""



@cli.command()
@click.argument("pipeline", type=PIPELINE)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. --set seed=3.")
@click.option("--stages", "only", default="", metavar="A,B", help="Run only these stages (their inputs must be done).")
@click.option("--until", default=None, metavar="STAGE", help="Run the stages up to and including STAGE.")
@click.option("--force", multiple=True, metavar="STAGE", help="Rerun STAGE even if it is up to date.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Overrides the config's device.")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes (torchrun): training stages use DistributedDataParallel, edit shards its rows.")
@friendly_errors
def run(pipeline: Path, sets, only: str, until, force, device, nproc: int) -> None:
    """Run the stages of a PIPELINE YAML in order, skipping those already up to date."""
    import os
    import time

    from augment.config import load_config
    from augment.pipeline import run_pipeline, with_device

    t0 = time.perf_counter()
    cfg = with_device(load_config(pipeline, sets), device)
    stages = [s.strip() for s in only.split(",") if s.strip()]
    _check_stage_flags(cfg, stages, until, force)
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from augment.lock import acquire

        acquire(cfg.workdir, inheritable=True)  # kept by torchrun across the exec; its workers run under it
        _relaunch_with_torchrun(nproc)
    result = run_pipeline(cfg, only=stages, until=until, force=force)
    from augment import distributed

    if not distributed.is_main():
        return
    ran = sum(v == "ran" for v in result.values())
    click.echo(
        f"{cfg.name}: {ran} stage(s) ran, {len(result) - ran} up to date; "
        f"total {time.perf_counter() - t0:.1f} s; outputs in {cfg.workdir}"
    )


def _check_stage_flags(cfg, only, until, force) -> None:
    """--stages, --until and --force name stages of this pipeline (a usage error, exit 2, otherwise)."""
    import difflib

    known = list(cfg.stages)
    for flag, names in (("--stages", only), ("--until", [until] if until else []), ("--force", force)):
        for n in names:
            if n not in known:
                close = difflib.get_close_matches(n, known, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise click.BadParameter(f"'{n}' is not one of this pipeline's stages ({', '.join(known)}){hint}",
                                         param_hint=flag)


def _relaunch_with_torchrun(nproc: int) -> None:
    """Replace this process by ``torchrun --nproc_per_node N augment run ...`` (same arguments)."""
    import os

    args = []
    skip = False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        args.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "augment.cli", *args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, cmd)


@cli.command()
@click.argument("pipeline", type=PIPELINE)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE")
@friendly_errors
def stages(pipeline: Path, sets) -> None:
    """Print each stage's state: done, stale (config or inputs changed), interrupted or not run."""
    from augment.config import load_config
    from augment.pipeline import states
    from augment.stages import STAGES

    cfg = load_config(pipeline, sets, check_paths=False)
    for name, state, marker in states(cfg):
        extra = ""
        if marker and state == "done":
            extra = f"  ({marker.get('seconds', 0):.1f} s)"
        click.echo(f"{name:<20} {state:<11}{extra}  {STAGES[name].help}")


@cli.group()
def datasets() -> None:
    """Inspect datasets on disk."""


@datasets.command("describe")
@click.argument("fmt", metavar="{celeba|lfw|synthfaces|folder}",
                type=click.Choice(["celeba", "lfw", "synthfaces", "folder"]))
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--pairs", default=None, help="LFW pairs file (View 1 or View 2), relative to ROOT or absolute.")
@click.option("--images", default="", help="CelebA image folder name (default: whichever exists).")
@click.option("--identities", default="", help="folder: a CSV 'path,identity' naming each photo's person.")
@click.option("--split", type=click.Choice(["train", "by_identity"]), default="train", show_default=True,
              help="folder: the split a training pipeline gives it (data.train.split).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly_errors
def describe(fmt: str, root: Path, pairs, images: str, identities: str, split: str, as_json: bool) -> None:
    """Count images, identities, attributes and pairs of a dataset at ROOT."""
    from augment.data import describe as d

    if fmt == "celeba":
        info = d.describe_celeba(root, images)
    elif fmt == "lfw":
        info = d.describe_lfw(root, pairs)
    elif fmt == "folder":
        from augment.data import folder

        info = folder.describe(root, identities, split)
    else:
        from augment.data.synthfaces import describe as describe_synth

        info = describe_synth(root)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            click.echo(f"{k:<18} {v}")


_SYNTH = SynthConfig()


def _attribute_values(items, flag: str) -> dict[str, float]:
    """``("Eyeglasses=1.0", ...)`` -> ``{"Eyeglasses": 1.0}``; a usage error names the flag."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise click.BadParameter(f"expected ATTRIBUTE=P, e.g. Eyeglasses=1.0; got {item!r}", param_hint=flag)
    return out


@cli.command("synth")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
# One option per synthfaces.Settings field (the synth config section), named like
# it; defaults from SynthConfig (tests/test_synthfaces.py checks both).
@click.option("--identities", type=int, default=_SYNTH.identities, show_default=True, help="People in the CelebA part.")
@click.option("--images-per-identity", type=int, default=_SYNTH.images_per_identity, show_default=True)
@click.option("--lfw-identities", type=int, default=_SYNTH.lfw_identities, show_default=True,
              help="People in the LFW part (disjoint from the CelebA part).")
@click.option("--lfw-images-per-identity", type=int, default=_SYNTH.lfw_images_per_identity, show_default=True)
@click.option("--size", type=int, default=_SYNTH.size, show_default=True, help="Side of the CelebA-part images, px.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--habit-strength", type=float, default=_SYNTH.habit_strength, show_default=True,
              help="P(a photo shows the person's habitual value of an attribute).")
@click.option("--lfw-habit-strength", type=float, default=_SYNTH.lfw_habit_strength,
              help="The same for the LFW-part people; default: --habit-strength.")
@click.option("--habit", "habit_by_attribute", multiple=True, metavar="ATTRIBUTE=P",
              help="Per-attribute habit strength of the CelebA-part people, e.g. Eyeglasses=1.0 (repeatable).")
@click.option("--lfw-habit", "lfw_habit_by_attribute", multiple=True, metavar="ATTRIBUTE=P",
              help="The same for the LFW-part people.")
@click.option("--prior", "habit_prior_by_attribute", multiple=True, metavar="ATTRIBUTE=P",
              help="P(a person's habitual value of ATTRIBUTE is 1), e.g. Eyeglasses=0.5 (repeatable).")
@click.option("--groundtruth-splits", default=",".join(_SYNTH.groundtruth_splits), show_default=True,
              help="CelebA-part splits that also get exact counterfactuals, comma-separated (train,val,test).")
@click.option("--jpeg-quality", type=int, default=_SYNTH.jpeg_quality, show_default=True,
              help="0 = lossless PNG; 1..100 = JPEG (masks then mark the pixels whose decoded values differ).")
@click.option("--workers", type=int, default=_SYNTH.workers, show_default=True,
              help="Rendering processes; 0 = all cores. The output does not depend on it.")
@click.option("--preview", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a contact sheet PNG (identities x attribute toggles).")
@friendly_errors
def synth_cmd(out: Path, workers: int, preview, **settings) -> None:
    """Render SynthFaces into OUT: CelebA and LFW formats plus counterfactual ground truth."""
    from augment.data import synthfaces

    params = {p.name: p for p in click.get_current_context().command.params}
    for key in ("habit_by_attribute", "lfw_habit_by_attribute", "habit_prior_by_attribute"):
        settings[key] = _attribute_values(settings[key], params[key].opts[0])
    settings["groundtruth_splits"] = tuple(x.strip() for x in settings["groundtruth_splits"].split(",") if x.strip())
    try:
        info = synthfaces.make(out, synthfaces.Settings(**settings), workers=workers, preview=preview)
    except synthfaces.SettingError as e:
        hint = "OUT" if e.key == "out" else params[e.key].opts[0]
        raise click.BadParameter(e.reason, param_hint=hint) from None
    click.echo(
        f"{info['images']} CelebA-part and {info['lfw_images']} LFW-part images, {info['groundtruth_rows']} "
        f"ground-truth rows in {out} ({info['seconds']:.1f} s)" + (f"; preview {preview}" if preview else "")
    )


@cli.command("export")
@click.argument("manifests", nargs=-1, required=True, metavar="MANIFEST...",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["imagefolder", "lst", "insightface", "csv"]), required=True,
              help="lst: MXNet im2rec (index, label, path); insightface: its face2rec2 list (1, path, label).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--append", is_flag=True, help="Add to an earlier export in OUT, reusing its labels.csv.")
@click.option("--labels", "labels_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A label map (label,identity[,identity_name,folder]) every identity must be in.")
@click.option("--name", default="", callback=_file_name,
              help="Name of the list file (default: the manifest's stem, or 'train').")
@click.option("--allow-outside-root", is_flag=True, help="Allow rows whose path leaves the manifest root.")
@friendly_errors
def export_cmd(manifests, fmt: str, out: Path, append: bool, labels_file, name: str, allow_outside_root: bool) -> None:
    """Export images MANIFEST(s) as one training set: an ImageFolder tree, an MXNet or insightface .lst, a CSV.

    Labels are stable: OUT/labels.csv maps identity to label and class folder,
    and every later export into OUT (--append) reuses it.
    """
    from augment.export import ExportError, ExportUsageError, export

    try:
        info = export(list(manifests), fmt, out, allow_outside_root, append=append, labels_file=labels_file,
                      name=name)
    except ExportUsageError as e:
        _fail(str(e), 2)
    except ExportError as e:
        _fail(str(e), 1)
    click.echo(json.dumps(info, indent=2))


@cli.command("edit")
@click.argument("photos", nargs=-1, required=True, metavar="PHOTO_OR_FOLDER...",
                type=click.Path(exists=True, path_type=Path))
@click.option("--generators", required=True, metavar="RUN_OR_CHECKPOINT",
              help="A finished run folder, its train_sagan folder, a generators.parquet or a generator checkpoint.")
@click.option("--attribute", required=True, callback=_file_name, help="The CelebA attribute to edit, e.g. Eyeglasses.")
@click.option("--value", type=click.Choice(["0", "1", "both"]), default="both", show_default=True,
              help="1 adds the attribute, 0 removes it, both writes one photo of each.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for edited/, aligned/, mask/, edits.parquet, rejects.parquet and index.csv.")
@click.option("--template", type=click.Choice(["sagan", "arcface"]), default=None,
              help="Only for generators whose metadata does not record their alignment.")
@click.option("--crop-size", type=click.IntRange(min=16), default=None,
              help="Only for generators whose metadata does not record their alignment.")
@click.option("--select", type=click.Choice(["largest", "central", "probable"]), default="largest", show_default=True,
              help="Which face to edit when a photo has several.")
@click.option("--min-prob", type=click.FloatRange(0, 1), default=0.9, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@friendly_errors
def edit_cmd(photos, generators, attribute, value, out, template, crop_size, select, min_prob, device) -> None:
    """Edit one attribute in your own photos and paste the edited face back into each photo."""
    from augment.photo_edit import edit_photos
    from augment.runtime import resolve_device

    result = edit_photos(photos, generators, attribute, value, out, template=template, crop_size=crop_size,
                         select=select, min_prob=min_prob, device=resolve_device(device).type)
    n_photos = result.edits.meta["extra"]["photos"]
    click.echo(f"{n_photos} photo(s): {len(result.edits)} edited photo(s) of {len(result.aligned)} face(s), "
               f"{len(result.rejects)} without a usable face")
    for r in result.rejects.df.itertuples(index=False):
        click.echo(f"  no edit: {r.path}: {r.reason} ({r.detail})")
    click.echo(f"wrote {out / 'edited'}/, {out / 'index.csv'} and {out / 'edits.parquet'}")


@cli.command("inspect")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@friendly_errors
def inspect_cmd(manifest: Path) -> None:
    """Rows, identities, edits per attribute and value, score histograms."""
    from augment import manifest as mf
    from augment.summary import summarize

    click.echo(summarize(mf.read(manifest)))


@cli.command("evaluate")
@click.option("--baseline", required=True, metavar="[NAME=]M",
              help="The baseline: an embeddings Parquet (path, embedding), a recognizer checkpoint folder, "
                   "or a run folder (its model named 'baseline').")
@click.option("--augmented", multiple=True, metavar="[NAME=]M",
              help="A model to compare with the baseline (repeatable); a run folder gives all its augmented models.")
@click.option("--pairs", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="LFW pairs file (View 1 or View 2) or a pairs manifest; paths relative to --images.")
@click.option("--images", type=click.Path(exists=True, path_type=Path), default=None,
              help="The images: an images manifest (e.g. align/eval_aligned.parquet) or an <identity>/<image> "
                   "folder of aligned faces or of raw photos (see --align).")
@click.option("--align", "align", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="--images a folder: auto aligns its photos with MTCNN (into OUT/aligned) unless they are "
                   "crops of the checkpoints' training size; always / never force it.")
@click.option("--protocol", type=click.Choice(["lfw", "celeba-ident"]), default="lfw", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/evaluate"),
              show_default=True, help="Folder for metrics.json and roc.png.")
@click.option("--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Paired bootstrap resamples for the deltas' confidence intervals (0 = none).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--split", default=None,
              help="Only the --images manifest's rows of this split (train, val, test); default: every image for "
                   "lfw, the test rows for celeba-ident.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json instead of the table.")
@friendly_errors
def evaluate_cmd(baseline, augmented, pairs, images, align, protocol, out, bootstrap, seed, split, device,
                 batch_size, as_json) -> None:
    """Compare a baseline recognizer with augmented ones on LFW pairs or the CelebA protocol.

    Prints accuracy, TAR at FAR 1e-3/1e-2/1e-1, AUC, EER, each delta to the
    baseline with its significance, and the paper's values where they apply;
    writes OUT/metrics.json and OUT/roc.png.
    """
    from recognition.evaluate import evaluate_command, format_table

    result = evaluate_command(baseline, augmented, pairs, images, protocol, out, bootstrap, seed, split, device,
                              batch_size, align)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        note = result.get("images_aligned")
        if note:
            click.echo(
                f"--images {note['folder']}: raw photos ({note['sizes_seen']}), not {note['alignment']} like the "
                f"models' training faces: aligned {note['images']} with MTCNN into {note['out']} "
                f"({note['aligned']} faces found, {note['centre_cropped']} centre-cropped without a face, "
                f"{note['rejects']} rejected)"
            )
        click.echo(format_table(result))
        click.echo(f"wrote {out / 'metrics.json'} and {out / 'roc.png'}")


@cli.command("pairs")
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

    IMAGES: an LFW-layout folder (Name/Name_0001.jpg) or an images manifest.
    """
    from recognition.evaluate import pairs_command

    info = pairs_command(images, attribute, source, out, seed, folds, max_per_fold)
    click.echo(f"{info['pairs']} pairs ({info['folds']} folds x {info['pairs_per_fold']} genuine + "
               f"{info['pairs_per_fold']} impostor) from {info['people']} people, "
               f"{info['people_with_both_values']} of them with and without {attribute} "
               f"(attributes: {info['attributes']}); wrote {out}")


@cli.command("align")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for aligned.parquet, rejects.parquet and the aligned images.")
@click.option("--mode", type=click.Choice(["auto", "mtcnn", "landmarks", "prealigned", "none"]), default="auto",
              show_default=True,
              help="auto: the rows' landmarks where present, MTCNN otherwise; prealigned: CelebA-style aligned crops "
                   "of any size; none: already aligned, crop/resize only.")
@click.option("--template", type=click.Choice(["sagan", "arcface"]), default=None, help="Default: sagan.")
@click.option("--size", type=click.IntRange(min=16), default=None, help="Output side in px (default 128).")
@click.option("--dataset", type=click.Choice(["celeba", "lfw", "synthfaces", "folder"]), default=None,
              help="Format of INPUT when it is a folder (default: guessed).")
@click.option("--images", default="", help="CelebA image folder name (img_celeba | img_align_celeba).")
@click.option("--role", type=click.Choice(["train", "eval"]), default="train", show_default=True,
              help="eval: images without a usable face are centre-cropped instead of rejected.")
@click.option("--select", type=click.Choice(["largest", "central", "probable"]), default=None,
              help="Which face to keep when there are several (default: largest).")
@click.option("--keep-all", is_flag=True, help="Keep every face that passes the filters (train role).")
@click.option("--min-prob", type=click.FloatRange(0, 1), default=None, help="Minimum detection probability (0.9).")
@click.option("--max-images", type=click.IntRange(min=0), default=0, help="Align only the first N images.")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="0 = all CPU cores.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@friendly_errors
def align_cmd(input_path: Path, out_dir: Path, mode, template, size, dataset, images, role, select, keep_all,
              min_prob, max_images, workers, device) -> None:
    """Detect and align the faces of INPUT (a dataset folder or an images manifest)."""
    from dataclasses import replace

    from augment.align.command import align_input
    from augment.config import AlignConfig
    from augment.runtime import resolve_device
    from augment.runtime import workers as n_workers

    given = {"template": template, "size": size, "select": select, "min_prob": min_prob}
    cfg = replace(AlignConfig(keep_all=keep_all), **{k: v for k, v in given.items() if v is not None})
    result = align_input(input_path, out_dir, cfg, mode=mode, dataset=dataset, role=role, images=images,
                         max_images=max_images, device=resolve_device(device).type, workers=n_workers(workers))
    st = result.stats
    rate = f"; detection rate {100 * st['detection_rate']:.1f}%" if "detection_rate" in st else ""
    fallback = st["centre_crop_fallback"]["count"]
    click.echo(
        f"{sum(st['modes'].values())} image(s) -> {st['aligned_faces']} aligned face(s), "
        f"{len(result.rejects)} reject(s) {st['rejects'] or ''}{rate}"
        + (f"; {fallback} centre-cropped without a face" if fallback else "")
    )
    click.echo(f"wrote {out_dir / 'aligned.parquet'} and {out_dir / 'rejects.parquet'}")


def main() -> None:
    cli(prog_name="augment")


if __name__ == "__main__":
    main()
