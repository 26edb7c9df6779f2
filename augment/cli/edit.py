"""Your own photos: ``augment edit`` edits one attribute and pastes the edited face back."""

from __future__ import annotations

from pathlib import Path

import click

from augment.cli.output import fail, file_name, friendly_errors


@click.command("edit")
@click.argument("photos", nargs=-1, required=True, metavar="PHOTO_OR_FOLDER...",
                type=click.Path(exists=True, path_type=Path))
@click.option("--generators", default=None, metavar="RUN_OR_CHECKPOINT",
              help="A finished run folder, its train_sagan folder, a generators.parquet or a generator checkpoint. "
                   "Without it, the generator shipped with augment for --attribute (see 'augment generators').")
@click.option("--attribute", required=True, callback=file_name, help="The CelebA attribute to edit, e.g. Eyeglasses.")
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
@click.option("--strength", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="The attention mask scaled by this (clipped at 1): above 1 lays a faint edit on more firmly.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@friendly_errors
def edit_cmd(photos, generators, attribute, value, out, template, crop_size, select, min_prob, strength,
             device) -> None:
    """Edit one attribute in your own photos and paste the edited face back into each photo.

    Without --generators, the generator shipped for --attribute is used; when
    none is shipped for it, exits 2 naming what is. Exits 1 when no photo had
    a face to edit.

    \b
    Examples:
      augment edit me.jpg --attribute Smiling --value 1 --out edited
      augment edit me.jpg holiday/ --generators runs/demo --attribute Eyeglasses --value 1 --out edited
    """
    from augment.photo_edit import edit_photos
    from augment.runtime import resolve_device

    result = edit_photos(photos, generators, attribute, value, out, template=template, crop_size=crop_size,
                         select=select, min_prob=min_prob, device=resolve_device(device).type, strength=strength)
    for note in result.notes:
        click.echo(f"Warning: {note}", err=True)
    n_photos = result.edits.meta["extra"]["photos"]
    click.echo(f"{n_photos} photo(s): {len(result.aligned)} face(s) found, {len(result.edits)} edited photo(s) "
               f"written, {len(result.rejects)} photo(s) skipped")
    for r in result.rejects.df.itertuples(index=False):
        click.echo(f"  skipped: {r.path}: {r.reason} ({r.detail})")
    if len(result.edits) == 0:
        # a script must tell this run from a good one: nothing asked for was made
        fail(f"nothing edited: none of the {n_photos} photo(s) had a face to edit (see the reasons above; "
             "--min-prob lowers the detector's threshold)", 1)
    click.echo(f"wrote {out / 'edited'}/, {out / 'index.csv'} and {out / 'edits.parquet'}")
