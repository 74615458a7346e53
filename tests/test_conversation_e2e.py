"""Follow-ups: the whole conversation and the album's media by reference, across restarts."""

from __future__ import annotations

from tests.fakes.gemini_api import Reply, file_uris, image_parts, inline_bytes, texts
from tests.harness import Harness
from tests.image_files import jpeg


def _roles(body: dict) -> list[str]:
    return [c["role"] for c in body["contents"]]


async def test_follow_up_carries_earlier_turns_and_the_album_by_reference(bot: Harness) -> None:
    await bot.album_with_story()
    uploads_before = len(bot.gemini.uploads())
    bot.gemini.enqueue(Reply(text="Photo 2 was taken by the river."))
    bot.tg.send_text(bot.chat, bot.ana, "Where was photo 2 taken?")
    await bot.wait_text(bot.chat["id"], "by the river")

    story_body, follow_up = bot.gemini.generate_requests()
    assert _roles(follow_up) == ["user", "model", "user"]
    assert follow_up["contents"][1]["parts"][0]["text"].startswith("# Story")
    assert "Where was photo 2 taken?" in texts(follow_up)[-1] or any(
        "Where was photo 2 taken?" in t for t in texts(follow_up)
    )
    assert len(image_parts(follow_up)) == 3
    assert set(file_uris(follow_up)) == set(file_uris(story_body))
    assert inline_bytes(follow_up) == 0  # nothing re-sent
    assert len(bot.gemini.uploads()) == uploads_before  # nothing re-uploaded


async def test_conversation_survives_a_restart(bot: Harness) -> None:
    await bot.album_with_story()
    bot.gemini.enqueue(Reply(text="Yes, the same day."))
    bot.tg.send_text(bot.chat, bot.ana, "Same day?")
    await bot.wait_text(bot.chat["id"], "the same day")

    await bot.restart()
    bot.gemini.enqueue(Reply(text="It was sunny in all three."))
    bot.tg.send_text(bot.chat, bot.ana, "How was the weather?")
    await bot.wait_text(bot.chat["id"], "sunny")

    last = bot.gemini.generate_requests()[-1]
    assert _roles(last) == ["user", "model", "user", "model", "user"]
    assert any("Same day?" in t for t in texts(last))
    assert any("How was the weather?" in t for t in texts(last))
    assert len(image_parts(last)) == 3
    assert len(bot.rows("SELECT * FROM exchanges")) == 3


async def test_reply_to_a_photo_asks_about_that_photo(bot: Harness) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    tg.send_photo(chat, ana, jpeg(1))
    second = tg.send_photo(chat, ana, jpeg(2))
    await bot.wait_text(chat["id"], "2 photos")
    bot.gemini.enqueue(Reply(text="That is a tiled facade."))
    tg.send_text(chat, ana, "What is this building", reply_to=second["message_id"])
    await bot.wait_text(chat["id"], "tiled facade")

    body = bot.gemini.generate_requests()[-1]
    last_turn = body["contents"][-1]
    turn_texts = [p.get("text", "") for p in last_turn["parts"]]
    assert any("replied to photo 2" in t for t in turn_texts)
    singled = [p for p in last_turn["parts"] if "fileData" in p or "file_data" in p]
    album_photo_2 = [
        p for p in body["contents"][0]["parts"] if "fileData" in p or "file_data" in p
    ][1]
    assert singled[-1] == album_photo_2  # the photo itself is shown again with the question
    exchange = bot.rows("SELECT focus_item_id FROM exchanges")[0]
    item = bot.rows("SELECT id FROM items WHERE position = 2")[0]
    assert exchange["focus_item_id"] == item["id"]


async def test_reset_clears_the_conversation_but_keeps_the_media(bot: Harness) -> None:
    await bot.album_with_story()
    bot.tg.send_command(bot.chat, bot.ana, "/reset")
    await bot.wait_text(bot.chat["id"], "Cleared the conversation")
    assert bot.rows("SELECT * FROM exchanges") == []
    assert len(bot.rows("SELECT * FROM items")) == 3
    bot.gemini.enqueue(Reply(text="Fresh answer."))
    bot.tg.send_text(bot.chat, bot.ana, "What do you see?")
    await bot.wait_text(bot.chat["id"], "Fresh answer")
    assert _roles(bot.gemini.generate_requests()[-1]) == ["user"]


async def test_undo_takes_back_the_last_question_then_the_last_batch(bot: Harness) -> None:
    await bot.album_with_story()
    bot.tg.send_command(bot.chat, bot.ana, "/undo")
    await bot.wait_text(bot.chat["id"], "Took back the last exchange")
    assert bot.rows("SELECT * FROM exchanges") == []
    bot.tg.send_command(bot.chat, bot.ana, "/undo")
    await bot.wait_text(bot.chat["id"], "Took back 3 photos")
    assert bot.rows("SELECT * FROM items") == []
    assert bot.media_files() == []  # nothing else used those files


async def test_undo_button_under_the_acknowledgement_removes_that_batch(bot: Harness) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    tg.send_photo(chat, ana, jpeg(1))
    await bot.wait_text(chat["id"], "1 photo")
    tg.send_command(chat, ana, "/story")  # ends the burst
    # Until its end: the story's closing ends the burst again, so two photos sent before it
    # would be two bursts, each with its own undo.
    await bot.wait_text(chat["id"], "That was the story of")
    tg.send_photo(chat, ana, jpeg(2))
    tg.send_photo(chat, ana, jpeg(3))
    await bot.wait_text(chat["id"], "3 photos")
    ack = [m for m in tg.bot_messages(chat["id"]) if (m.text or "").startswith("📸")][-1]
    undo = ack.reply_markup["inline_keyboard"][0][0]
    tg.press_button(chat, ana, ack.message_id, undo["callback_data"])
    await bot.wait_text(chat["id"], "Took back 2 photos")
    assert [r["position"] for r in bot.rows("SELECT position FROM items")] == [1]


async def test_new_album_and_switching_back_with_a_button(bot: Harness) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    tg.send_photo(chat, ana, jpeg(1))
    await bot.wait_text(chat["id"], "1 photo")
    tg.send_command(chat, ana, "/new Porto 'weekend'; DROP TABLE items;--")
    await bot.wait_text(chat["id"], "New album")
    tg.send_photo(chat, ana, jpeg(2))
    tg.send_photo(chat, ana, jpeg(3))
    await bot.wait_text(chat["id"], "Porto 'weekend'; DROP TABLE items;--”: 2 photos")
    tg.send_command(chat, ana, "/albums")
    listing = await bot.wait_text(chat["id"], "Your albums")
    assert "My trip" in listing
    message = [m for m in tg.bot_messages(chat["id"]) if "Your albums" in (m.text or "")][-1]
    buttons = [row[0] for row in message.reply_markup["inline_keyboard"]]
    first = next(b for b in buttons if b["text"].startswith("My trip"))
    tg.press_button(chat, ana, message.message_id, first["callback_data"])
    await tg.wait_for(
        lambda: (
            "✅ My trip" in (tg.bot_messages(chat["id"])[-1].text or "")
            or any("✅ My trip" in (m.text or "") for m in tg.bot_messages(chat["id"]))
        )
    )
    bot.gemini.enqueue(Reply(text="One photo only."))
    tg.send_text(chat, ana, "How many photos?")
    await bot.wait_text(chat["id"], "One photo only")
    assert len(image_parts(bot.gemini.generate_requests()[-1])) == 1
    assert len(bot.rows("SELECT * FROM albums")) == 2
