"""Safe decoding: every awkward file either decodes to the right RGB pixels or
raises ImageDecodeError with a reason, never anything else."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from augment.data.images import ImageDecodeError, decode, load_rgb
from tests.image_files import flat_png


def _noise_jpeg(path: Path, w=64, h=48) -> bytes:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, quality=90)
    return path.read_bytes()


def test_plain_rgb_jpeg(tmp_path):
    p = tmp_path / "a.jpg"
    _noise_jpeg(p)
    img = decode(p)
    assert img.pixels.shape == (48, 64, 3) and img.pixels.dtype == np.uint8
    assert img.source_size == (64, 48) and img.scale == (1.0, 1.0)


def test_truncated_jpeg_is_unreadable(tmp_path):
    p = tmp_path / "t.jpg"
    data = _noise_jpeg(p)
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError) as e:
        decode(p)
    assert e.value.reason == "unreadable" and "t.jpg" in str(e.value)


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageDecodeError) as e:
        decode(p)
    assert e.value.reason == "unreadable" and "empty" in e.value.detail


def test_text_file_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a picture\n" * 20)
    with pytest.raises(ImageDecodeError) as e:
        decode(p)
    assert e.value.reason == "unreadable" and "not an image" in e.value.detail


def test_missing_file(tmp_path):
    with pytest.raises(ImageDecodeError) as e:
        decode(tmp_path / "nope.png")
    assert e.value.reason == "unreadable" and "not found" in e.value.detail


def test_rgba_png_is_composited_on_white(tmp_path):
    a = np.zeros((4, 4, 4), np.uint8)
    a[0, 0] = (0, 0, 0, 0)  # fully transparent black -> background
    a[0, 1] = (255, 0, 0, 255)  # opaque red
    a[0, 2] = (0, 0, 255, 128)  # half-transparent blue
    p = tmp_path / "rgba.png"
    Image.fromarray(a, "RGBA").save(p)
    px = load_rgb(p)
    assert px.shape == (4, 4, 3)
    assert tuple(px[0, 0]) == (255, 255, 255)
    assert tuple(px[0, 1]) == (255, 0, 0)
    assert abs(int(px[0, 2, 0]) - 127) <= 2 and px[0, 2, 2] == 255


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (4, 4), 0)
    im.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    im.putpixel((1, 1), 1)
    p = tmp_path / "p.png"
    im.save(p, transparency=0)
    px = load_rgb(p)
    assert tuple(px[0, 0]) == (255, 255, 255) and tuple(px[1, 1]) == (0, 255, 0)


def test_grayscale_png(tmp_path):
    g = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    p = tmp_path / "g.png"
    Image.fromarray(g, "L").save(p)
    px = load_rgb(p)
    assert px.shape == (4, 4, 3)
    assert (px[..., 0] == g).all() and (px[..., 1] == g).all() and (px[..., 2] == g).all()


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(p, quality=95)  # pure red in CMYK
    assert Image.open(p).mode == "CMYK"
    px = load_rgb(p)
    assert px.shape == (16, 16, 3)
    r, g, b = px[8, 8].astype(int)
    assert r > 230 and g < 25 and b < 25


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    v = np.array([[0, 257 * 100, 32768, 65535]], dtype=np.uint16)
    p = tmp_path / "g16.png"
    assert cv2.imwrite(str(p), v)  # a real 16-bit grayscale PNG
    assert Image.open(p).mode.startswith("I")
    px = load_rgb(p)
    assert px[0, :, 0].tolist() == [0, 100, 128, 255]
    assert (px[..., 0] == px[..., 2]).all()


def test_exif_rotated_photo_is_shown_upright(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = (255, 0, 0)  # left half red
    a[:, 20:] = (0, 0, 255)  # right half blue
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif, quality=95)
    img = decode(p)
    assert img.pixels.shape == (40, 20, 3) and img.source_size == (20, 40)
    top, bottom = img.pixels[5, 10].astype(int), img.pixels[35, 10].astype(int)
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60



def test_12000_square_png_is_rejected_before_decoding(tmp_path, monkeypatch):
    p = tmp_path / "huge.png"
    flat_png(p, 12000, 12000)
    assert p.stat().st_size < 2_000_000  # the file is small; its pixels would be 432 MB

    def no_decoding(self):
        raise AssertionError("pixels of an over-limit image must not be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageDecodeError) as e:
        decode(p)
    assert e.value.reason == "too_large" and "12000x12000" in e.value.detail


def test_flat_png_writer_makes_a_valid_image(tmp_path):
    p = tmp_path / "small.png"
    flat_png(p, 30, 20)
    px = load_rgb(p)
    assert px.shape == (20, 30, 3) and (px == 128).all()


def test_jpeg_over_the_limit_is_decoded_at_reduced_scale(tmp_path):
    p = tmp_path / "big.jpg"
    a = np.zeros((600, 800, 3), np.uint8)
    a[:, 400:] = 255
    Image.fromarray(a).save(p, quality=95)
    img = decode(p, max_pixels=200_000)  # 480k px > 200k: libjpeg decodes at 1/2
    assert img.pixels.shape == (300, 400, 3)
    assert img.source_size == (800, 600) and img.scale == (2.0, 2.0)
    assert img.pixels[150, 100].max() < 30 and img.pixels[150, 300].min() > 225
    with pytest.raises(ImageDecodeError) as e:
        decode(p, max_pixels=1_000)  # even 1/8 (100x75) is too many
    assert e.value.reason == "too_large"


def test_png_over_the_limit_is_refused(tmp_path):
    p = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(p)
    with pytest.raises(ImageDecodeError) as e:
        decode(p, max_pixels=5_000)
    assert e.value.reason == "too_large"


def test_truncated_png(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    p = tmp_path / "cut.png"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageDecodeError) as e:
        decode(p)
    assert e.value.reason == "unreadable" and "truncated" in e.value.detail
