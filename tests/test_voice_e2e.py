"""Voice notes and audio files as trip context the model hears: intake, story, undo, groups."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.audio_files import m4a, mp3, pdf, silent_voice_note, voice_note
from tests.fakes.gemini_api import AUDIO_TOKENS, audio_parts, file_uris, texts
from tests.fakes.telegram_api import BOT_USERNAME
from tests.harness import Harness
from tests.image_files import jpeg

VOICE = voice_note(2.0)


def _reply(bot: Harness, chat_id: int, message: dict[str, Any]) -> str | None:
    """The text of the bot's reply that quotes `message`, once there is one."""
    for sent in bot.tg.bot_messages(chat_id):
        if sent.reply_to_message_id == message["message_id"] and sent.text:
            return sent.text
    return None


def _album(bot: Harness) -> list[tuple[Any, ...]]:
    """The stored items and files, to compare before and after a refusal."""
    items = [tuple(r) for r in bot.rows("SELECT * FROM items ORDER BY id")]
    return [*items, tuple(p.name for p in bot.media_files())]


async def test_voice_note_in_a_burst_of_photos_is_acknowledged_with_them_and_heard_by_the_story(
    bot: Harness,
) -> None:
    chat_id = bot.chat["id"]
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(2))
    bot.tg.send_voice(bot.chat, bot.ana, VOICE, duration=2)
    ack = await bot.wait_text(chat_id, "2 photos, 1 voice note")
    assert "Just now: added 2 photos, 1 voice note." in ack
    assert len(bot.texts(chat_id)) == 1  # one acknowledgement for the whole burst
    await bot.wait_stored()  # acknowledged once received: stored by the files' jobs
    [row] = bot.rows("SELECT * FROM items WHERE kind = 'audio'")
    assert row["telegram_type"] == "voice" and row["position"] == 3
    assert row["model_mime_type"] == "audio/ogg" and row["model_sha256"] == row["source_sha256"]
    assert 1.9 < row["duration"] < 2.2

    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(chat_id, "Seen 2 images, 0 videos, 1 audio file")
    [upload] = [f for f in bot.gemini.uploads() if f.mime_type.startswith("audio/")]
    assert upload.mime_type == "audio/ogg"
    story = bot.gemini.generate_requests()[-1]
    [part] = audio_parts(story)
    assert part["fileData"]["fileUri"] == upload.uri
    assert "videoMetadata" not in part
    manifest = "\n".join(texts(story))
    assert re.search(
        r"^\[voice note 3\] · 0:02 long · recorded \d{4}-\d\d-\d\d \d\d:\d\d", manifest, re.M
    )
    assert "· by Ana" in manifest and "1 voice note (to listen to, not pictures)" in manifest
    # Posted: the photos as an album, the voice note quoted under the text, never as a picture.
    await bot.wait_text(chat_id, "That was the story")
    groups = bot.tg.calls("sendMediaGroup")
    assert [len(c.params["media"]) for c in groups] == [2]
    assert not bot.tg.calls("sendVoice") and not bot.tg.calls("sendAudio")
    assert any("🎙 voice note 3 (0:02, Ana)" in t for t in bot.texts(chat_id))

    bot.tg.send_text(bot.chat, bot.ana, "What did I say about the ferry?")
    await bot.wait_text(chat_id, "Last question: What did I say")
    follow_up = bot.gemini.generate_requests()[-1]
    assert upload.uri in file_uris(follow_up)
    assert len([f for f in bot.gemini.uploads() if f.mime_type.startswith("audio/")]) == 1

    modalities = [json.loads(r["by_modality"]) for r in bot.rows("SELECT * FROM usage")]
    assert [m.get("AUDIO") for m in modalities] == [AUDIO_TOKENS, AUDIO_TOKENS]
    bot.tg.send_command(bot.chat, bot.ana, "/usage")
    usage = await bot.wait_text(chat_id, "Your Gemini usage")
    assert f"of which {2 * AUDIO_TOKENS:,} hearing voice notes" in usage


