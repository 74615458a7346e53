"""Videos: capture facts of three real phone clips (three location encodings), bad input."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

import av
import pytest

from bot.errors import MediaRejected
from bot.media.video import parse_iso6709, probe_video, read_video_facts

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Expected:
    file: str
    duration: float
    taken_at: datetime
    location: tuple[float, float, float] | None
    camera: str | None
    size: tuple[int, int]  # as displayed
    container: str
    mime_type: str


VIDEOS = [
    Expected(
        "israel_iphone6_with_gps.mov",
        4.0,
        # Apple's creationdate keeps the local time and offset; mvhd says 08:25:57Z.
        datetime(2019, 7, 24, 11, 25, 40, tzinfo=timezone(timedelta(hours=3))),
        (32.0929, 34.8620, 28.516),  # Apple mdta key, ISO 6709
        "Apple iPhone 6",
        (320, 568),  # coded 568x320, rotated 90 degrees
        "mov",
        "video/quicktime",
    ),
    Expected(
        "netherlands_ducks_with_gps.mp4",
        3.635,
        datetime(2020, 11, 20, 14, 4, 36, tzinfo=UTC),
        (52.36929, 6.67609, 10.5),  # 3GPP loci box (FFmpeg would round it to 52.3693)
        None,
        (1280, 720),
        "mp4",
        "video/mp4",
    ),
    Expected(
        "android_3gp5_null_island_rotate90.mp4",
        1.32,
        datetime(2020, 10, 23, 20, 27, 29, tzinfo=UTC),
        None,  # ©xyz says +00.0000+000.0000/: no fix, not a place
        None,
        (720, 1280),  # coded 1280x720, rotated 90 degrees; moov at the end of the file
        "3gp",
        "video/3gpp",
    ),
]


@pytest.mark.parametrize("video", VIDEOS, ids=lambda video: video.file)
def test_real_video_facts_match_the_manifest(video: Expected) -> None:
    facts = read_video_facts(DATA / video.file)

    assert facts.duration == pytest.approx(video.duration, abs=0.05)
    assert facts.taken_at == video.taken_at
    assert facts.taken_at is not None
    assert facts.taken_at.utcoffset() == video.taken_at.utcoffset()
    assert facts.time_source == "container"
    assert facts.camera == video.camera
    assert (facts.width, facts.height) == video.size
    if video.location is None:
        assert not facts.has_location()
        assert (facts.latitude, facts.longitude, facts.altitude) == (None, None, None)
    else:
        latitude, longitude, altitude = video.location
        assert facts.has_location()
        assert facts.latitude == pytest.approx(latitude, abs=1e-5)
        assert facts.longitude == pytest.approx(longitude, abs=1e-5)
        assert facts.altitude == pytest.approx(altitude, abs=0.05)


@pytest.mark.parametrize("video", VIDEOS, ids=lambda video: video.file)
def test_real_video_probe_gives_container_and_displayed_size(video: Expected) -> None:
    info = probe_video(DATA / video.file)

    assert (info.container, info.mime_type) == (video.container, video.mime_type)
    assert (info.width, info.height) == video.size
    assert info.duration == pytest.approx(video.duration, abs=0.05)
    assert info.has_video_stream


def test_loci_is_read_at_full_precision_not_ffmpegs_rounding() -> None:
    with av.open(str(DATA / "netherlands_ducks_with_gps.mp4")) as container:
        ffmpeg_says = container.metadata["location"]
    facts = read_video_facts(DATA / "netherlands_ducks_with_gps.mp4")

    assert ffmpeg_says.startswith("+52.3693+006.6761")
    assert facts.latitude is not None and facts.longitude is not None
    assert round(facts.latitude, 5) == 52.36929
    assert round(facts.longitude, 5) == 6.67609


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+32.0929+034.8620+028.516/", (32.0929, 34.862, 28.516)),
        ("+52.3693+006.6761+10.534988/", (52.3693, 6.6761, 10.534988)),
        ("-33.8688+151.2093/", (-33.8688, 151.2093, None)),
        ("-33.8688+151.2093", (-33.8688, 151.2093, None)),
        ("+00.0000+000.0000/", (0.0, 0.0, None)),
        ("+4043-07401/", (40 + 43 / 60, -(74 + 1 / 60), None)),
        ("+404315-0740115-12.5/", (40 + 43 / 60 + 15 / 3600, -(74 + 1 / 60 + 15 / 3600), -12.5)),
        ("+40.7-074.0CRSWGS_84/", (40.7, -74.0, None)),
        ("", None),
        ("north of here", None),
        ("+400-07401/", None),
    ],
)
def test_iso6709_strings_parse(text: str, expected: tuple[float, float, float | None]) -> None:
    parsed = parse_iso6709(text)
    if expected is None:
        assert parsed is None
    else:
        assert parsed == pytest.approx(expected)


# --- what we refuse --------------------------------------------------------------------------


def _half(name: str) -> bytes:
    data = (DATA / name).read_bytes()
    return data[: len(data) // 2]


def _audio_only_mp4(path: Path) -> Path:
    """A real MP4 holding a tenth of a second of silence and no picture."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        stream.layout = "mono"
        frame = av.AudioFrame(format="fltp", layout="mono", samples=800)
        frame.sample_rate = 8000
        frame.pts = 0
        frame.time_base = Fraction(1, 8000)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


