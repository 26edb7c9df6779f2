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
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


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
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from augment.lock import acquire

        acquire(cfg.workdir, inheritable=True)  # kept by torchrun across the exec; its workers run under it
        _relaunch_with_torchrun(nproc)
    stages = [s.strip() for s in only.split(",") if s.strip()]
    result = run_pipeline(cfg, only=stages, until=until, force=force)
    from augment import distributed

    if not distributed.is_main():
        return
    ran = sum(v == "ran" for v in result.values())
    click.echo(
        f"{cfg.name}: {ran} stage(s) ran, {len(result) - ran} up to date; "
        f"total {time.perf_counter() - t0:.1f} s; outputs in {cfg.workdir}"
    )


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
    """Print each stage's state: done, stale (config or inputs changed) or not run."""
    from augment.config import load_config
    from augment.pipeline import states
    from augment.stages import STAGES

    cfg = load_config(pipeline, sets, check_paths=False)
    for name, state, marker in states(cfg):
        extra = ""
        if marker and state == "done":
            extra = f"  ({marker.get('seconds', 0):.1f} s)"
        click.echo(f"{name:<20} {state:<8}{extra}  {STAGES[name].help}")


@cli.group()
def datasets() -> None:
    """Inspect datasets on disk."""


@datasets.command("describe")
@click.argument("fmt", metavar="{celeba|lfw|synthfaces}", type=click.Choice(["celeba", "lfw", "synthfaces"]))
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--pairs", default=None, help="LFW pairs file (View 1 or View 2), relative to ROOT or absolute.")
@click.option("--images", default="", help="CelebA image folder name (default: whichever exists).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly_errors
def describe(fmt: str, root: Path, pairs, images: str, as_json: bool) -> None:
    """Count images, identities, attributes and pairs of a dataset at ROOT."""
    from augment.data import describe as d

    if fmt == "celeba":
        info = d.describe_celeba(root, images)
    elif fmt == "lfw":
        info = d.describe_lfw(root, pairs)
    else:
        from augment.data.synthfaces import describe as describe_synth

        info = describe_synth(root)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            click.echo(f"{k:<18} {v}")


_SYNTH = SynthConfig()


@cli.command("synth")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--identities", type=int, default=_SYNTH.identities, show_default=True, help="People in the CelebA part.")
@click.option("--images-per-identity", type=int, default=_SYNTH.images_per_identity, show_default=True)
@click.option("--lfw-identities", type=int, default=_SYNTH.lfw_identities, show_default=True,
              help="People in the LFW part (disjoint from the CelebA part).")
@click.option("--lfw-images-per-identity", type=int, default=_SYNTH.lfw_images_per_identity, show_default=True)
@click.option("--size", type=int, default=_SYNTH.size, show_default=True, help="Side of the CelebA-part images, px.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--habit-strength", type=float, default=_SYNTH.habit_strength, show_default=True,
              help="P(a photo shows the person's habitual value of an attribute).")
@click.option("--jpeg-quality", type=int, default=_SYNTH.jpeg_quality, show_default=True,
              help="0 = lossless PNG; 1..100 = JPEG (masks then mark the pixels whose decoded values differ).")
@click.option("--workers", type=int, default=_SYNTH.workers, show_default=True,
              help="Rendering processes; 0 = all cores. The output does not depend on it.")
@click.option("--preview", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a contact sheet PNG (identities x attribute toggles).")
@friendly_errors
def synth_cmd(out: Path, identities, images_per_identity, lfw_identities, lfw_images_per_identity, size, seed,
              habit_strength, jpeg_quality, workers, preview) -> None:
    """Render SynthFaces into OUT: CelebA and LFW formats plus counterfactual ground truth."""
    from augment.data import synthfaces

    settings = synthfaces.Settings(
        identities=identities, images_per_identity=images_per_identity, lfw_identities=lfw_identities,
        lfw_images_per_identity=lfw_images_per_identity, size=size, habit_strength=habit_strength,
        jpeg_quality=jpeg_quality, seed=seed,
    )
    try:
        info = synthfaces.make(out, settings, workers=workers, preview=preview)
    except synthfaces.SettingError as e:
        hint = "OUT" if e.key == "out" else "--" + e.key.replace("_", "-")
        raise click.BadParameter(e.reason, param_hint=hint) from None
    click.echo(
        f"{info['images']} CelebA-part and {info['lfw_images']} LFW-part images, {info['groundtruth_rows']} "
        f"ground-truth rows in {out} ({info['seconds']:.1f} s)" + (f"; preview {preview}" if preview else "")
    )


@cli.command("export")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["imagefolder", "lst", "csv"]), required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--allow-outside-root", is_flag=True, help="Allow rows whose path leaves the manifest root.")
@friendly_errors
def export_cmd(manifest: Path, fmt: str, out: Path, allow_outside_root: bool) -> None:
    """Export an images MANIFEST as an ImageFolder tree, an MXNet .lst or a CSV."""
    from augment.export import ExportError, export

    try:
        info = export(manifest, fmt, out, allow_outside_root)
    except ExportError as e:
        _fail(str(e), 1)
    click.echo(json.dumps(info, indent=2))


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
              help="Aligned images: an images manifest (e.g. align/eval_aligned.parquet) or an "
                   "<identity>/<image> folder; aligned as the checkpoints' training images were.")
@click.option("--protocol", type=click.Choice(["lfw", "celeba-ident"]), default="lfw", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/evaluate"),
              show_default=True, help="Folder for metrics.json and roc.png.")
@click.option("--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Paired bootstrap resamples for the deltas' confidence intervals (0 = none).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--split", default="test", show_default=True, help="celeba-ident: the manifest split to use.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json instead of the table.")
@friendly_errors
def evaluate_cmd(baseline, augmented, pairs, images, protocol, out, bootstrap, seed, split, device, batch_size,
                 as_json) -> None:
    """Compare a baseline recognizer with augmented ones on LFW pairs or the CelebA protocol.

    Prints accuracy, TAR at FAR 1e-3/1e-2/1e-1, AUC, EER, each delta to the
    baseline with its significance, and the paper's values where they apply;
    writes OUT/metrics.json and OUT/roc.png.
    """
    from recognition.evaluate import evaluate_command, format_table

    result = evaluate_command(baseline, augmented, pairs, images, protocol, out, bootstrap, seed, split, device,
                              batch_size)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(format_table(result))
        click.echo(f"wrote {out / 'metrics.json'} and {out / 'roc.png'}")


@cli.command("align")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for aligned.parquet, rejects.parquet and the aligned images.")
@click.option("--mode", type=click.Choice(["auto", "mtcnn", "landmarks", "none"]), default="auto", show_default=True,
              help="auto: the rows' landmarks where present, MTCNN otherwise; none: already aligned, crop/resize only.")
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