async def test_voice_notes_alone_are_counted_listed_and_taken_back_by_undo(bot: Harness) -> None:
    chat_id = bot.chat["id"]
    bot.tg.send_voice(bot.chat, bot.ana, VOICE)
    bot.tg.send_voice(bot.chat, bot.ana, voice_note(1.0))
    ack = await bot.wait_text(chat_id, "2 voice notes")
    assert "photo" not in ack.splitlines()[0]
    bot.tg.send_command(bot.chat, bot.ana, "/albums")
    await bot.wait_text(chat_id, "0 photos, 2 voice notes")
    await bot.wait_stored()
    assert len(bot.media_files()) == 2

    bot.tg.send_command(bot.chat, bot.ana, "/undo")
    await bot.wait_text(chat_id, "Took back 2 voice notes from “My trip”")
    assert bot.rows("SELECT * FROM items") == []
    assert bot.media_files() == []


@pytest.mark.parametrize(
    ("send", "data", "name", "mime", "model_mime", "copied"),
    [
        ("audio", m4a(2.0), "memo.m4a", "audio/mp4", "audio/ogg", True),
        ("audio", mp3(2.0), "beach.mp3", "audio/mpeg", "audio/mp3", False),
        ("document", m4a(2.5), "Voice Memo 12.m4a", "audio/x-m4a", "audio/ogg", True),
    ],
    ids=["m4a_as_audio", "mp3_as_audio", "m4a_as_file"],
)
async def test_audio_files_are_heard_as_they_are_or_as_a_small_ogg_copy(
    bot: Harness, send: str, data: bytes, name: str, mime: str, model_mime: str, copied: bool
) -> None:
    chat_id = bot.chat["id"]
    if send == "audio":
        bot.tg.send_audio(bot.chat, bot.ana, data, file_name=name, mime_type=mime)
    else:
        bot.tg.send_document(bot.chat, bot.ana, data, file_name=name, mime_type=mime)
    await bot.wait_text(chat_id, "1 voice note")
    await bot.wait_stored()
    [row] = bot.rows("SELECT * FROM items")
    assert row["kind"] == "audio" and row["file_name"] == name
    assert row["model_mime_type"] == model_mime
    assert (row["model_sha256"] != row["source_sha256"]) is copied
    assert len(bot.media_files()) == (2 if copied else 1)

    bot.tg.send_text(bot.chat, bot.ana, "What can you hear?")
    await bot.wait_text(chat_id, "1 audio file")
    [upload] = bot.gemini.uploads()
    assert upload.mime_type == model_mime
    request = bot.gemini.generate_requests()[-1]
    assert f"file {name}" in "\n".join(texts(request))


# Found out once downloaded: the burst's acknowledgement names the file and says why.
NOT_AUDIO = "it is not a photo, video or voice note"
BAD_AUDIO = {
    "silent": (silent_voice_note(2.0), "voice", "it has no sound in it"),
    "zero_length": (b"", "voice", "the file is empty"),
    "pdf_named_ogg": (pdf(), "audio", NOT_AUDIO),
    "pdf_as_voice": (pdf(), "voice", NOT_AUDIO),
    "cut_short": (VOICE[:200], "voice", NOT_AUDIO),  # no audio stream left to find
    "too_short": (voice_note(0.1), "voice", "it is too short to hold anything"),
}


