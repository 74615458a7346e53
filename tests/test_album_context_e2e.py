"""Context, wishes, landmarks and expired uploads: what every answer is built from."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from bot.service import copies as bot_copies
from tests.fakes.gemini_api import Reply, file_uris, image_parts, texts
from tests.harness import DATA, FailingFirst, Harness
from tests.image_files import jpeg


async def test_notes_and_captions_reach_every_later_answer(bot: Harness) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    tg.send_text(chat, ana, "Our first week in Lisbon")
    tg.send_photo(chat, ana, jpeg(1), caption="Tram 28 up the hill")
    await bot.wait_text(chat["id"], "1 note")
    tg.send_command(chat, ana, "/story")
    await bot.wait_text(chat["id"], "Seen 1 image")
    tg.send_text(chat, ana, "We also went by boat")  # after the story: a question, not a note
    await bot.wait_text(chat["id"], "Last question")
    for body in bot.gemini.generate_requests():
        joined = "\n".join(texts(body))
        assert "Our first week in Lisbon" in joined
        assert "Tram 28 up the hill" in joined
    assert [r["text"] for r in bot.rows("SELECT text FROM notes")] == ["Our first week in Lisbon"]


async def test_story_wish_is_passed_to_the_model(bot: Harness) -> None:
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    await bot.wait_text(bot.chat["id"], "1 photo")
    bot.tg.send_command(bot.chat, bot.ana, "/story shorter and funny, in Portuguese")
    await bot.wait_text(bot.chat["id"], "Seen 1 image")
    last = texts(bot.gemini.generate_requests()[-1])[-1]
    assert "shorter and funny, in Portuguese" in last


async def test_landmarks_asks_for_places_the_album_does_not_show(bot: Harness) -> None:
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    await bot.wait_text(bot.chat["id"], "1 photo")
    bot.gemini.enqueue(Reply(text="You missed **São Jorge Castle**: views over Alfama."))
    bot.tg.send_command(bot.chat, bot.ana, "/landmarks")
    await bot.wait_text(bot.chat["id"], "São Jorge Castle")
    body = bot.gemini.generate_requests()[-1]
    prompt = texts(body)[-1]
    assert "no photo or video shows" in prompt
    assert "Hollywood sign" in body["systemInstruction"]["parts"][0]["text"]
    assert len(image_parts(body)) == 1


async def test_photo_sent_as_heic_file_reaches_the_model_as_a_small_jpeg(bot: Harness) -> None:
    heic = (DATA / "lisbon_iphone_xr.heic").read_bytes()
    bot.tg.send_document(bot.chat, bot.ana, heic, file_name="IMG_0001.HEIC", mime_type="image/heic")
    await bot.wait_text(bot.chat["id"], "1 photo")
    await bot.wait_stored()  # acknowledged as received: stored by the file's job
    row = bot.rows("SELECT * FROM items")[0]
    assert row["latitude"] is not None and "Lisbon" in row["place"]
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "Seen 1 image")
    row = bot.rows("SELECT * FROM items")[0]  # the model's copy is made after the acknowledgement
    assert row["mime_type"] == "image/heic" and row["model_mime_type"] == "image/jpeg"
    assert row["model_ready"] == 1 and row["model_sha256"] != row["source_sha256"]
    upload = bot.gemini.uploads()[0]
    assert upload.mime_type == "image/jpeg" and len(upload.data) <= 150_000
    assert "near Ajuda, Lisbon, Portugal" in "\n".join(texts(bot.gemini.generate_requests()[-1]))


async def test_expired_uploads_are_replaced_and_the_question_is_answered(bot: Harness) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    for n in range(3):
        tg.send_photo(chat, ana, jpeg(n))
    await bot.wait_text(chat["id"], "3 photos")
    tg.send_command(chat, ana, "/story")
    await bot.wait_text(chat["id"], "Seen 3 images")
    old = set(file_uris(bot.gemini.generate_requests()[-1]))

    bot.gemini.expire_all()  # 48 hours later
    bot.gemini.enqueue(Reply(text="Still here after two days."))
    tg.send_text(chat, ana, "Do you remember the trip?")
    await bot.wait_text(chat["id"], "Still here after two days")

    new = set(file_uris(bot.gemini.generate_requests()[-1]))
    assert len(new) == 3 and not (new & old)
    assert len(bot.gemini.uploads()) == 6
    assert len(bot.rows("SELECT * FROM exchanges")) == 2
    assert not any("could not" in t.lower() for t in bot.texts(chat["id"]))


async def test_an_edited_caption_replaces_the_stored_one(bot: Harness) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    sent = tg.send_photo(chat, ana, jpeg(1), caption="Tram 82")
    await bot.wait_text(chat["id"], "1 photo")
    tg.edit_message(sent, caption="Tram 28 up to Graça")
    await tg.wait_for(  # (stored after the acknowledgement, which counts what was received)
        lambda: (
            [r["caption"] for r in bot.rows("SELECT caption FROM items")] == ["Tram 28 up to Graça"]
        )
    )
    tg.send_command(chat, ana, "/story")
    await bot.wait_text(chat["id"], "Seen 1 image")
    joined = "\n".join(texts(bot.gemini.generate_requests()[-1]))
    assert "Tram 28 up to Graça" in joined and "Tram 82" not in joined
    tg.edit_message(sent, caption=None)  # taken away altogether
    await tg.wait_for(lambda: bot.rows("SELECT caption FROM items")[0]["caption"] is None)


async def test_a_caption_edited_before_its_photo_is_stored_is_kept(bot: Harness) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    slow = asyncio.Event()
    sent = tg.send_photo(chat, ana, jpeg(1), caption="Tram 82")
    tg.hold_download(sent["photo"][-1]["file_id"], slow)  # received, not yet stored
    await bot.wait_text(chat["id"], "1 photo")
    tg.edit_message(sent, caption="Tram 28 up to Graça")
    await tg.wait_for(lambda: len(tg.calls("getFile")) >= 1)
    assert bot.rows("SELECT * FROM items") == []
    slow.set()
    await tg.wait_for(
        lambda: (
            [r["caption"] for r in bot.rows("SELECT caption FROM items")] == ["Tram 28 up to Graça"]
        )
    )


async def test_an_edited_question_is_not_answered_again(bot: Harness) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    tg.send_photo(chat, ana, jpeg(1))
    await bot.wait_text(chat["id"], "1 photo")
    tg.send_command(chat, ana, "/story")
    await bot.wait_text(chat["id"], "Seen 1 image")
    bot.gemini.enqueue(Reply(text="It was sunny all week."))
    question = tg.send_text(chat, ana, "What was the wether like?")
    await bot.wait_text(chat["id"], "sunny all week")
    tg.edit_message(question, text="What was the weather like?")
    bot.gemini.enqueue(Reply(text="Lisbon has seven hills."))
    tg.send_text(chat, ana, "How many hills?")  # handled after the edit, in order
    await bot.wait_text(chat["id"], "seven hills")
    asked = [r["user_text"] for r in bot.rows("SELECT user_text FROM exchanges")]
    assert asked == [None, "What was the wether like?", "How many hills?"]  # story, 2 questions
    assert len(bot.gemini.generate_requests()) == 3


async def test_a_shared_location_and_place_become_notes_named_offline(bot: Harness) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    tg.send_location(chat, ana, 38.69758, -9.20641)  # by the Tower of Belém
    tg.send_location(
        chat, ana, 38.70697, -9.14594, title="Time Out Market", address="Av. 24 de Julho 49"
    )
    tg.send_photo(chat, ana, jpeg(1))
    await bot.wait_text(chat["id"], "2 notes")
    notes = [r["text"] for r in bot.rows("SELECT text FROM notes ORDER BY id")]
    assert notes[0].startswith("Shared a location: (38.69758, -9.20641), near ")
    assert "Lisbon" in notes[0]
    assert notes[1].startswith("Shared a place: Time Out Market, Av. 24 de Julho 49 (38.70697")
    tg.send_command(chat, ana, "/story")
    await bot.wait_text(chat["id"], "Seen 1 image")
    joined = "\n".join(texts(bot.gemini.generate_requests()[-1]))
    assert "Time Out Market" in joined and "(38.69758, -9.20641)" in joined


async def test_a_location_in_the_open_sea_is_kept_without_a_place(bot: Harness) -> None:
    bot.tg.send_location(bot.chat, bot.ana, 0.0, -30.0)
    await bot.wait_text(bot.chat["id"], "1 note")
    assert [r["text"] for r in bot.rows("SELECT text FROM notes")] == [
        "Shared a location: (0.00000, -30.00000)"
    ]


async def test_in_a_group_only_a_location_sent_in_reply_to_the_bot_is_a_note(bot: Harness) -> None:
    tg, ana = bot.tg, bot.ana
    group = tg.group_chat(-100902, "Trip")
    tg.send_location(group, ana, 38.71, -9.14)  # "meet here": for the others
    tg.send_photo(group, ana, jpeg(1))
    ack = await bot.wait_text(group["id"], "1 photo")
    assert bot.rows("SELECT * FROM notes") == []
    ack_id = next(m.message_id for m in tg.bot_messages(group["id"]) if m.text == ack)
    tg.send_location(group, ana, 38.71, -9.14, reply_to=ack_id)
    await bot.wait_text(group["id"], "1 note")
    assert bot.rows("SELECT text FROM notes")[0]["text"].startswith("Shared a location")


async def test_a_photo_whose_model_copy_fails_is_named_in_the_story(
    bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise OSError("broken data stream when reading image file")

    monkeypatch.setattr(bot_copies, "model_picture", broken)
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    await bot.wait_text(bot.chat["id"], "1 photo")
    await bot.tg.wait_for(
        lambda: any(row["model_failed"] for row in bot.rows("SELECT model_failed FROM items"))
    )
    monkeypatch.undo()
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(2))
    await bot.wait_text(bot.chat["id"], "2 photos")
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "Seen 1 image")
    await bot.wait_text(
        bot.chat["id"], "left out photo 1: its copy for the model could not be made"
    )


async def test_a_model_copy_whose_record_fails_a_moment_is_made_by_the_next_try(
    bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database is busy a moment as the photo's copy is recorded: that is no fault of the
    # photo's, so its job tries again (and the story sees the photo), not "left out".
    media = bot.services.storage.media
    busy = FailingFirst(media.set_model_copy, sqlite3.OperationalError("database is locked"))
    monkeypatch.setattr(media, "set_model_copy", busy)
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    await bot.wait_text(bot.chat["id"], "1 photo")
    await bot.tg.wait_for(lambda: bot.rows("SELECT 1 FROM items WHERE model_ready = 1"), timeout=30)
    assert busy.failed
    assert [row["model_failed"] for row in bot.rows("SELECT model_failed FROM items")] == [None]


async def test_a_model_copy_the_storage_refuses_a_moment_is_made_by_the_next_try(
    bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The copy is made but the disk or the bucket refuses it a moment: tried again, not
    # "left out" (only the picture's own failures are).
    blobs = bot.services.storage.blobs
    put = blobs.put_bytes
    refused: list[int] = []

    def full_once(data: bytes) -> tuple[str, int]:
        if not refused:
            refused.append(len(data))
            raise OSError(28, "No space left on device")
        return put(data)

    monkeypatch.setattr(blobs, "put_bytes", full_once)
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    await bot.wait_text(bot.chat["id"], "1 photo")
    await bot.tg.wait_for(lambda: bot.rows("SELECT 1 FROM items WHERE model_ready = 1"), timeout=30)
    assert refused
    assert [row["model_failed"] for row in bot.rows("SELECT model_failed FROM items")] == [None]
