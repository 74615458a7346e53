"""Budgets, usage, /forget and isolation between chats."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import ANA, Harness
from tests.image_files import jpeg


@pytest.fixture
async def budget_bot(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> AsyncIterator[Harness]:
    harness = Harness(tg, gemini, tmp_path / "data", DAILY_TOKEN_BUDGET="500", ADMIN_USERS=str(ANA))
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def test_user_at_the_budget_is_told_and_gemini_gets_no_request(budget_bot: Harness) -> None:
    bot = budget_bot
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    await bot.wait_text(bot.chat["id"], "1 photo")
    bot.tg.send_text(bot.chat, bot.ana, "What is this?")  # the album and prompts: > 500 tokens
    await bot.wait_text(bot.chat["id"], "Last question")
    assert bot.rows("SELECT SUM(total_tokens) AS t FROM usage")[0]["t"] >= 500
    requests_before = len(bot.gemini.requests)
    bot.tg.send_text(bot.chat, bot.ana, "One more?")
    reply = await bot.wait_text(bot.chat["id"], "today's allowance")
    assert "500" in reply and "/usage" in reply
    assert len(bot.gemini.requests) == requests_before  # not even an upload or a file check
    assert len(bot.rows("SELECT * FROM exchanges")) == 1


async def test_every_call_records_tokens_by_modality_and_usage_shows_the_cost(
    budget_bot: Harness,
) -> None:
    bot = budget_bot
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    await bot.wait_text(bot.chat["id"], "1 photo")
    bot.tg.send_text(bot.chat, bot.ana, "What is this?")
    await bot.wait_text(bot.chat["id"], "Last question")
    [row] = bot.rows("SELECT * FROM usage")
    assert row["user_id"] == ANA and row["chat_id"] == bot.chat["id"]
    assert row["prompt_tokens"] > 258 and row["output_tokens"] > 0
    assert json.loads(row["by_modality"])["IMAGE"] == 258
    bot.tg.send_command(bot.chat, bot.ana, "/usage")
    text = await bot.wait_text(bot.chat["id"], "Your Gemini usage")
    assert f"{row['total_tokens']:,} tokens" in text and "$" in text and "left today" in text


async def test_stats_are_for_admins_only(budget_bot: Harness) -> None:
    bot = budget_bot
    bob_chat = bot.tg.private_chat(bot.bob_en)
    bot.tg.send_command(bob_chat, bot.bob_en, "/stats")
    await bot.wait_text(bob_chat["id"], "Only the bot's admins")
    bot.tg.send_photo(bob_chat, bot.bob_en, jpeg(2))
    await bot.wait_text(bob_chat["id"], "1 photo")
    bot.tg.send_text(bob_chat, bot.bob_en, "What is it?")
    await bot.wait_text(bob_chat["id"], "Last question")
    bot.tg.send_command(bot.chat, bot.ana, "/stats")
    text = await bot.wait_text(bot.chat["id"], "Usage by user")
    assert str(bot.bob_en["id"]) in text


async def test_forget_deletes_the_chat_after_confirmation_and_keeps_other_chats(
    bot: Harness,
) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    bob_chat = tg.private_chat(bot.bob_en)
    shared = jpeg(7)
    tg.send_photo(chat, ana, jpeg(1))
    tg.send_photo(chat, ana, shared)
    tg.send_photo(bob_chat, bot.bob_en, shared)  # the same picture in Bob's chat
    await bot.wait_text(chat["id"], "2 photos")
    await bot.wait_text(bob_chat["id"], "1 photo")
    tg.send_command(chat, ana, "/story")
    await bot.wait_text(chat["id"], "Seen 2 images")
    tg.send_command(bob_chat, bot.bob_en, "/story")
    await bot.wait_text(bob_chat["id"], "Seen 1 image")
    uploads = {f.name: f for f in bot.gemini.uploads()}
    bob_item = bot.rows(
        "SELECT * FROM items i JOIN albums a ON a.id = i.album_id WHERE a.chat_id = ?",
        (bob_chat["id"],),
    )[0]

    tg.send_command(chat, ana, "/forget")
    question = await bot.wait_text(chat["id"], "Forget this chat?")
    assert "1 album with 2 photos and videos" in question
    ask, yes = await bot.first_button(chat["id"], "Forget this chat?")
    tg.press_button(chat, ana, ask, yes)
    await bot.wait_text(chat["id"], "Done: deleted 1 album, 2 photos and videos")

    assert bot.rows("SELECT * FROM albums WHERE chat_id = ?", (chat["id"],)) == []
    assert bot.rows("SELECT * FROM usage WHERE chat_id = ?", (chat["id"],)) == []
    assert bot.rows("SELECT COUNT(*) AS n FROM items")[0]["n"] == 1  # Bob's
    files = {p.name for p in bot.media_files()}
    assert bob_item["source_sha256"] in files and bob_item["model_sha256"] in files
    assert len(files) == 2  # Ana's own photo and its model copy are gone
    remaining = set(bot.gemini.files)
    assert len(uploads) == 2  # the shared picture was uploaded once for both chats
    assert len(remaining) == 1  # only the shared upload stays, for Bob
    tg.send_text(bob_chat, bot.bob_en, "Still there?")
    await bot.wait_text(bob_chat["id"], "Last question: Still there?")


async def test_only_the_person_who_asked_can_confirm_forget(bot: Harness) -> None:
    group = bot.tg.group_chat(chat_id=-100321, title="Trip")
    bot.tg.send_photo(group, bot.ana, jpeg(1))
    await bot.wait_text(group["id"], "1 photo")
    await bot.wait_stored()
    bot.tg.send_command(group, bot.ana, "/forget")
    ask, yes = await bot.first_button(group["id"], "Forget this chat?")
    bot.tg.press_button(group, bot.bob, ask, yes)
    await bot.tg.wait_for(
        lambda: any(c.params.get("show_alert") for c in bot.tg.calls("answerCallbackQuery"))
    )
    assert len(bot.rows("SELECT * FROM items")) == 1


async def test_another_chat_cannot_reach_an_album_through_buttons_or_replies(bot: Harness) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    tg.send_photo(chat, ana, jpeg(1))
    photo_a = tg.send_photo(chat, ana, jpeg(2))
    await bot.wait_text(chat["id"], "2 photos")
    await bot.wait_stored()
    album_a = bot.rows("SELECT id FROM albums WHERE chat_id = ?", (chat["id"],))[0]["id"]
    batch_a = bot.rows("SELECT batch_id FROM items LIMIT 1")[0]["batch_id"]

    group = tg.group_chat(chat_id=-100555, title="Other trip")
    tg.send_photo(group, bot.bob_en, jpeg(3))
    await bot.wait_text(group["id"], "1 photo")
    tg.send_command(group, bot.bob_en, "/albums")
    listing = await bot.wait_text(group["id"], "Your albums")
    ack = next(m for m in tg.bot_messages(group["id"]) if "Your albums" in (m.text or ""))
    assert "2 photos" not in listing
    # Forged button data naming chat A's album and batch, pressed in the group.
    ack.reply_markup["inline_keyboard"].append(
        [
            {"text": "x", "callback_data": f"album:{album_a}"},
            {"text": "y", "callback_data": f"undo:{batch_a}"},
        ]
    )
    tg.press_button(group, bot.bob_en, ack.message_id, f"album:{album_a}")
    tg.press_button(group, bot.bob_en, ack.message_id, f"undo:{batch_a}")
    await tg.wait_for(
        lambda: len([c for c in tg.calls("answerCallbackQuery") if c.params.get("show_alert")]) == 2
    )
    # A reply whose message id matches chat A's photo must not single out chat A's photo.
    tg.send_text(
        group, bot.bob_en, "@photostory_test_bot what is in it?", reply_to=photo_a["message_id"]
    )
    await bot.wait_text(group["id"], "Last question")
    body = bot.gemini.generate_requests()[-1]
    assert "replied to" not in json.dumps(body)
    assert len(bot.rows("SELECT * FROM items WHERE album_id = ?", (album_a,))) == 2
    assert (
        bot.rows("SELECT current_album_id FROM chats WHERE chat_id = ?", (group["id"],))[0][0]
        != album_a
    )


@pytest.mark.embedded_only(
    "plants files in DATA_DIR/media; the bucket's sweep is tests/test_s3_blobs.py"
)
async def test_files_no_album_refers_to_are_deleted_at_start(bot: Harness) -> None:
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    await bot.wait_text(bot.chat["id"], "1 photo")
    await bot.tg.wait_for(lambda: bot.rows("SELECT 1 FROM items WHERE model_ready = 1"))
    kept = set(bot.media_files())
    # What a process killed between storing a file and committing its row leaves behind...
    orphan = bot.data_dir / "media" / "ab" / ("ab" + "0" * 62)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(jpeg(2))
    two_hours_ago = time.time() - 7200
    os.utime(orphan, (two_hours_ago, two_hours_ago))
    # ...and one a process still finishing (a deploy) may be about to record: kept for now.
    young = bot.data_dir / "media" / "cd" / ("cd" + "0" * 62)
    young.parent.mkdir(parents=True, exist_ok=True)
    young.write_bytes(jpeg(3))
    await bot.restart()
    assert set(bot.media_files()) == kept | {young} and not orphan.exists()
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "Seen 1 image")


async def test_media_next_to_an_empty_database_is_left_alone(bot: Harness) -> None:
    # A new or restored database beside old media: deleting them all could not be undone.
    old = bot.data_dir / "media" / "ef" / ("ef" + "0" * 62)
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(jpeg(4))
    os.utime(old, (time.time() - 86400, time.time() - 86400))
    await bot.restart()
    assert old.exists()
