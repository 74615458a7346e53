"""Chats run in parallel; strangers are turned away before anything of theirs is touched."""

from __future__ import annotations

import asyncio

from tests.fakes.gemini_api import Reply
from tests.harness import Harness
from tests.image_files import jpeg


async def test_slow_model_answer_in_one_chat_does_not_delay_another(bot: Harness) -> None:
    tg = bot.tg
    chat_a, chat_b = bot.chat, tg.private_chat(bot.bob_en)
    tg.send_photo(chat_a, bot.ana, jpeg(1))
    tg.send_photo(chat_b, bot.bob_en, jpeg(2))
    await bot.wait_text(chat_a["id"], "1 photo")
    await bot.wait_text(chat_b["id"], "1 photo")

    held = asyncio.Event()
    bot.gemini.enqueue(
        Reply(text="Chat A's story.", gate=held, match=lambda body: "photo tour" in str(body))
    )
    tg.send_command(chat_a, bot.ana, "/story")
    await bot.gemini.wait_for(lambda: len(bot.gemini.generate_requests()) == 1)

    bot.gemini.enqueue(Reply(text="Chat B's answer."))
    tg.send_text(chat_b, bot.bob_en, "What is in my photo?")
    await bot.wait_text(chat_b["id"], "Chat B's answer")
    assert not any("Chat A's story" in t for t in bot.texts(chat_a["id"]))  # A still waiting

    held.set()
    await bot.wait_text(chat_a["id"], "Chat A's story")


async def test_messages_of_one_chat_are_handled_in_order(bot: Harness) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    tg.send_photo(chat, ana, jpeg(1))
    tg.send_command(chat, ana, "/story")  # must see the photo sent just before it
    await bot.wait_text(chat["id"], "Seen 1 image")


async def test_stranger_is_told_their_id_and_nothing_of_theirs_is_used(bot: Harness) -> None:
    tg = bot.tg
    chat = tg.private_chat(bot.eve)
    for n in range(5):
        tg.send_photo(chat, bot.eve, jpeg(n), media_group_id="eve")
    tg.send_command(chat, bot.eve, "/story")
    tg.send_text(chat, bot.eve, "hello?")
    reply = await bot.wait_text(chat["id"], "this bot is private")
    assert str(bot.eve["id"]) in reply and "ALLOWED_USERS" in reply
    # Let the bot handle something after Eve's updates, then check nothing of hers was used.
    tg.send_command(bot.chat, bot.ana, "/help")
    await bot.wait_text(bot.chat["id"], "Send me the photos")
    assert len(bot.texts(chat["id"])) == 1  # one answer for the whole burst
    assert tg.getfile_calls() == []
    assert bot.gemini.requests == []
    assert bot.rows("SELECT * FROM items") == []
    assert bot.rows("SELECT * FROM albums WHERE chat_id = ?", (chat["id"],)) == []


async def test_command_menu_is_registered_at_start_up(bot: Harness) -> None:
    # The menus of every language are registered in the background, beside the first polls.
    await bot.tg.wait_for(lambda: bot.tg.commands)
    names = [c["command"] for c in bot.tg.commands]
    for expected in ("story", "landmarks", "new", "albums", "reset", "undo", "help"):
        assert expected in names
