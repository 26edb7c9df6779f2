"""augment.io: safe reads naming the file, exact tensor conversions, PNG bytes, atomic writes."""

from __future__ import annotations

import errno
import io
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from augment import io as aio
from augment import fs as afs
from augment.data.errors import DatasetError
from augment.runtime import torch_threads


def _pixels(h=12, w=10, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_read_rgb_returns_the_pixels_and_names_a_bad_file(tmp_path):
    img = _pixels()
    Image.fromarray(img).save(tmp_path / "a.png")
    np.testing.assert_array_equal(aio.read_rgb(tmp_path / "a.png"), img)
    assert aio.read_rgb(tmp_path / "a.png", 6).shape == (6, 6, 3)
    assert aio.read_rgb(tmp_path / "a.png", 0).shape == img.shape  # 0 / None: as stored
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    for name, why in (("missing.png", "file not found"), ("junk.png", "not an image")):
        with pytest.raises(DatasetError, match=why) as e:
            aio.read_rgb(tmp_path / name)
        assert str(tmp_path / name) in str(e.value)


def test_read_rgb_keeps_the_decompression_bomb_limit(tmp_path):
    Image.fromarray(_pixels(40, 40)).save(tmp_path / "big.png")
    with pytest.raises(DatasetError, match="too large"):
        aio.read_rgb(tmp_path / "big.png", max_pixels=1000)


def test_read_mask_is_one_where_any_channel_is_nonzero(tmp_path):
    m = np.zeros((4, 5), np.uint8)
    m[1, 2] = 255
    m[3, 0] = 1
    Image.fromarray(m).save(tmp_path / "m.png")
    want = (m > 0).astype(np.float32)
    np.testing.assert_array_equal(aio.read_mask(tmp_path / "m.png"), want)


def test_tensor_conversions_are_exact_inverses():
    img = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    x = aio.to_tensor(img)
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() == 1
    back = aio.to_uint8(x[None])
    assert back.shape == (1, 16, 16, 3) and back.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(back[0], img)
    batch = aio.to_tensor(np.stack([img, img[::-1]]))
    assert batch.shape == (2, 3, 16, 16) and batch.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(batch[0], x) and torch.equal(batch[1], aio.to_tensor(img[::-1]))
    # out of range values are clamped, halves round to the nearest even
    assert aio.to_uint8(torch.tensor([-3.0, 3.0, 1 / 255 - 1]).reshape(1, 3, 1, 1)).ravel().tolist() == [0, 255, 0]


def test_png_bytes_are_pillows_and_opencvs_own(tmp_path):
    img = _pixels()
    ref = io.BytesIO()
    Image.fromarray(img).save(ref, format="PNG")  # Pillow's defaults: what sample grids were written with
    assert aio.png_bytes(img) == ref.getvalue()
    ref1 = io.BytesIO()
    Image.fromarray(img).save(ref1, format="PNG", compress_level=1)
    assert aio.png_bytes(img, 1) == ref1.getvalue()
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    assert ok and aio.cv2_bytes(img) == buf.tobytes()
    digest = aio.save_png(img, tmp_path / "sub" / "a.png", 1)
    assert (tmp_path / "sub" / "a.png").read_bytes() == ref1.getvalue()
    import hashlib

    assert digest == hashlib.sha256(ref1.getvalue()).hexdigest()


def test_atomic_writes_fsync_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", os.path.basename(a))),
                                                     real_replace(a, b))[1])
    afs.write_bytes(tmp_path / "a.bin", b"\x00\x01")
    afs.write_text(tmp_path / "b.txt", "héllo\n")
    afs.write_json(tmp_path / "c.json", {"b": 1, "a": [1, 2]})
    afs.write_json(tmp_path / "d.json", {"b": 1, "a": 2}, indent=None, sort_keys=False, newline=True)
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "c.json").read_text() == json.dumps({"b": 1, "a": [1, 2]}, indent=2, sort_keys=True)
    assert (tmp_path / "d.json").read_text() == '{"b": 1, "a": 2}\n'
    pid = os.getpid()
    assert events == [e for name in ("a.bin", "b.txt", "c.json", "d.json")
                      for e in ("fsync", ("replace", f".{name}.tmp-{pid}"))]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.txt", "c.json", "d.json"]


def test_a_failed_write_keeps_the_old_file_removes_its_temporary_and_names_the_file(tmp_path):
    path = tmp_path / "a.json"
    afs.write_json(path, {"v": 1})

    def full_disk(tmp):
        tmp.write_text("partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # a write() error: no file name

    with pytest.raises(OSError) as e:
        afs.write_atomic(path, full_disk)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(path)
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_write_atomic_gives_the_writer_a_name_with_the_suffix(tmp_path):
    seen = []
    afs.write_atomic(tmp_path / "roc.png", lambda tmp: (seen.append(tmp.name), tmp.write_bytes(b"x")), suffix=".png")
    assert seen == [f".roc.png.tmp-{os.getpid()}.png"] and (tmp_path / "roc.png").read_bytes() == b"x"


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)  # changed inside: still restored
    assert torch.get_num_threads() == before
    with torch_threads(0):  # 0: left alone
        assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError
    assert torch.get_num_threads() == before
