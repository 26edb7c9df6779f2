"""Safe image decoding, shared by every stage that reads pixels.

``decode(path)`` returns RGB uint8 pixels or raises ``ImageDecodeError`` with a
short ``reason`` (``unreadable`` or ``too_large``) and a ``detail`` naming the
problem, so a caller can turn a bad file into a reject row instead of a crash.

What it does with awkward files:

- empty files, text or other non-image bytes, truncated or corrupt data: an
  error (Pillow's ``LOAD_TRUNCATED_IMAGES`` stays off: a half-grey photo must not
  pass as a face);
- EXIF orientation is applied, so pixels (and every coordinate measured on
  them, e.g. landmarks) are those of the image *as displayed*;
- RGBA / LA / palette images with transparency are composited on a background
  (white by default) rather than having the alpha dropped, which would expose
  arbitrary colours under transparent pixels;
- grayscale, palette, CMYK, YCbCr and LAB become RGB; 16-bit grayscale (mode
  ``I;16`` / ``I``) is scaled from 0..65535 to 0..255, not clipped (Pillow's own
  conversion clips, which turns most 16-bit photos white);
- size: a decompression-bomb limit of ``max_pixels`` (default 100 Mpx, above any
  camera sensor of today). A JPEG above it is decoded at 1/2, 1/4 or 1/8 scale
  by libjpeg's DCT scaling, which never allocates the full image, and
  ``DecodedImage.scale`` says how to map coordinates back; any other format
  above it is rejected as ``too_large`` before its pixels are allocated.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 100_000_000
BACKGROUND = (255, 255, 255)

# EXIF orientations 5-8 include a 90-degree turn: the displayed image is w x h swapped.
_EXIF_ORIENTATION = 0x0112
_TURNED = (5, 6, 7, 8)
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_TO_RGB = ("RGB", "L", "1", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX")


class ImageDecodeError(Exception):
    """An image that cannot be used. ``reason``: unreadable | too_large."""

    def __init__(self, path: Path | str, reason: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = str(path)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DecodedImage:
    """Decoded pixels and the full-resolution size they stand for.

    ``pixels``: (H, W, 3) uint8 RGB. ``source_size``: (width, height) of the full
    image as displayed; equal to the pixels' size unless a huge JPEG was decoded
    at reduced scale.
    """

    pixels: np.ndarray
    source_size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy): source pixels per decoded pixel along x and y (1.0 at full resolution)."""
        h, w = self.pixels.shape[:2]
        return self.source_size[0] / w, self.source_size[1] / h


def _open(path: Path) -> Image.Image:
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise ImageDecodeError(path, "unreadable", "file not found") from None
    except OSError as e:
        raise ImageDecodeError(path, "unreadable", f"cannot read: {e.strerror or e}") from None
    except ValueError:  # a NUL in a path read from a manifest: no file can have that name
        raise ImageDecodeError(path, "unreadable", "not a file name (it holds a NUL character)") from None
    if size == 0:
        raise ImageDecodeError(path, "unreadable", "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice its limit; we decide the size below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except UnidentifiedImageError:
        raise ImageDecodeError(path, "unreadable", "not an image (unknown or damaged format)") from None
    except Image.DecompressionBombError as e:
        raise ImageDecodeError(path, "too_large", f"image too large: {e}") from None
    except Exception as e:  # Pillow's plugins raise many types on corrupt headers
        raise ImageDecodeError(path, "unreadable", f"cannot open image: {e}") from None


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # a malformed EXIF block: show the image as stored
        return 1


def _reduce_or_refuse(im: Image.Image, path: Path, max_pixels: int) -> None:
    """Enforce the pixel limit before any pixel is decoded."""
    w, h = im.size
    if w * h <= max_pixels:
        return
    mpx = f"{w}x{h} = {w * h / 1e6:.1f} Mpx exceeds the {max_pixels / 1e6:g} Mpx limit"
    if im.format == "JPEG":
        for k in (2, 4, 8):  # the scales libjpeg decodes natively
            if math.ceil(w / k) * math.ceil(h / k) <= max_pixels:
                im.draft("RGB", (math.ceil(w / k), math.ceil(h / k)))
                return
        raise ImageDecodeError(path, "too_large", f"image too large: {mpx} even at 1/8 scale")
    raise ImageDecodeError(path, "too_large", f"image too large: {mpx}")


def _sixteen_to_rgb(im: Image.Image) -> np.ndarray:
    """16-bit grayscale (0..65535) -> (H, W, 3) uint8, rounding v * 255 / 65535."""
    v = np.asarray(im).astype(np.int64)
    v8 = ((np.clip(v, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)
    return np.repeat(v8[:, :, None], 3, axis=2)


def _to_rgb(im: Image.Image, background: tuple[int, int, int]) -> np.ndarray:
    mode = im.mode
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        canvas.alpha_composite(rgba)
        return np.array(canvas.convert("RGB"), dtype=np.uint8)
    if mode in _SIXTEEN_BIT:
        return _sixteen_to_rgb(im)
    if mode in _TO_RGB:
        return np.array(im.convert("RGB") if mode != "RGB" else im, dtype=np.uint8)
    raise ValueError(f"unsupported pixel mode {mode!r}")


def decode(
    path: Path | str, *, max_pixels: int = MAX_PIXELS, background: tuple[int, int, int] = BACKGROUND
) -> DecodedImage:
    """Decode ``path`` to RGB uint8 as displayed (EXIF orientation applied).

    Raises ImageDecodeError (``reason`` unreadable | too_large) for any file that
    cannot be used; never returns a partly decoded image.
    """
    path = Path(path)
    im = opened = _open(path)
    try:
        orientation = _orientation(im)
        w, h = im.size
        source_size = (h, w) if orientation in _TURNED else (w, h)
        _reduce_or_refuse(im, path, max_pixels)
        try:
            im.load()
            if orientation != 1:
                im = ImageOps.exif_transpose(im)
            pixels = _to_rgb(im, background)
        except ImageDecodeError:
            raise
        except Exception as e:  # truncated data, broken streams, bad palettes: whatever the plugin raises
            raise ImageDecodeError(path, "unreadable", f"cannot decode image: {e}") from None
    finally:
        opened.close()
    return DecodedImage(np.ascontiguousarray(pixels), source_size)


def load_rgb(path: Path | str, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of ``path`` as displayed; raises ImageDecodeError.

    A JPEG over ``max_pixels`` comes back at reduced scale (see ``decode``).
    """
    return decode(path, max_pixels=max_pixels).pixels
