"""Checking videos we are sent and reading their capture facts, with PyAV (FFmpeg's demuxers).

Phones store a video's location three ways, and we read all three: Apple's mdta key
`com.apple.quicktime.location.ISO6709`, the 3GPP `loci` box (Android, some cameras) and the
QuickTime `©xyz` string. FFmpeg exposes the last two as `location` but rounds `loci` to four
decimals, so we read that box ourselves with a small MP4 box walker, which also gives the
rotation matrix of the video track and tells whether the file was cut short. Nothing here reads
more than a few kilobytes into memory at once.
"""

from __future__ import annotations

import math
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO

import av

from bot.errors import MediaRejected
from bot.i18n import N_
from bot.media.facts import camera_label, checked_location
from storage.records import MediaFacts

# Demuxers we let FFmpeg use on untrusted files. Everything else is refused before probing:
# no image2/jpeg_pipe "videos", no playlists (hls, concat) that would open other files or URLs.
_DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpeg,mpegts,flv,asf"
_OPEN_OPTIONS = {"format_whitelist": _DEMUXERS, "protocol_whitelist": "file"}
_SIMPLE_CONTAINERS = {
    "avi": ("avi", "video/x-msvideo"),
    "mpeg": ("mpeg", "video/mpeg"),
    "mpegts": ("mpegts", "video/mp2t"),
    "flv": ("flv", "video/x-flv"),
    "asf": ("wmv", "video/x-ms-wmv"),
}

_STILL_IMAGE_BRANDS = {
    "heic",
    "heix",
    "heim",
    "heis",
    "hevc",
    "hevx",
    "mif1",
    "msf1",
    "avif",
    "avis",
}

_APPLE_LOCATION = "com.apple.quicktime.location.ISO6709"
_APPLE_CREATED = "com.apple.quicktime.creationdate"
_MAKE_KEYS = ("com.apple.quicktime.make", "com.android.manufacturer")
_MODEL_KEYS = ("com.apple.quicktime.model", "com.android.model")

_ESSENTIAL_BOXES = {b"moov", b"mdat", b"moof", b"meta"}
_MAX_LEAF = 64 * 1024  # tkhd, hdlr and loci are tiny; a bigger one is not worth reading

_ISO6709 = re.compile(
    r"(?P<lat>[+-]\d{2}(?:\d{2}){0,2}(?:\.\d+)?)"
    r"(?P<lon>[+-]\d{3}(?:\d{2}){0,2}(?:\.\d+)?)"
    r"(?P<alt>[+-]\d+(?:\.\d+)?)?"
    r"(?:CRS[^/]*)?/?"
)

_CORRUPT = N_("This video looks damaged: I could not read it.")
_UNSUPPORTED = N_("This file is not a video I can take: please send an MP4 or MOV video.")


@dataclass(frozen=True)
class VideoInfo:
    """What opening a video tells: container, MIME type, duration and displayed size."""

    container: str
    mime_type: str
    duration: float | None
    width: int
    height: int
    has_video_stream: bool


@dataclass(frozen=True)
class _BoxFacts:
    """What the MP4 box walker found."""

    truncated: bool = False
    rotation: int = 0
    location: tuple[float, float, float | None] | None = None


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Check that a file is a readable video; raises MediaRejected ("corrupt"/"unsupported")."""
    with _open(path) as container:
        stream = _video_stream(container)
        if stream is None:
            raise MediaRejected(_UNSUPPORTED, reason="unsupported")
        kind, mime = _container_type(path, container)
        boxes = _walk_boxes(path) if kind in ("mp4", "mov", "3gp", "3g2") else _BoxFacts()
        if boxes.truncated:
            raise MediaRejected(_CORRUPT, reason="corrupt")
        width, height = _displayed_size(stream, boxes.rotation)
        if width <= 0 or height <= 0:
            raise MediaRejected(_CORRUPT, reason="corrupt")
        return VideoInfo(
            container=kind,
            mime_type=mime,
            duration=_duration(container, stream),
            width=width,
            height=height,
            has_video_stream=True,
        )


def read_video_facts(path: str | os.PathLike[str]) -> MediaFacts:
    """Read a video's capture facts: time, place, camera, displayed size and duration."""
    with _open(path) as container:
        tags = {key.lower(): value for key, value in container.metadata.items()}
        stream = _video_stream(container)
        is_mp4 = container.format.name.startswith("mov,")
        boxes = _walk_boxes(path) if is_mp4 else _BoxFacts()
        width, height = _displayed_size(stream, boxes.rotation) if stream else (None, None)
        duration = _duration(container, stream)
    taken_at = _creation_time(tags)
    location = _location(tags, boxes)
    latitude, longitude, altitude = location if location else (None, None, None)
    return MediaFacts(
        taken_at=taken_at,
        time_source="container" if taken_at else None,
        latitude=latitude,
        longitude=longitude,
        altitude=altitude,
        camera=camera_label(_first(tags, _MAKE_KEYS), _first(tags, _MODEL_KEYS)),
        width=width or None,
        height=height or None,
        duration=duration,
    )


