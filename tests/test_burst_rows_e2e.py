"""A burst is rows, not a process's memory: another process carries it on, and flushing its
acknowledgement twice sends nothing twice (the real bot against the fakes, both storages)."""

from __future__ import annotations

from bot.telegram.acks import flush
from bot.telegram.runtime import KEY, Runtime
from tests.fakes.telegram_api import SentMessage
from tests.harness import Harness
from tests.image_files import jpeg


def _acks(bot: Harness) -> list[SentMessage]:
    return [m for m in bot.tg.bot_messages(bot.chat["id"]) if (m.text or "").startswith("📸")]


def _runtime(bot: Harness) -> Runtime:
    assert bot.app is not None
    runtime = bot.app.bot_data[KEY]
    assert isinstance(runtime, Runtime)
    return runtime


def _sent(bot: Harness) -> int:
    return len(bot.tg.calls("sendMessage")) + len(bot.tg.calls("editMessageText"))


async def test_the_next_process_edits_the_acknowledgement_the_first_one_sent(
    bot: Harness,
) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    tg.send_photo(chat, ana, jpeg(1))
    await bot.wait_text(chat["id"], "Just now: added 1 photo.")
    [first] = _acks(bot)
    # The first Application stops mid-burst; a second one opens the same database.
    await bot.restart()
    tg.send_photo(chat, ana, jpeg(2))
    await bot.wait_text(chat["id"], "Just now: added 2 photos.")
    [ack] = _acks(bot)
    assert ack.message_id == first.message_id  # edited, not sent again
    assert len(tg.calls("sendMessage")) == 1
    # One batch: the Undo button under the message takes back both photos.
    await bot.wait_stored()
    batches = {row[0] for row in bot.rows("SELECT batch_id FROM items")}
    assert len(batches) == 1
    assert ack.reply_markup is not None
    assert ack.reply_markup["inline_keyboard"][0][0]["callback_data"] == f"undo:{batches.pop()}"


async def test_a_flush_run_twice_sends_nothing_twice(bot: Harness) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    tg.send_photo(chat, ana, jpeg(1))
    await bot.wait_text(chat["id"], "1 photo")
    # The timer's flush has recorded what it sent (it runs on after Telegram answered).
    await tg.wait_for(lambda: bot.rows("SELECT 1 FROM bursts WHERE shown = version"))
    rt = _runtime(bot)
    assert bot.app is not None
    before = _sent(bot)
    await flush(bot.app.bot, rt.services.albums, chat["id"])
    await flush(bot.app.bot, rt.services.albums, chat["id"])
    assert _sent(bot) == before


async def test_a_file_that_failed_later_is_named_once_in_the_acknowledgement(
    bot: Harness,
) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    tg.send_photo(chat, ana, jpeg(1))
    await bot.wait_text(chat["id"], "1 photo")
    [[burst_id]] = bot.rows("SELECT id FROM bursts")
    rt = _runtime(bot)
    await rt.services.albums.failed(chat["id"], burst_id, "IMG_12.jpg", "empty")
    await rt.acks.added(chat["id"])
    await bot.wait_text(chat["id"], "⚠️ IMG_12.jpg could not be added: the file is empty")
    [ack] = _acks(bot)
    assert len(tg.calls("sendMessage")) == 1  # said in the acknowledgement's own message
    tg.send_photo(chat, ana, jpeg(2))
    await bot.wait_text(chat["id"], "Just now: added 2 photos.")
    [ack] = _acks(bot)
    assert "IMG_12.jpg" not in (ack.text or "")  # named once, not again at every edit
