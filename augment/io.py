"""Image and file I/O for every stage: read pixels safely, convert them to and
from tensors, encode PNGs (written atomically by ``augment.fs``).

Reading goes through ``augment.data.images.decode`` (Pillow, with its limits:
a decompression-bomb cap, no truncated images, EXIF orientation applied,
alpha composited); a file that cannot be used is a ``DatasetError`` naming it.

Two PNG encoders, so that existing outputs keep their exact bytes: Pillow's
(``png_bytes``: edits, sample grids) and OpenCV's (``cv2_bytes``: aligned
crops, photo edits).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from augment.data.errors import DatasetError
from augment.fs import write_bytes

# --------------------------------------------------------------------------- #
# Reading
# --------------------------------------------------------------------------- #


def read_rgb(path: Path | str, size: int | None = None, *, max_pixels: int | None = None) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB as displayed; (size, size, 3) when
    ``size`` is given (see ``resize_square``; None or 0: as stored). ``max_pixels``: the decompression-bomb
    limit (default ``augment.data.images.MAX_PIXELS``). Raises DatasetError naming the file."""
    from augment.data.images import MAX_PIXELS, ImageDecodeError, decode

    try:
        img = decode(path, max_pixels=max_pixels or MAX_PIXELS).pixels
    except ImageDecodeError as e:
        raise DatasetError(str(e)) from None
    return resize_square(img, size) if size else img


def read_mask(path: Path | str) -> np.ndarray:
    """A mask image (8-bit, any number of channels) -> (H, W) float32, 1 where any
    channel is nonzero. Raises DatasetError naming the file."""
    return (read_rgb(path).max(axis=2) > 0).astype(np.float32)


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """(H, W, C) -> (size, size, C): area averaging to shrink (what the aligned
    crops go through on their way to a network), bilinear to enlarge."""
    import cv2

    if img.shape[0] == size and img.shape[1] == size:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


# --------------------------------------------------------------------------- #
# Tensors
# --------------------------------------------------------------------------- #


def to_tensor(img: np.ndarray):
    """(H, W, 3) uint8 -> (3, H, W), or a batch (N, H, W, 3) -> (N, 3, H, W): float32
    in [-1, 1] (v / 127.5 - 1). A view of the pixels' memory, so channels-last
    strides: a batch goes through convolutions in that layout."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(img))
    return (t.permute(2, 0, 1) if t.dim() == 3 else t.permute(0, 3, 1, 2)).float().div_(127.5).sub_(1.0)


def to_uint8(x) -> np.ndarray:
    """(N, C, H, W) tensor in [-1, 1] -> (N, H, W, C) uint8 array, rounding
    (v + 1) * 127.5 to nearest; values outside [-1, 1] are clamped."""
    return np.ascontiguousarray(
        x.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy())


def tile(rows, pad: int = 0) -> np.ndarray:
    """Rows of equally sized (H,W,3) or (H,W) uint8 images -> one (H,W,3) uint8 picture,
    ``pad`` white pixels between and around them (0: edge to edge). A row may be
    a list or an (N,H,W,3) array."""
    rows = [list(r) for r in rows]
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        for j, im in enumerate(r):
            if im.ndim == 2:
                im = np.repeat(im[..., None], 3, axis=2)
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y: y + h, x: x + w] = im
    return out


# --------------------------------------------------------------------------- #
# Encoding
# --------------------------------------------------------------------------- #


def png_bytes(pixels: np.ndarray, compress_level: int = 6) -> bytes:
    """(H, W, 3) or (H, W) uint8 -> PNG bytes by Pillow (level 6 is its default)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def cv2_bytes(pixels: np.ndarray, fmt: str = "png") -> bytes:
    """(H, W, 3) RGB or (H, W) uint8 -> ``png`` (compression 3) or ``jpg`` (quality 95) bytes by OpenCV."""
    import cv2

    img = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if pixels.ndim == 3 else pixels
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(f".{fmt}", img, params)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
        raise RuntimeError(f"cannot encode a {fmt} image")
    return buf.tobytes()


EDIT_PNG_LEVEL = 1  # zlib level of edited images' PNGs (edit and oracle stages): the fastest to write


def save_edit_png(pixels: np.ndarray, path: Path | str) -> str:
    """An edited image as the edit and oracle stages write it: Pillow PNG at
    ``EDIT_PNG_LEVEL``, atomic, not fsynced (its stage syncs once before the
    manifest part that lists it); returns the sha256 of the file's bytes."""
    return save_png(pixels, path, compress_level=EDIT_PNG_LEVEL, fsync=False)


def save_png(pixels: np.ndarray, path: Path | str, compress_level: int = 6, *, fsync: bool = True) -> str:
    """(H, W, 3) uint8 -> a PNG file (Pillow), written atomically, its folder made
    if needed; returns the sha256 of the file's bytes."""
    data = png_bytes(pixels, compress_level)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, data, fsync=fsync)
    return hashlib.sha256(data).hexdigest()
