"""Audio fixtures made with PyAV: a spoken-length tone in the formats phones send, and bad ones."""

from __future__ import annotations

import io
import math
from array import array

import av

RATE = 48_000


def tone(
    seconds: float = 1.5,
    *,
    container: str = "ogg",
    codec: str = "libopus",
    rate: int = RATE,
    amplitude: float = 0.3,
) -> bytes:
    """A 440 Hz tone (amplitude 0 makes it silent) encoded as `codec` in `container`."""
    out = io.BytesIO()
    with av.open(out, "w", format=container) as target:
        stream = target.add_stream(codec, rate=rate, layout="mono")
        fmt = stream.codec_context.codec.audio_formats[0].name
        step = 960
        total = int(seconds * rate)
        for start in range(0, total, step):
            n = min(step, total - start)
            samples = array(
                "h",
                (
                    int(32767 * amplitude * math.sin(2 * math.pi * 440 * (start + i) / rate))
                    for i in range(n)
                ),
            )
            frame = av.AudioFrame(format="s16", layout="mono", samples=n)
            frame.planes[0].update(samples.tobytes())
            frame.sample_rate = rate
            frame.pts = start
            resampler = av.AudioResampler(format=fmt, layout="mono", rate=rate)
            for converted in resampler.resample(frame):
                for packet in stream.encode(converted):
                    target.mux(packet)
        for packet in stream.encode(None):
            target.mux(packet)
    return out.getvalue()


def voice_note(seconds: float = 1.5) -> bytes:
    """What Telegram records: Ogg/Opus, mono."""
    return tone(seconds)


def m4a(seconds: float = 1.5) -> bytes:
    """An iPhone voice memo's kind of file: AAC in an MP4 (M4A) container."""
    return tone(seconds, container="ipod", codec="aac", rate=44_100)


def mp3(seconds: float = 1.5) -> bytes:
    """An MP3 file."""
    return tone(seconds, container="mp3", codec="libmp3lame", rate=44_100)


def silent_voice_note(seconds: float = 1.5) -> bytes:
    """A voice note of nothing: a muted microphone."""
    return tone(seconds, amplitude=0.0)


def pdf() -> bytes:
    """A small PDF, to be sent with an audio file's name."""
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
