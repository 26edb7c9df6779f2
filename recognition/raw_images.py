"""``augment evaluate --images FOLDER`` on raw photos: align them as the recognizers' training faces were.

A recognizer only scores faces cropped the way its training faces were (the
align stage's template and size). ``augment evaluate`` is often pointed at a
folder of raw photos instead (LFW's 250x250 deep-funneled images, a user's own
pictures), which it would otherwise resize whole and score as faces. Here:

- ``models_alignment``: the template and size the models' training faces were
  aligned with: the checkpoint's ``alignment`` metadata, else (checkpoints made
  before it was recorded) the ``align`` manifest of the run they belong to;
- ``looks_aligned``: whether a folder's images are already such crops (every
  sampled image is a square of the training size);
- ``align_for_evaluation``: MTCNN + that template on the images the protocol
  names, into ``OUT/aligned/`` (resumable, like ``augment align``), with the
  evaluation role: an image without a usable face is centre-cropped and
  counted, never dropped, so every pair is scored. Of several faces it keeps
  the central one by default (LFW's convention: the labelled person is in the
  middle; the largest is often someone behind them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

from augment import manifest as mf
from augment.data.errors import DatasetError

log = logging.getLogger("augment.evaluate")

SAMPLE = 32  # images whose size is read to decide whether a folder is aligned already


@dataclass(frozen=True)
class Alignment:
    """How training faces were aligned: ``template`` (sagan | arcface), ``size`` (px, square)."""

    template: str
    size: int
    where: str  # what it was read from, for the messages

    def describe(self) -> str:
        return f"{self.size}x{self.size} '{self.template}' crops"


def alignment_from_meta(meta: dict, where: str) -> Alignment | None:
    got = meta.get("alignment")
    if not isinstance(got, dict) or "template" not in got or "size" not in got:
        return None
    return Alignment(str(got["template"]), int(got["size"]), where)


def alignment_of_run(recognizers_root: Path) -> Alignment | None:
    """The ``align`` stage's settings of the run a recognizers manifest belongs to."""
    aligned = Path(recognizers_root).parent / "align" / "aligned.parquet"
    if not aligned.is_file():
        return None
    from augment.align.dataset import alignment_of

    got = alignment_of(mf.read(aligned, kind="images"))
    return None if got is None else Alignment(got["template"], got["size"], str(aligned))


def models_alignment(models: Sequence) -> Alignment | None:
    """The one alignment all checkpoint models were trained on (None: none recorded);
    an error when two models disagree (their faces cannot share one crop)."""
    found = {(m.alignment.template, m.alignment.size): m.alignment for m in models if m.alignment is not None}
    if len(found) > 1:
        raise DatasetError("the models were trained on faces aligned differently ("
                           + "; ".join(f"{a.describe()} from {a.where}" for a in found.values())
                           + "): evaluate them separately")
    return next(iter(found.values()), None)


def looks_aligned(files: Sequence[str], size: int) -> tuple[bool, str]:
    """(every sampled image is a ``size`` x ``size`` square, the sizes seen)."""
    from PIL import Image

    step = max(1, len(files) // SAMPLE)
    sizes = set()
    for f in list(files)[::step][:SAMPLE]:
        try:
            with Image.open(f) as im:
                sizes.add(im.size)
        except OSError as e:
            raise DatasetError(f"{f}: not a readable image ({e})") from e
    seen = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:4]) + (" ..." if len(sizes) > 4 else "")
    return sizes == {(size, size)}, seen


def align_for_evaluation(folder: Path, keys: Iterable[str], alignment: Alignment, out_dir: Path, *,
                         device: str = "cpu", workers: int = 1, select: str = "central"):
    """Align the images of ``folder`` (an ``<identity>/<image>`` tree) that ``keys``
    name (all when ``keys`` is empty) into ``out_dir``; returns the align result
    (``aligned`` manifest, ``rejects``, ``stats``). ``select``: the face kept in a
    photo with several (``central``: LFW's convention, the labelled person is the
    face in the middle of the picture)."""
    from augment.align.command import load_input
    from augment.align.dataset import align_dataset
    from augment.config import AlignConfig

    source = load_input(Path(folder), "lfw", "eval")
    wanted = set(keys)
    if wanted:
        keep = source.df["path"].isin(wanted)
        missing = sorted(wanted - set(source.df["path"]))
        if missing:
            raise DatasetError(f"{len(missing)} image(s) named by the pairs are not in {folder}: "
                               f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        source = mf.Manifest("images", source.df[keep].reset_index(drop=True), source.root, source.meta)
    cfg = replace(AlignConfig(), template=alignment.template, size=alignment.size, select=select)
    result = align_dataset(source, cfg, "mtcnn", Path(out_dir), prefix="eval", role="eval", device=device,
                           workers=workers)
    mf.write(result.aligned, Path(out_dir) / "aligned.parquet")
    mf.write(result.rejects, Path(out_dir) / "rejects.parquet")
    return result

