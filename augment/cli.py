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
from augment.config import ConfigError

PIPELINE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def friendly_errors(func):
    """Turn the project's own exceptions into one clear line and an exit status."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from augment.data.errors import DatasetError
        from augment.manifest import ManifestError
        from augment.pipeline import PipelineError

        try:
            return func(*args, **kwargs)
        except ConfigError as e:
            _fail(str(e), 2)
        except (DatasetError, ManifestError, PipelineError) as e:
            _fail(str(e), 1)
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


def main() -> None:
    cli(prog_name="augment")


if __name__ == "__main__":
    main()