def parse_iso6709(text: str) -> tuple[float, float, float | None] | None:
    """Latitude, longitude, altitude from ISO 6709 text such as "+32.0929+034.8620+028.516/"."""
    match = _ISO6709.fullmatch(text.strip())
    if match is None:
        return None
    latitude = _iso6709_angle(match.group("lat"), degree_digits=2)
    longitude = _iso6709_angle(match.group("lon"), degree_digits=3)
    altitude = float(match.group("alt")) if match.group("alt") else None
    return latitude, longitude, altitude


def _open(path: str | os.PathLike[str]) -> av.container.InputContainer:
    """Open a file with our demuxers only, turning FFmpeg's refusals into MediaRejected."""
    if os.stat(path).st_size == 0:  # a missing file is our bug, not the user's: let it raise
        raise MediaRejected(_CORRUPT, reason="corrupt")
    try:
        container = av.open(os.fspath(path), options=_OPEN_OPTIONS)
    except av.error.ArgumentError as exc:  # a format FFmpeg knows but we do not take
        raise MediaRejected(_UNSUPPORTED, reason="unsupported") from exc
    except (av.error.FFmpegError, OSError, ValueError, EOFError) as exc:
        # Unreadable: a damaged video if it starts like one, otherwise not a video at all.
        if _looks_like_video(path):
            raise MediaRejected(_CORRUPT, reason="corrupt") from exc
        raise MediaRejected(_UNSUPPORTED, reason="unsupported") from exc
    # FFmpeg's mov demuxer also opens HEIC and AVIF photos, as a 512x512 "video" of tiles.
    if container.metadata.get("major_brand", "").strip() in _STILL_IMAGE_BRANDS:
        container.close()
        raise MediaRejected(_UNSUPPORTED, reason="unsupported")
    return container


def _looks_like_video(path: str | os.PathLike[str]) -> bool:
    """Whether the file starts like one of the containers we take."""
    with open(path, "rb") as file:
        head = file.read(16)
    return (
        head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")
        or head.startswith((b"\x1a\x45\xdf\xa3", b"FLV", b"\x00\x00\x01\xba", b"\x30\x26\xb2\x75"))
        or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
    )


def _video_stream(container: av.container.InputContainer) -> av.VideoStream | None:
    """The first real video stream; a music file's cover picture does not count."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _container_type(
    path: str | os.PathLike[str], container: av.container.InputContainer
) -> tuple[str, str]:
    """A short container name and its MIME type, from the demuxer and the file's brand."""
    name = container.format.name
    if name.startswith("mov,"):
        brand = container.metadata.get("major_brand", "").strip()
        if brand == "qt" or not brand:
            return "mov", "video/quicktime"
        if brand.startswith("3g2"):
            return "3g2", "video/3gpp2"
        if brand.startswith("3g"):
            return "3gp", "video/3gpp"
        return "mp4", "video/mp4"
    if name.startswith("matroska"):
        with open(path, "rb") as file:
            head = file.read(64)
        return ("webm", "video/webm") if b"webm" in head else ("mkv", "video/x-matroska")
    if name in _SIMPLE_CONTAINERS:
        return _SIMPLE_CONTAINERS[name]
    raise MediaRejected(_UNSUPPORTED, reason="unsupported")


def _duration(
    container: av.container.InputContainer, stream: av.VideoStream | None
) -> float | None:
    """Length in seconds, from the container or else the video stream; None if unknown."""
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    if stream is not None and stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _displayed_size(stream: av.VideoStream, rotation: int) -> tuple[int, int]:
    """Width and height as a player shows them: a quarter turn swaps them."""
    width, height = stream.codec_context.width, stream.codec_context.height
    return (height, width) if rotation in (90, 270) else (width, height)


def _creation_time(tags: dict[str, str]) -> datetime | None:
    """Apple's local creation date (it has the offset), else the container's UTC time."""
    for key in (_APPLE_CREATED, "creation_time"):
        moment = _parse_time(tags.get(key))
        if moment is not None:
            return moment
    return None


def _parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 time from metadata ("2019-07-24T11:25:40+0300"); None if unusable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    # mvhd counts from 1904: a zero there comes out as 1904 or 1970, meaning "not set".
    return moment if moment.year > 1970 else None


def _location(tags: dict[str, str], boxes: _BoxFacts) -> tuple[float, float, float | None] | None:
    """The best location: Apple's key, then our own loci reading, then FFmpeg's string."""
    apple = tags.get(_APPLE_LOCATION.lower())
    candidates = [parse_iso6709(apple) if apple else None, boxes.location]
    candidates += [
        parse_iso6709(value) for key, value in tags.items() if key.startswith("location")
    ]
    for candidate in candidates:
        if candidate is not None:
            # (0, 0) is a placeholder: do not fall through to a less precise copy of it.
            return checked_location(*candidate)
    return None


