"""Image fixtures made with Pillow: distinct synthetic photos, and a PNG that lies about its size."""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Mapping
from typing import Any

from PIL import Image, ImageDraw


def jpeg(
    seed: int, size: tuple[int, int] = (640, 480), exif: Mapping[int, Any] | None = None
) -> bytes:
    """A distinct synthetic photo (different seed, different bytes)."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.rectangle([x, y, x + rng.randrange(20, 200), y + rng.randrange(20, 200)], fill=colour)
    buffer = io.BytesIO()
    if exif:
        info = Image.Exif()
        for key, value in exif.items():
            info[key] = value
        image.save(buffer, "JPEG", quality=85, exif=info)
    else:
        image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header claims `width` x `height` pixels (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )
