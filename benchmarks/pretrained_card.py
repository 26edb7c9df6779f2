"""The pictures of the shipped generators' model card (docs/pretrained.md).

    python -m benchmarks.pretrained_card heldout RUN PNG
    python -m benchmarks.pretrained_card wild OUT PNG PHOTO [PHOTO ...]

``heldout``: eval_sagan's grids of a finished ``pipelines/pretrain.yaml`` run
(held-out test people; columns input | set to 1 | set to 0 | mask, the first
half of the rows with the attribute), one per attribute under its name.

``wild``: every shipped generator applied to each photo by ``augment edit``'s
code (``augment.photo_edit.edit_photos``, no ``--generators``), both values,
written under ``OUT/<Attribute>/``. One row pair per photo: the full photos
(input, then each attribute set to the value the photo does not have, as
CelebA's ``list_attr_celeba.txt`` beside the photos labels it), and below
them the same pictures cropped to the face (the box of every changed pixel,
widened), where a 64 px edit can be seen.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROW_HEIGHT = 220  # pixels of each full photo in the picture
ZOOM = 220  # pixels of each face crop


def _label(img: np.ndarray, text: str) -> np.ndarray:
    """``img`` with ``text`` written on a white band above it."""
    from PIL import Image, ImageDraw

    band = Image.new("RGB", (img.shape[1], 18), "white")
    ImageDraw.Draw(band).text((4, 3), text, fill="black")
    return np.concatenate([np.asarray(band), img], axis=0)


def _resize(img: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    from PIL import Image

    w = width or max(1, round(img.shape[1] * height / img.shape[0]))
    return np.asarray(Image.fromarray(img).resize((w, height), Image.LANCZOS))


def _pad_to(img: np.ndarray, width: int) -> np.ndarray:
    return np.pad(img, ((0, 0), (0, width - img.shape[1]), (0, 0)), constant_values=255)


def heldout(run: Path, png: Path) -> None:
    import json

    from augment.io import read_rgb, save_png, tile

    index = json.loads((run / "eval_sagan" / "grids.json").read_text())
    # each 64 px crop twice as large (nearest: the pixels as the generator made them), two panels a row
    panels = [_label(np.repeat(np.repeat(read_rgb(run / "eval_sagan" / g["file"]), 2, 0), 2, 1), g["attribute"])
              for g in index]
    h, w = max(p.shape[0] for p in panels), max(p.shape[1] for p in panels)
    panels = [np.pad(p, ((0, h - p.shape[0]), (0, w - p.shape[1]), (0, 0)), constant_values=255) for p in panels]
    save_png(tile([panels[i:i + 2] for i in range(0, len(panels), 2)], pad=12), png)


def _labels(photo: Path) -> dict[str, int]:
    """CelebA's labels (+1/-1) of ``photo`` from the ``list_attr_celeba.txt`` one folder up."""
    lines = (photo.parent.parent / "list_attr_celeba.txt").read_text().splitlines()
    names = lines[1].split()
    for line in lines[2:]:
        parts = line.split()
        if parts and parts[0] == photo.name:
            return dict(zip(names, map(int, parts[1:])))
    raise SystemExit(f"{photo.name}: not in {photo.parent.parent / 'list_attr_celeba.txt'}")


def wild(out: Path, png: Path, photos: list[Path]) -> None:
    from augment import pretrained
    from augment.io import read_rgb, save_png
    from augment.photo_edit import edit_photos

    attributes = [m["attribute"] for m in pretrained.available()]
    for a in attributes:
        edit_photos(photos, None, a, "both", out / a, progress=False)
    blocks = []
    for photo in photos:
        labels = _labels(photo)
        original = read_rgb(photo)
        edits = []
        for a in attributes:
            value = 0 if labels[a] == 1 else 1
            sign = "-" if value == 0 else "+"
            edits.append((f"{sign}{a}", read_rgb(out / a / "edited" / f"{photo.stem}.{a}={value}.png")))
        changed = np.zeros(original.shape[:2], bool)
        visible = np.zeros(original.shape[:2], bool)
        for _, e in edits:
            diff = np.abs(e.astype(int) - original).max(axis=2)
            changed |= diff > 0
            visible |= diff > 12  # the zoom frames what changed visibly, not the mask's faint tail
        ys, xs = np.nonzero(changed)
        # the changed pixels' box: everything outside it is the photo's own bytes
        print(f"{photo.name} {original.shape[1]}x{original.shape[0]}: {changed.sum()} pixels changed "
              f"({changed.mean():.2%}), all inside x {xs.min()}-{xs.max()}, y {ys.min()}-{ys.max()}", flush=True)
        ys, xs = np.nonzero(visible if visible.any() else changed)
        cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
        half = 0.8 * max(ys.max() - ys.min(), xs.max() - xs.min())
        y0, y1 = int(max(0, cy - half)), int(min(original.shape[0], cy + half))
        x0, x1 = int(max(0, cx - half)), int(min(original.shape[1], cx + half))
        cells = [("input", original)] + edits
        full = [_label(_resize(img, ROW_HEIGHT), name) for name, img in cells]
        zoom = [_resize(img[y0:y1, x0:x1], ZOOM, ZOOM) for _, img in cells]
        widths = [max(f.shape[1], ZOOM) + 6 for f in full]  # each column as wide as its wider picture
        full_row = np.concatenate([_pad_to(f, w) for f, w in zip(full, widths)], axis=1)
        zoom_row = np.concatenate([_pad_to(z, w) for z, w in zip(zoom, widths)], axis=1)
        blocks += [full_row, np.full((4, full_row.shape[1], 3), 255, np.uint8), zoom_row,
                   np.full((14, full_row.shape[1], 3), 255, np.uint8)]
    width = max(b.shape[1] for b in blocks)
    save_png(np.concatenate([np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=255)
                             for b in blocks]), png)


def main(argv: list[str]) -> None:
    if argv[:1] == ["heldout"] and len(argv) == 3:
        heldout(Path(argv[1]), Path(argv[2]))
    elif argv[:1] == ["wild"] and len(argv) >= 4:
        wild(Path(argv[1]), Path(argv[2]), [Path(p) for p in argv[3:]])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
