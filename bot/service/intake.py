"""Turning a downloaded file into album material: checks, metadata, the model's copy.

Everything here is blocking (decoding, hashing): callers run it in a worker thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.errors import MediaRejected
from bot.media.exif import read_photo_facts
from bot.media.facts import MediaFacts
from bot.media.images import check_decodes, prepare_for_model, probe_image
from bot.media.places import nearest_place
from bot.media.video import probe_video, read_video_facts
from storage.blobs import BlobStore

# Containers Gemini reads, by the type PyAV reports; anything else is refused politely.
VIDEO_MIME_BY_CONTAINER = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "3gp": "video/3gpp",
    "webm": "video/webm",
    "m4v": "video/mp4",
}


@dataclass(frozen=True)
class Processed:
    """A file ready to be recorded: its blobs and what was read from it."""

    kind: str
    source_sha256: str
    source_size: int
    source_mime: str
    model_sha256: str
    model_size: int
    model_mime_type: str
    facts: MediaFacts
    place: str | None
    model_ready: bool = True


@dataclass(frozen=True)
class PhotoLimits:
    """How big the model's copy of a photo may be, and what an acceptable image is."""

    max_side: int
    max_bytes: int
    max_pixels: int


def process_photo(temp: Path, blobs: BlobStore, limits: PhotoLimits) -> Processed:
    """Check an image (decoding it), read its metadata and store it.

    The model's small copy is not made here: that is most of the CPU a photo costs, and a
    photo that decodes can always be shrunk, so it is made after the acknowledgement
    (`make_model_copy`, run by ModelCopies).
    """
    try:
        info = probe_image(temp, max_pixels=limits.max_pixels)
        check_decodes(temp, max_side=limits.max_side, max_pixels=limits.max_pixels)
        facts = read_photo_facts(temp)
        place = _place(facts)
        source_sha, source_size = blobs.adopt(temp)
    finally:
        temp.unlink(missing_ok=True)
    return Processed(
        kind="photo",
        source_sha256=source_sha,
        source_size=source_size,
        source_mime=info.mime_type,
        model_sha256=source_sha,  # until the copy is made
        model_size=source_size,
        model_mime_type=info.mime_type,
        facts=facts,
        place=place,
        model_ready=False,
    )


def make_model_copy(source: Path, blobs: BlobStore, limits: PhotoLimits) -> tuple[str, int]:
    """The upright, downscaled JPEG the model sees, stored as a blob: (sha256, size)."""
    prepared = prepare_for_model(
        source, max_side=limits.max_side, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels
    )
    return blobs.put_bytes(prepared.jpeg)


def process_video(temp: Path, blobs: BlobStore, declared_mime: str | None) -> Processed:
    """Check a video, read its container metadata and store it; the model gets the file itself."""
    try:
        info = probe_video(temp)
        mime = info.mime_type or declared_mime or "video/mp4"
        if mime not in VIDEO_MIME_BY_CONTAINER.values():
            raise MediaRejected(
                "This video format is not one Gemini reads. Please send MP4, MOV, 3GP or WebM.",
                reason="unsupported",
            )
        facts = read_video_facts(temp)
        place = _place(facts)
        sha, size = blobs.adopt(temp)
    finally:
        temp.unlink(missing_ok=True)
    return Processed(
        kind="video",
        source_sha256=sha,
        source_size=size,
        source_mime=mime,
        model_sha256=sha,
        model_size=size,
        model_mime_type=mime,
        facts=facts,
        place=place,
    )


def _place(facts: MediaFacts) -> str | None:
    if not facts.has_location() or facts.latitude is None or facts.longitude is None:
        return None
    if not (math.isfinite(facts.latitude) and math.isfinite(facts.longitude)):
        return None
    place = nearest_place(facts.latitude, facts.longitude)
    return place.label() if place else None


def iso(moment: datetime | None) -> str | None:
    """A datetime as stored (ISO 8601, offset kept when known)."""
    return moment.isoformat(timespec="seconds") if moment else None
