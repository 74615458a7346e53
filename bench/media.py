"""Test media made on the fly and cached under bench/.cache: photos of any size, a big video.

The photos are gradients, shapes and grain, so they compress like real photos rather than to
nothing (a 12 MP one is about 4 MB); each seed gives different bytes, so no two are duplicates
to the bot (it skips a file it already has) or to the File API uploads (keyed by content).
"""

from __future__ import annotations

import functools
import io
import os
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

CACHE = Path(__file__).resolve().parent / ".cache"
GENERATOR = 1  # bump when the pictures change, so old caches are not reused
DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
REAL_PHOTOS = sorted([*DATA.glob("*.jpg"), *DATA.glob("*.heic")])
REAL_VIDEOS = [DATA / "netherlands_ducks_with_gps.mp4", DATA / "israel_iphone6_with_gps.mov"]


@dataclass(frozen=True)
class PhotoKind:
    """How a set of generated photos looks."""

    width: int
    height: int
    quality: int
    grain: float
    camera_exif: bool  # photos "sent as files" keep a camera's EXIF (time, place, model)

    @property
    def folder(self) -> str:
        exif = "exif" if self.camera_exif else "plain"
        return f"photos-g{GENERATOR}-{self.width}x{self.height}-q{self.quality}-{exif}"


# What Telegram makes of a photo sent "compressed": 1280 px, no EXIF, ~250 KB.
COMPRESSED = PhotoKind(1280, 960, 85, 5.0, camera_exif=False)
# A phone camera's 12 MP JPEG sent as a file: ~4 MB with EXIF.
TWELVE_MP = PhotoKind(4000, 3000, 90, 10.0, camera_exif=True)
# The quick run's stand-in for it.
TWO_MP = PhotoKind(1600, 1200, 90, 8.0, camera_exif=True)


def photos(kind: PhotoKind, count: int, first: int = 0) -> list[bytes]:
    """`count` distinct photos of this kind (seeds first..first+count-1), generated once."""
    folder = CACHE / kind.folder
    folder.mkdir(parents=True, exist_ok=True)
    result = []
    for seed in range(first, first + count):
        path = folder / f"{seed:05d}.jpg"
        if not path.is_file():
            temp = _temp(path)
            temp.write_bytes(_photo(kind, seed))
            temp.replace(path)
        result.append(path.read_bytes())
    return result


def video(seconds: int, size_bytes: int) -> bytes:
    """An MP4 of noise frames (640x360, 30 fps) of exactly `size_bytes`, generated once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"video-g{GENERATOR}-{seconds}s-{size_bytes}.mp4"
    if not path.is_file():
        temp = _temp(path)
        share = 0.9
        while True:  # the first key frame can overshoot a short clip's bitrate: aim lower
            _encode_noise(temp, seconds, int(size_bytes * 8 / seconds * share))
            data = temp.read_bytes()
            if len(data) <= size_bytes - 8:
                break
            share *= 0.85
        # Pad to the exact size with a top-level `free` box, which every MP4 reader skips.
        pad = size_bytes - len(data)
        if pad:
            if pad < 8:
                raise RuntimeError("cannot pad by fewer than 8 bytes")
            data += struct.pack(">I4s", pad, b"free") + bytes(pad - 8)
        temp.write_bytes(data)
        temp.replace(path)
    return path.read_bytes()


def _temp(path: Path) -> Path:
    """Where this process writes `path` before renaming it into place: two benchmark runs in
    one checkout may make the same file at once (the last rename wins, both are whole)."""
    return path.with_suffix(f".{os.getpid()}.part")


def _photo(kind: PhotoKind, seed: int) -> bytes:
    rng = np.random.default_rng([GENERATOR, kind.width, seed])
    w, h = kind.width, kind.height
    # Soft light: a few colours blended over the frame, like sky, ground and shade.
    small = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = Image.fromarray(small, "RGB").resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(24):  # things in the scene
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(w // 40, w // 6))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        box = [x, y, x + r, y + r * 2 // 3]
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    # Sensor grain: what keeps a real photo from compressing to nothing. One grain field per
    # kind, shifted per seed, is as good for the encoder and much faster than a fresh one.
    shift = (int(rng.integers(0, h)), int(rng.integers(0, w)))
    pixels = np.asarray(image, dtype=np.int16) + np.roll(_grain(kind), shift, axis=(0, 1))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    if kind.camera_exif:
        image.save(buffer, "JPEG", quality=kind.quality, exif=_camera_exif(seed))
    else:
        image.save(buffer, "JPEG", quality=kind.quality)
    return buffer.getvalue()


@functools.cache
def _grain(kind: PhotoKind) -> np.ndarray:
    rng = np.random.default_rng([GENERATOR, kind.width, kind.height])
    noise = rng.standard_normal((kind.height, kind.width, 1), dtype=np.float32) * kind.grain
    return noise.astype(np.int16)


def _camera_exif(seed: int) -> Image.Exif:
    """A phone's EXIF: maker, model, time taken and a GPS position around Lisbon."""
    exif = Image.Exif()
    exif[0x010F] = "Benchmark"
    exif[0x0110] = "Phone 12"
    moment = datetime(2025, 5, 1, 9, 0) + timedelta(minutes=7 * seed)
    stamp = moment.strftime("%Y:%m:%d %H:%M:%S")
    exif[0x0132] = stamp
    exif.get_ifd(0x8769)[0x9003] = stamp  # DateTimeOriginal
    gps = exif.get_ifd(0x8825)
    lat = 38.70 + (seed % 20) * 0.002
    lon = 9.14 + (seed % 13) * 0.002
    gps[1], gps[2] = "N", _dms(lat)
    gps[3], gps[4] = "W", _dms(lon)
    return exif


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600, 2)
    return (float(degrees), float(minutes), seconds)


def _encode_noise(path: Path, seconds: int, bitrate: int, fps: int = 30) -> None:
    rng = np.random.default_rng([GENERATOR, seconds])
    frames = [rng.integers(0, 256, (360, 640, 3), dtype=np.uint8) for _ in range(15)]
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.bit_rate = bitrate
        stream.options = {"preset": "ultrafast", "maxrate": str(bitrate), "bufsize": str(bitrate)}
        for index in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(frames[index % len(frames)], format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
