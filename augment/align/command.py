"""``augment align``: align a dataset folder (or an images manifest) outside a pipeline.

Reads the input with the same readers as the ``read`` stage, aligns it with the
same ``align_dataset`` as the ``align`` stage, and writes ``OUT/aligned.parquet``,
``OUT/rejects.parquet`` and the aligned images under ``OUT/<role>/``. Rerunning
the same command after an interrupt finishes only what is missing.
"""

from __future__ import annotations

from pathlib import Path

from augment import manifest as mf
from augment.align.dataset import AlignResult, align_dataset
from augment.config import AlignConfig, DatasetConfig
from augment.data import celeba, read
from augment.data.errors import DatasetError


def guess_format(root: Path) -> str:
    """celeba (has the identity file), synthfaces (has celeba/ and lfw/ parts) or folder."""
    if (root / celeba.IDENTITY_FILE).is_file():
        return "celeba"
    if (root / read.SYNTH_CELEBA).is_dir() and (root / read.SYNTH_LFW).is_dir():
        return "synthfaces"
    return "folder"


def load_input(path: Path, dataset: str | None, role: str, images: str = "", max_images: int = 0) -> mf.Manifest:
    """An images manifest (.parquet) or a dataset folder in one of the supported formats."""
    if path.is_file():
        if path.suffix != ".parquet":
            raise DatasetError(f"{path}: expected a dataset folder or an images manifest (.parquet)")
        m = mf.read(path, kind="images")
        return m if max_images <= 0 else mf.Manifest("images", m.df.iloc[:max_images].reset_index(drop=True), m.root)
    fmt = dataset or guess_format(path)
    ds = DatasetConfig(format=fmt, root=str(path), images=images, max_images=max_images)
    source, _pairs = read.load_dataset(ds, role, synth_root=None)
    return source


def align_input(
    path: Path, out_dir: Path, cfg: AlignConfig, *, mode: str = "auto", dataset: str | None = None,
    role: str = "train", images: str = "", max_images: int = 0, device: str = "cpu", workers: int = 1,
) -> AlignResult:
    """Align ``path`` into ``out_dir``; writes aligned.parquet and rejects.parquet there."""
    source = load_input(path, dataset, role, images, max_images)
    result = align_dataset(source, cfg, mode, out_dir, prefix=role, role=role, device=device, workers=workers)
    mf.write(result.aligned, out_dir / "aligned.parquet")
    mf.write(result.rejects, out_dir / "rejects.parquet")
    return result