BAD_VIDEOS: dict[str, tuple[bytes | None, str]] = {
    "empty.mp4": (b"", "corrupt"),
    "random.mp4": (random.Random(3).randbytes(4096), "unsupported"),
    "document.pdf": (b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "unsupported"),
    "photo.jpg": ((DATA / "rome_iphone4.jpg").read_bytes(), "unsupported"),
    # FFmpeg opens a HEIC photo as a "video" of 512x512 tiles.
    "photo.heic": ((DATA / "missouri_iphone11promax.heic").read_bytes(), "unsupported"),
    # A playlist named .mp4 would make FFmpeg's HLS demuxer open other files or URLs.
    "playlist.mp4": (
        b"#EXTM3U\n#EXTINF:10.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
        "unsupported",
    ),
    "cut_after_moov.mp4": (_half("netherlands_ducks_with_gps.mp4"), "corrupt"),
    "cut_before_moov.mp4": (_half("android_3gp5_null_island_rotate90.mp4"), "corrupt"),
    "audio_only.mp4": (None, "unsupported"),
}


@pytest.mark.parametrize("name", list(BAD_VIDEOS))
def test_bad_video_is_rejected_with_its_reason(tmp_path: Path, name: str) -> None:
    data, reason = BAD_VIDEOS[name]
    path = tmp_path / name
    if data is None:
        _audio_only_mp4(path)
    else:
        path.write_bytes(data)

    with pytest.raises(MediaRejected) as caught:
        probe_video(path)
    assert caught.value.reason == reason
    assert str(caught.value).endswith(".") and "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["random.mp4", "document.pdf", "empty.mp4", "cut_before_moov.mp4"])
def test_unreadable_file_gives_no_video_facts_but_a_refusal(tmp_path: Path, name: str) -> None:
    data, reason = BAD_VIDEOS[name]
    assert data is not None
    path = tmp_path / name
    path.write_bytes(data)

    with pytest.raises(MediaRejected) as caught:
        read_video_facts(path)
    assert caught.value.reason == reason


def test_video_cut_after_its_moov_still_gives_facts(tmp_path: Path) -> None:
    # probe_video refuses it; the facts (all in moov) are still there for whoever asks.
    path = tmp_path / "cut.mp4"
    path.write_bytes(_half("netherlands_ducks_with_gps.mp4"))

    facts = read_video_facts(path)
    assert facts.has_location() and facts.duration == pytest.approx(3.635, abs=0.05)


def test_vendor_trailer_after_the_last_box_is_not_a_cut(tmp_path: Path) -> None:
    # Samsung phones append a "SEF" trailer that is not an MP4 box; read as one, its size
    # points past the end of the file.
    path = tmp_path / "samsung_style.mp4"
    trailer = b"\x7f\xff\xff\xffSEFH" + bytes(64) + b"SEFT"
    path.write_bytes((DATA / "netherlands_ducks_with_gps.mp4").read_bytes() + trailer)

    assert probe_video(path).container == "mp4"
    assert read_video_facts(path).has_location()
