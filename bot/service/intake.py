"""Turning a downloaded file into album material: checks, metadata, the model's copy.

Everything here is blocking (decoding, hashing): callers run it in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from bot.errors import MediaRejected
from bot.i18n import N_
from bot.media.audio import MODEL_COPY_MIME, encode_for_model, probe_audio
from bot.media.exif import read_photo_facts
from bot.media.images import check_decodes, prepare_for_model, probe_image
from bot.media.places import nearest_place
from bot.media.video import probe_video, read_video_facts
from storage.protocols import BlobStore
from storage.records import Blob, Media, MediaFacts, Origin

# Containers Gemini reads, by the type PyAV reports; anything else is refused politely.
VIDEO_MIME_BY_CONTAINER = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "3gp": "video/3gpp",
    "webm": "video/webm",
    "m4v": "video/mp4",
}


@dataclass(frozen=True)
class PhotoLimits:
    """How big the model's copy of a photo may be, and what an acceptable image is."""

    max_side: int
    max_bytes: int
    max_pixels: int


def process_photo(temp: Path, blobs: BlobStore, limits: PhotoLimits, origin: Origin) -> Media:
    """Check an image (decoding it), read its metadata and store it.

    The model's small copy is not made here: that is most of the CPU a photo costs, and a
    photo that decodes can always be shrunk, so it is made after the acknowledgement
    (`model_picture`, run by ModelCopies).
    """
    try:
        info = probe_image(temp, max_pixels=limits.max_pixels)
        check_decodes(temp, max_side=limits.max_side, max_pixels=limits.max_pixels)
        facts = _with_place(read_photo_facts(temp))
        sha, size = blobs.adopt(temp)
    finally:
        temp.unlink(missing_ok=True)
    source = Blob(sha, size, info.mime_type)
    # The model sees the original until its copy is made.
    return Media("photo", source, source, origin, facts, model_ready=False)


def model_picture(source: Path, limits: PhotoLimits) -> bytes:
    """The upright, downscaled JPEG the model sees of a photo (stored by the caller)."""
    prepared = prepare_for_model(
        source, max_side=limits.max_side, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels
    )
    return prepared.jpeg


_VIDEO_FORMAT = N_("This video format is not one Gemini reads. Please send MP4, MOV, 3GP or WebM.")


def process_video(temp: Path, blobs: BlobStore, origin: Origin) -> Media:
    """Check a video, read its container metadata and store it; the model gets the file itself."""
    try:
        info = probe_video(temp)
        mime = info.mime_type or origin.mime_type or "video/mp4"
        if mime not in VIDEO_MIME_BY_CONTAINER.values():
            # Made in a worker thread: an English constant, translated where it is said.
            raise MediaRejected(_VIDEO_FORMAT, reason="unsupported")
        facts = _with_place(read_video_facts(temp))
        sha, size = blobs.adopt(temp)
    finally:
        temp.unlink(missing_ok=True)
    source = Blob(sha, size, mime)
    return Media("video", source, source, origin, facts)


def process_audio(temp: Path, blobs: BlobStore, origin: Origin) -> Media:
    """Check a voice note or audio file (it must decode and not be silent) and store it.

    Gemini hears the file itself when it takes the type; anything else gets a small Ogg/Opus
    copy, made here (a minute of audio takes a fraction of a second).
    """
    copy: bytes | None = None
    try:
        info = probe_audio(temp)
        if info.mime_type is None:
            copy = encode_for_model(temp)
        sha, size = blobs.adopt(temp)
    finally:
        temp.unlink(missing_ok=True)
    source = Blob(sha, size, info.mime_type or origin.mime_type or "application/octet-stream")
    model = source
    if copy is not None:
        copy_sha, copy_size = blobs.put_bytes(copy)
        model = Blob(copy_sha, copy_size, MODEL_COPY_MIME)
    facts = MediaFacts(
        taken_at=info.taken_at,
        time_source="container" if info.taken_at else None,
        duration=info.duration,
    )
    return Media("audio", source, model, origin, facts)


def _with_place(facts: MediaFacts) -> MediaFacts:
    """The facts with the nearest town to their coordinates, if they have any."""
    if not facts.has_location():
        return facts
    assert facts.latitude is not None and facts.longitude is not None
    place = nearest_place(facts.latitude, facts.longitude)
    return replace(facts, place=place.label()) if place else facts