def _iso6709_angle(text: str, degree_digits: int) -> float:
    """One ISO 6709 angle: ±DD.D, ±DDMM.M or ±DDMMSS.S (three degree digits for longitude)."""
    sign = -1.0 if text[0] == "-" else 1.0
    whole, _, fraction = text[1:].partition(".")
    fraction = f".{fraction}" if fraction else ""
    degrees = float(whole[:degree_digits])
    rest = whole[degree_digits:]
    if not rest:
        return sign * float(whole + fraction)
    if len(rest) == 2:
        return sign * (degrees + float(rest + fraction) / 60)
    return sign * (degrees + float(rest[:2]) / 60 + float(rest[2:] + fraction) / 3600)


def _first(tags: dict[str, str], keys: tuple[str, ...]) -> str | None:
    """The first of these metadata keys that is present."""
    return next((tags[key] for key in keys if tags.get(key)), None)


# --- the MP4 box walker (ISO/IEC 14496-12; loci from 3GPP TS 26.244) -------------------------


def _walk_boxes(path: str | os.PathLike[str]) -> _BoxFacts:
    """Scan an MP4/MOV file's boxes for truncation, the video track's rotation and loci."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        truncated = False
        rotation: int | None = None
        location = None
        for kind, start, end in _boxes(file, 0, size):
            if end > size:
                # The file stops inside this box: cut short. Only trust that for the boxes that
                # matter; anything else here is a vendor trailer (Samsung appends one), not a box.
                truncated = kind in _ESSENTIAL_BOXES
                break
            if kind != b"moov":
                continue
            for child, child_start, child_end in _boxes(file, start, end):
                if child == b"trak" and rotation is None:
                    rotation = _track_rotation(file, child_start, child_end)
                elif child == b"udta" and location is None:
                    loci = _child(file, child_start, child_end, b"loci")
                    location = _parse_loci(loci) if loci else None
    return _BoxFacts(truncated=truncated, rotation=rotation or 0, location=location)


def _boxes(file: IO[bytes], start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box between start and end, by seeking."""
    position = start
    while position + 8 <= end:
        file.seek(position)
        header = file.read(8)
        if len(header) < 8:
            return
        box_size, kind = struct.unpack(">I4s", header)
        payload = position + 8
        if box_size == 1:
            large = file.read(8)
            if len(large) < 8:
                return
            (box_size,) = struct.unpack(">Q", large)
            payload += 8
        elif box_size == 0:  # "extends to the end of its parent"
            box_size = end - position
        if box_size < payload - position:
            return  # nonsense size: stop here rather than loop
        yield kind, payload, position + box_size
        position += box_size


def _child(file: IO[bytes], start: int, end: int, wanted: bytes) -> bytes:
    """The payload of the first child box of this type (empty if absent or too large)."""
    for kind, payload, box_end in _boxes(file, start, end):
        if kind == wanted:
            return _read(file, payload, min(box_end, end))
    return b""


def _track_rotation(file: IO[bytes], start: int, end: int) -> int | None:
    """Clockwise display rotation (0, 90, 180, 270) of a video trak; None for other tracks."""
    mdia = next((box for box in _boxes(file, start, end) if box[0] == b"mdia"), None)
    handler = _child(file, mdia[1], min(mdia[2], end), b"hdlr") if mdia else b""
    if handler[8:12] != b"vide":  # handler type follows version/flags and pre_defined
        return None
    matrix = _tkhd_matrix(_child(file, start, end, b"tkhd"))
    if matrix is None:
        return 0
    a, b = matrix
    return round(math.degrees(math.atan2(b, a))) % 360


def _tkhd_matrix(data: bytes) -> tuple[float, float] | None:
    """The (a, b) cells of a tkhd's display matrix: enough to tell the rotation."""
    if not data:
        return None
    # version 1 has 64-bit times: matrix after 4+8+8+4+4+8 +8+2+2+2+2 bytes, version 0 after 4+4*5.
    offset = 52 if data[0] == 1 else 40
    if len(data) < offset + 8:
        return None
    a, b = struct.unpack_from(">ii", data, offset)
    return a / 65536, b / 65536


def _parse_loci(data: bytes) -> tuple[float, float, float | None] | None:
    """Latitude, longitude, altitude from a 3GPP loci payload (16.16 fixed-point numbers)."""
    # version/flags (4), pad + packed language (2), name (C string, UTF-8 or BOM'd UTF-16),
    # role (1), then longitude, latitude, altitude: longitude first.
    position = 6
    if data[position : position + 2] in (b"\xfe\xff", b"\xff\xfe"):
        while position + 1 < len(data) and data[position : position + 2] != b"\x00\x00":
            position += 2
        position += 2
    else:
        terminator = data.find(b"\x00", position)
        if terminator < 0:
            return None
        position = terminator + 1
    position += 1  # role
    if len(data) < position + 12:
        return None
    longitude, latitude, altitude = struct.unpack_from(">iii", data, position)
    return latitude / 65536, longitude / 65536, altitude / 65536


def _read(file: IO[bytes], start: int, end: int) -> bytes:
    """A small box payload; nothing for a box too large to be what we look for."""
    if end - start > _MAX_LEAF or end < start:
        return b""
    file.seek(start)
    return file.read(end - start)
