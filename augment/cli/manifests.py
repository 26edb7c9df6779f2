"""Written manifests: ``augment inspect`` summarizes one, ``augment export`` makes a training set of them."""

from __future__ import annotations

from pathlib import Path

import click

from augment.cli.output import file_name, echo_json, fail, friendly_errors


@click.command("export")
@click.argument("manifests", nargs=-1, required=True, metavar="MANIFEST...",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["imagefolder", "lst", "insightface", "csv"]), required=True,
              help="lst: MXNet im2rec (index, label, path); insightface: its face2rec2 list (1, path, label).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--append", is_flag=True, help="Add to an earlier export in OUT, reusing its labels.csv.")
@click.option("--labels", "labels_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A label map (label,identity[,identity_name,folder]) every identity must be in.")
@click.option("--name", default="", callback=file_name,
              help="Name of the list file; without it, the manifest's stem ('train' for several).")
@click.option("--split", "splits", multiple=True, metavar="SPLIT",
              help="Only rows of this split (repeatable), e.g. --split train: no test person in a training set.")
@click.option("--allow-outside-root", is_flag=True, help="Allow rows whose path leaves the manifest root.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@friendly_errors
def export_cmd(manifests, fmt: str, out: Path, append: bool, labels_file, name: str, splits, allow_outside_root: bool,
               as_json: bool) -> None:
    """Export images MANIFEST(s) as one training set: an ImageFolder tree, an MXNet or insightface .lst, a CSV.

    Labels are stable: OUT/labels.csv maps identity to label and class folder,
    and every later export into OUT (--append) reuses it. Exits 1, writing
    nothing, when the manifests hold no row to export.

    \b
    Example (the originals and their edits, training people only):
      augment export runs/demo/align/aligned.parquet runs/demo/edit/edits.parquet \\
        --split train --format imagefolder --out trainset/
    """
    from augment.export import ExportError, ExportUsageError, export

    _refuse_empty(manifests)
    try:
        info = export(list(manifests), fmt, out, allow_outside_root, append=append, labels_file=labels_file,
                      name=name, splits=splits)
    except ExportUsageError as e:
        fail(str(e), 2)
    except ExportError as e:
        fail(str(e), 1)
    if as_json:
        echo_json(info)
        return
    click.echo(f"exported {info['rows']} image(s) of {info['identities']} identities ({info['new_identities']} new) "
               f"from {len(info['manifests'])} manifest(s), split(s) {', '.join(info['splits']) or 'none'}, "
               f"into {out} ({fmt})")
    click.echo(f"labels: {info['labels']} (label, identity, identity_name, folder)")
    if fmt == "imagefolder":
        click.echo("note: torchvision's ImageFolder numbers classes by sorted folder name, not by labels.csv's "
                   "label: map them through its folder column")


def _refuse_empty(manifests) -> None:
    """Exit 1, before anything is written, when every manifest has no row: the
    training set asked for would be empty (each input is named with its count)."""
    import pyarrow.parquet as pq

    counts = []
    for path in manifests:
        try:
            counts.append(pq.read_metadata(path).num_rows)
        except Exception:  # noqa: BLE001 - not Parquet: export's reader names the problem
            return
    if manifests and not any(counts):
        inputs = "; ".join(f"{p}: 0 rows" for p in manifests)
        fail(f"nothing to export: no manifest has a row ({inputs})", 1)


@click.command("inspect")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@friendly_errors
def inspect_cmd(manifest: Path) -> None:
    """Rows, identities, edits per attribute and value, score histograms.

    
    Example:
      augment inspect runs/demo/edit/edits.parquet
    """
    from augment import manifest as mf
    from augment.summary import summarize

    click.echo(summarize(mf.read(manifest)))
