"""The generators shipped with augment: ``augment generators`` lists them,
``augment generators ship RUN`` copies a finished run's into the package."""

from __future__ import annotations

from pathlib import Path

import click

from augment.cli.output import echo_json, fail, file_name, friendly_errors

COLUMNS = ("attribute", "size", "steps", "success add", "success remove", "identity kept", "licence")


def _figure(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def table_rows(metas: list[dict]) -> list[tuple[str, ...]]:
    """One row of ``COLUMNS`` per shipped generator: its size in px (and the aligned
    crop it edits: template and size), steps, eval_sagan's edit success per direction and dlib's identity
    kept (the fraction of edits still the same person; the run's own recognizer's
    ``id_preserved`` when dlib was not installed), n/a where not measured."""
    rows = []
    for m in metas:
        q = m.get("quality") or {}
        align = m.get("align") or {}
        crop = f" ({align.get('template')} crop, {align.get('size')} px)" if align.get("template") else ""
        size = f"{m.get('image_size')} px{crop}"
        kept = q.get("id_kept", q.get("id_preserved"))
        rows.append((m["attribute"], size, str(m.get("step", "")), _figure((q.get("add") or {}).get("edit_success")),
                     _figure((q.get("remove") or {}).get("edit_success")), _figure(kept), str(m.get("licence", ""))))
    return rows


def _listing() -> list[dict]:
    from augment.pretrained import PretrainedError, available

    try:
        return available()
    except PretrainedError as e:
        fail(str(e), 1)
        raise  # not reached: fail exits


@click.group("generators", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the shipped generators' metadata as JSON.")
@click.pass_context
@friendly_errors
def generators(ctx, as_json) -> None:
    """List the generators shipped with augment (what 'augment edit' uses without --generators).

    One row per attribute: crop size, training steps, eval_sagan's edit success
    adding and removing the attribute on held-out people, the fraction of edits
    dlib's recognizer still takes for the same person, and the licence. Nothing
    shipped is not an error (exit 0).

    \b
    Examples:
      augment generators
      augment generators --json
      augment generators ship runs/pretrain    # after: augment run pipelines/pretrain.yaml
    """
    if ctx.invoked_subcommand is not None:
        return
    from augment.pretrained import TRAIN_HINT, folder

    metas = _listing()
    if as_json:
        echo_json([{k: v for k, v in m.items() if k != "structure"} for m in metas])
        return
    if not metas:
        click.echo(f"No generators are shipped with this installation; {TRAIN_HINT}.")
        return
    rows = [COLUMNS, *table_rows(metas)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    click.echo(f"{len(metas)} generator(s) shipped in {folder()}:")
    for r in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


@generators.command("ship")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--attribute", "attributes", multiple=True, callback=lambda c, p, v: tuple(file_name(c, p, a) for a in v),
              help="Ship this attribute's generator only (repeatable); without it, all of the run's.")
@click.option("--to", "dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write to; without it, the package's shipped folder (augment/pretrained/).")
@click.option("--licence", default="", help="Licence recorded with the weights; without it, CelebA's terms "
              "(non-commercial research only).")
@friendly_errors
def ship_cmd(run, attributes, dest, licence) -> None:
    """Copy a finished run's generators into the package as shipped generators.

    RUN must have run train_sagan and eval_sagan (pipelines/pretrain.yaml does):
    each generator is written as <Attribute>.safetensors (float16) and
    <Attribute>.json (its metadata, how it was trained and eval_sagan's figures).

    \b
    Example:
      augment run pipelines/pretrain.yaml && augment generators ship runs/pretrain
    """
    from augment.trained import ship

    for meta_file in ship(run, dest, attributes, licence):
        click.echo(f"shipped {meta_file.with_suffix('.safetensors')} and {meta_file.name}")
