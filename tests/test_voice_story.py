"""Voice notes in the story and the export: heard, quoted, never placed or shown as pictures;
and what the audio check takes."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.errors import MediaRejected
from bot.media.audio import SILENCE_PEAK, encode_for_model, probe_audio
from bot.service.context import facts_line
from bot.service.export import render_html, render_markdown_zip
from bot.service.story import parse_story, quote_voice_notes
from storage.local_blobs import LocalBlobStore
from storage.records import Blob, Item, Media, MediaFacts, Origin
from tests.audio_files import m4a, mp3, tone, voice_note
from tests.image_files import jpeg

SENT = datetime(2026, 5, 2, 14, 5, tzinfo=UTC)


def _items(blobs: LocalBlobStore) -> list[Item]:
    items = []
    for number, (kind, data, mime) in enumerate(
        [("photo", jpeg(1), "image/jpeg"), ("audio", voice_note(), "audio/ogg"),
         ("photo", jpeg(2), "image/jpeg"), ("audio", voice_note(1.0), "audio/ogg")],
        start=1,
    ):  # fmt: skip
        sha, size = blobs.put_bytes(data)
        blob = Blob(sha, size, mime)
        origin = Origin(
            sender_name="Ana",
            message_date=SENT,
            telegram_type="voice" if kind == "audio" else "photo",
        )
        facts = MediaFacts(duration=42.0 if kind == "audio" else None)
        items.append(Item(number, 1, 1, number, Media(kind, blob, blob, origin, facts), "x"))  # type: ignore[arg-type]
    return items


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    store = LocalBlobStore(tmp_path)
    store.prepare()
    return store


def _story(media: list[list[int]]) -> str:
    return json.dumps(
        {
            "title": "Ferry day",
            "sections": [
                {"heading": f"Part {i}", "text": f"Text {i}.", "media": numbers}
                for i, numbers in enumerate(media, start=1)
            ],
        }
    )


def test_uncited_voice_notes_are_not_placed_and_cited_ones_are_quoted_not_shown(
    blobs: LocalBlobStore,
) -> None:
    items = _items(blobs)
    story = parse_story(_story([[1, 2], [3]]), items)  # voice note 4 is cited nowhere
    assert [s.media for s in story.sections] == [(1, 2), (3,)]
    posted = quote_voice_notes(story, items)
    assert [s.media for s in posted.sections] == [(1,), (3,)]
    assert posted.sections[0].text == "Text 1.\n\n🎙 *voice note 2* (0:42, Ana)"
    assert posted.sections[1].text == "Text 2."


def test_a_section_that_draws_only_on_a_voice_note_keeps_its_text(blobs: LocalBlobStore) -> None:
    items = _items(blobs)
    story = quote_voice_notes(parse_story(_story([[1, 3], [4]]), items), items)
    assert [(s.heading, s.media) for s in story.sections] == [("Part 1", (1, 3)), ("Part 2", ())]
    assert "🎙 *voice note 4*" in story.sections[1].text


def test_the_export_quotes_voice_notes_and_embeds_only_the_photos(blobs: LocalBlobStore) -> None:
    items = _items(blobs)
    story = parse_story(_story([[1, 2], [3, 4]]), items)
    page = render_html(story, items, blobs, album_name="Lisbon", language="en").decode()
    assert page.count("data:image/jpeg;base64,") == 2 and "data:audio" not in page
    assert "🎙 <em>voice note 2</em> (0:42, Ana)" in page
    archive = zipfile.ZipFile(io.BytesIO(render_markdown_zip(story, items, blobs, album_name="L")))
    assert sorted(n for n in archive.namelist() if n.startswith("images/")) == [
        "images/photo-01.jpg", "images/photo-03.jpg",
    ]  # fmt: skip
    assert "🎙 *voice note 4* (0:42, Ana)" in archive.read("story.md").decode()


def test_a_voice_note_is_introduced_with_its_length_time_and_speaker(
    blobs: LocalBlobStore,
) -> None:
    assert facts_line(_items(blobs)[1]) == (
        "[voice note 2] · 0:42 long · recorded 2026-05-02 14:05 (+00:00) · by Ana"
    )


@pytest.mark.parametrize(
    ("data", "mime"),
    [(voice_note(), "audio/ogg"), (mp3(), "audio/mp3"), (m4a(), None)],
    ids=["ogg_opus", "mp3", "m4a"],
)
def test_gemini_types_go_as_they_are_and_others_get_an_ogg_copy(
    tmp_path: Path, data: bytes, mime: str | None
) -> None:
    path = tmp_path / "sound"
    path.write_bytes(data)
    info = probe_audio(path)
    assert info.mime_type == mime and 1.4 < info.duration < 1.6
    if mime is None:
        path.write_bytes(encode_for_model(path))
        copy = probe_audio(path)
        assert copy.mime_type == "audio/ogg" and copy.codec == "opus"
        assert 1.4 < copy.duration < 1.6


@pytest.mark.parametrize(
    ("amplitude", "silent"),
    [(0.0, True), (SILENCE_PEAK / 2, True), (SILENCE_PEAK * 3, False)],
    ids=["digital_silence", "below_-60_dBFS", "a_quiet_room"],
)
def test_silent_means_no_sample_reaches_minus_60_dbfs(
    tmp_path: Path, amplitude: float, silent: bool
) -> None:
    path = tmp_path / "sound.wav"
    path.write_bytes(tone(container="wav", codec="pcm_s16le", amplitude=amplitude))
    if silent:
        with pytest.raises(MediaRejected, match="no sound"):
            probe_audio(path)
    else:
        assert probe_audio(path).mime_type == "audio/wav"
