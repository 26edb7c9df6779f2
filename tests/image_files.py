"""Image files the tests build by hand."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def flat_png(path: Path, w: int, h: int) -> None:
    """A flat grey w x h PNG written row by row: a few hundred KB on disk for
    12000 x 12000 (w*h*3 bytes once decoded), never held in memory as pixels."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(1)
    row = b"\x00" + b"\x80" * w  # filter byte + w grey pixels
    body = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                           + chunk(b"IDAT", body) + chunk(b"IEND", b""))
