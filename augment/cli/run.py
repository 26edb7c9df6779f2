"""Pipelines: ``augment run`` (the stages in order, under torchrun with --nproc) and ``augment stages``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from augment.cli.output import friendly_errors

PIPELINE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
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
    """Run the stages of a PIPELINE YAML in order, skipping those already up to date.

    
    Example:
      augment run pipelines/demo.yaml --set seed=1 --set workdir=runs/demo-seed1
    """
    import os

    from augment.validate import load_config
    from augment.pipeline import run_pipeline, with_device

    cfg = with_device(load_config(pipeline, sets), device)
    stages = [s.strip() for s in only.split(",") if s.strip()]
    _check_stage_flags(cfg, stages, until, force)
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from augment.lock import acquire

        acquire(cfg.workdir, inheritable=True)  # kept by torchrun across the exec; its workers run under it
        _relaunch_with_torchrun(nproc)
    run_pipeline(cfg, only=stages, until=until, force=force)  # it ends with the run's summary line


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
           "-m", "augment.cli", *args]  # augment/cli/__main__.py
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, cmd)


@click.command()
@click.argument("pipeline", type=PIPELINE)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE")
@friendly_errors
def stages(pipeline: Path, sets) -> None:
    """Print each stage's state: done, stale (config or inputs changed), interrupted or not run.

    
    Example:
      augment stages pipelines/demo.yaml
    """
    from augment.validate import load_config
    from augment.workdir import Runner, states
    from augment.stages import STAGES

    cfg = load_config(pipeline, sets, check_paths=False)
    runner = Runner(cfg)
    for name, state, marker in states(cfg):
        extra = ""
        if marker and state == "done":
            extra = f"  ({marker.get('seconds', 0):.1f} s)"
        click.echo(f"{name:<20} {state:<11}{extra}  {STAGES[name].help}")
        if state == "stale" or (state == "interrupted" and runner.killed_under(name) is not None):
            click.echo(f"{'':<20} why: {runner.why_stale(name)}")
            if runner.continues(name):
                click.echo(f"{'':<20} a run carries it on from its checkpoints")
            elif state == "interrupted":
                click.echo(f"{'':<20} a run starts it over: its partial work is discarded")
