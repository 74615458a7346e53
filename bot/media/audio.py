"""Checking voice notes and audio files with PyAV, and making the model's copy where needed.

A file is taken when FFmpeg opens it with one of our demuxers, it has an audio stream, it lasts
more than a moment, and it is not silent. "Silent" means no decoded sample reaches
`SILENCE_PEAK` (-60 dBFS, a thousandth of full scale) anywhere in the file: a microphone in a
quiet room still picks up more than that, a recording of nothing (muted, or a dead microphone)
does not. Decoding stops at the first sample above it, so a normal recording costs a fraction of
a second; only a silent one is decoded to the end (at most 20 MB of it).

Gemini reads WAV, MP3, AIFF, AAC (ADTS), Ogg and FLAC. Those are sent as they are; anything else
that decodes (an iPhone's M4A, WebM, AMR...) is re-encoded to a small Ogg/Opus file.
"""

from __future__ import annotations

import io
import os
from array import array
from dataclasses import dataclass
from datetime import datetime

import av

from bot.errors import MediaRejected
from bot.i18n import N_

_DEMUXERS = "ogg,mp3,wav,aiff,aac,flac,mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,amr,asf"
_OPEN_OPTIONS = {"format_whitelist": _DEMUXERS, "protocol_whitelist": "file"}

# What Gemini takes as it is, by the demuxer FFmpeg picked.
MIME_BY_DEMUXER = {
    "ogg": "audio/ogg",
    "mp3": "audio/mp3",
    "wav": "audio/wav",
    "aiff": "audio/aiff",
    "aac": "audio/aac",
    "flac": "audio/flac",
}
MODEL_COPY_MIME = "audio/ogg"

SILENCE_PEAK = 0.001  # -60 dBFS
MIN_DURATION = 0.3  # seconds: shorter is a slip of the thumb, not something said
_OPUS_BITRATE = 32_000  # plenty for speech; Gemini downsamples audio to 16 kbps anyway
_OPUS_RATE = 48_000

_UNREADABLE = N_(
    "I could not read this as audio: it may be damaged, or not a sound file at all. "
    "Please record it again, or send an MP3, M4A or OGG file."
)
_NO_SOUND = N_("This recording has no sound in it (it is silent), so there is nothing to hear.")
_TOO_SHORT = N_("This recording is too short to hold anything. Please record it again.")


@dataclass(frozen=True)
class AudioInfo:
    """What opening and listening to an audio file tells."""

    demuxer: str
    codec: str
    duration: float
    mime_type: str | None  # the type Gemini takes it as; None when it must be re-encoded
    taken_at: datetime | None  # a recorder's own creation time, when the container has one


def probe_audio(path: str | os.PathLike[str]) -> AudioInfo:
    """Check that a file is audible audio; raises MediaRejected with a sentence for the user."""
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaRejected(_UNREADABLE, reason="unsupported")
        stream = container.streams.audio[0]
        demuxer = container.format.name.split(",")[0]
        codec = stream.codec_context.name
        tags = {key.lower(): value for key, value in container.metadata.items()}
        known = _duration(container, stream)
        peak, decoded = _loudest(container, stream, to_the_end=known is None)
        duration = known or decoded
    if decoded <= 0:
        raise MediaRejected(_UNREADABLE, reason="corrupt")
    if duration < MIN_DURATION:
        raise MediaRejected(_TOO_SHORT, reason="too_short")
    if peak < SILENCE_PEAK:
        raise MediaRejected(_NO_SOUND, reason="silent")
    mime = MIME_BY_DEMUXER.get(demuxer)
    return AudioInfo(demuxer, codec, duration, mime, _created(tags.get("creation_time")))


def encode_for_model(path: str | os.PathLike[str]) -> bytes:
    """The audio re-encoded as mono Ogg/Opus at speech quality, for a type Gemini does not take."""
    out = io.BytesIO()
    with _open(path) as source, av.open(out, "w", format="ogg") as target:
        stream = target.add_stream("libopus", rate=_OPUS_RATE, layout="mono")
        stream.bit_rate = _OPUS_BITRATE
        resampler = av.AudioResampler(format="s16", layout="mono", rate=_OPUS_RATE)
        for frame in source.decode(source.streams.audio[0]):
            for resampled in resampler.resample(frame):
                target.mux(stream.encode(resampled))
        for resampled in resampler.resample(None):
            target.mux(stream.encode(resampled))
        target.mux(stream.encode(None))
    return out.getvalue()


def _open(path: str | os.PathLike[str]) -> av.container.InputContainer:
    """Open a file with our demuxers only; FFmpeg's refusals become MediaRejected."""
    try:
        return av.open(os.fspath(path), options=_OPEN_OPTIONS)
    except (av.error.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise MediaRejected(_UNREADABLE, reason="unsupported") from exc


def _loudest(
    container: av.container.InputContainer, stream: av.AudioStream, *, to_the_end: bool
) -> tuple[float, float]:
    """The peak sample (0..1 of full scale), up to the first audible one, and seconds decoded
    (`to_the_end` when the container does not say how long it is: then decoding tells)."""
    resampler = av.AudioResampler(format="s16", layout="mono")
    peak, seconds = 0.0, 0.0
    try:
        for frame in container.decode(stream):
            seconds += frame.samples / (frame.sample_rate or 1)
            for mono in resampler.resample(frame):
                samples = array("h", bytes(mono.planes[0])[: mono.samples * 2])
                if samples:
                    peak = max(peak, max(max(samples), -min(samples)) / 32768)
            if peak >= SILENCE_PEAK and not to_the_end:
                break  # audible: no need to decode the rest
    except (av.error.FFmpegError, ValueError, EOFError) as exc:
        if seconds <= 0:
            raise MediaRejected(_UNREADABLE, reason="corrupt") from exc
        # A damaged tail after sound that played is a recording cut short: keep what plays.
    return peak, seconds


def _duration(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    if container.duration is not None and container.duration > 0:
        return float(container.duration / av.time_base)
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _created(text: str | None) -> datetime | None:
    """A container's creation time ("2026-05-02T14:05:00.000000Z"); None if unusable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.year > 1970 else None