@pytest.mark.parametrize("case", list(BAD_AUDIO))
async def test_bad_audio_gets_a_clear_reply_and_the_album_stays_as_it_was(
    bot: Harness, case: str
) -> None:
    data, how, expected = BAD_AUDIO[case]
    await bot.two_photos(model_ready=True)
    before = _album(bot)
    if how == "voice":
        sent = bot.tg.send_voice(bot.chat, bot.ana, data)
    else:
        sent = bot.tg.send_audio(
            bot.chat, bot.ana, data, file_name="trip.ogg", mime_type="audio/ogg"
        )
    name = "trip.ogg" if how == "audio" else "voice note 3"  # a voice note has no file name
    line = f"⚠️ {name} could not be added: {expected}"
    text = await bot.wait_text(bot.chat["id"], line)
    assert text.startswith("📸 Album “My trip”: 2 photos\n") and "Traceback" not in text
    assert sum(line in t for t in bot.texts(bot.chat["id"])) == 1
    assert _reply(bot, bot.chat["id"], sent) is None  # said in the acknowledgement only
    assert _album(bot) == before
    assert list((bot.data_dir / "tmp").iterdir()) == []
    bot.tg.send_voice(bot.chat, bot.ana, VOICE)  # the album still takes a good one
    await bot.wait_text(bot.chat["id"], "”: 2 photos, 1 voice note")  # the total, not "added"
    await bot.wait_stored()
    assert len(bot.rows("SELECT * FROM items WHERE kind = 'audio'")) == 1


async def test_recording_over_the_download_limit_is_refused_before_any_download(
    bot: Harness,
) -> None:
    sent = bot.tg.send_voice(bot.chat, bot.ana, VOICE, file_size=25 * 1024 * 1024)
    text = await bot.tg.wait_for(lambda: _reply(bot, bot.chat["id"], sent))
    assert "This recording is 25 MB" in text and "at most 20 MB" in text
    assert "shorter recording" in text
    assert bot.tg.getfile_calls() == []
    assert bot.rows("SELECT * FROM items") == []


async def test_in_a_group_only_voice_notes_for_the_bot_join_the_album(bot: Harness) -> None:
    group = bot.tg.group_chat(-100902, "Trip")
    chatter = bot.tg.send_voice(group, bot.ana, voice_note(1.0))  # to the others
    bot.tg.send_photo(group, bot.ana, jpeg(1))
    ack = await bot.wait_text(group["id"], "1 photo")
    assert "voice" not in ack
    ack_message = bot.tg.bot_messages(group["id"])[0]

    bot.tg.send_voice(group, bot.bob_en, VOICE, reply_to=ack_message.message_id)
    await bot.wait_text(group["id"], "1 photo, 1 voice note")
    bot.tg.send_voice(group, bot.ana, voice_note(3.0), caption=f"@{BOT_USERNAME} the ferry")
    await bot.wait_text(group["id"], "1 photo, 2 voice notes")
    await bot.wait_stored()

    rows = bot.rows("SELECT sender_name, caption FROM items WHERE kind = 'audio' ORDER BY id")
    assert [tuple(r) for r in rows] == [("Bob", None), ("Ana", f"@{BOT_USERNAME} the ferry")]
    assert chatter["voice"]["file_id"] not in bot.tg.getfile_calls()
    assert not any("cannot" in t for t in bot.texts(group["id"]))


async def test_a_question_in_reply_to_a_voice_note_plays_it_again(bot: Harness) -> None:
    chat_id = bot.chat["id"]
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    spoken = bot.tg.send_voice(bot.chat, bot.ana, VOICE)
    await bot.wait_text(chat_id, "1 photo, 1 voice note")
    bot.tg.send_text(bot.chat, bot.ana, "Who is talking here", reply_to=spoken)
    await bot.wait_text(chat_id, "Last question")
    request = bot.gemini.generate_requests()[-1]
    [upload] = [f for f in bot.gemini.uploads() if f.mime_type == "audio/ogg"]
    assert file_uris(request).count(upload.uri) == 2  # in the album, and again by the question
    said = "\n".join(texts(request))
    assert "[voice note 2] · 0:02 long" in said and "(played again)" in said
    assert "it is about that voice note" in said


async def test_landmarks_hear_the_voice_notes_too(bot: Harness) -> None:
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    bot.tg.send_voice(bot.chat, bot.ana, VOICE)
    await bot.wait_text(bot.chat["id"], "1 photo, 1 voice note")
    bot.tg.send_command(bot.chat, bot.ana, "/landmarks")
    await bot.wait_text(bot.chat["id"], "Seen 1 image, 0 videos, 1 audio file")
    [part] = audio_parts(bot.gemini.generate_requests()[-1])
    assert part["fileData"]["mimeType"] == "audio/ogg"
