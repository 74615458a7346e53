"""`python -m bot` in webhook mode: Telegram (the fake) POSTs updates to the bot's own server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiohttp
from telegram import Update

from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import ANA, BotProcess, free_port, said
from tests.image_files import jpeg

SECRET = "s3cret_Webhook-token"


def _count(data: Path, rows: str) -> int:
    with sqlite3.connect(data / "photostory.sqlite3") as conn:
        count: int = conn.execute(f"SELECT COUNT(*) FROM {rows}").fetchone()[0]
        return count


async def test_webhook_mode_end_to_end(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram"
    data = tmp_path / "data"
    bot = BotProcess(
        tg, gemini, data, tmp_path / "bot.log",
        WEBHOOK_URL=url, WEBHOOK_SECRET=SECRET, WEBHOOK_LISTEN="127.0.0.1",
        WEBHOOK_PORT=str(port), WEBHOOK_MAX_CONNECTIONS="7",
    )  # fmt: skip
    await bot.start()
    try:
        await tg.wait_for(lambda: tg.webhook is not None, timeout=30)
        calls = tg.calls("setWebhook")
        assert len(calls) == 1
        params = calls[0].params
        assert params["url"] == url
        assert params["secret_token"] == SECRET
        assert params["max_connections"] == 7
        assert sorted(params["allowed_updates"]) == sorted(Update.ALL_TYPES)
        assert not params.get("drop_pending_updates")
        assert tg.calls("getUpdates") == []  # no polling in webhook mode

        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
                assert (await response.json()) == {"status": "ok"}

        user = tg.user(user_id=ANA, first_name="Ana")
        chat = tg.private_chat(user)
        # Without the secret, or with a wrong one: refused before any handler sees it.
        tg.send_photo(chat, user, jpeg(1))
        assert await tg.deliver_webhook(secret=None) == 403
        tg.send_photo(chat, user, jpeg(2))
        assert await tg.deliver_webhook(secret="wrong") == 403
        assert _count(data, "received_updates") == 0  # nothing journaled
        assert await tg.deliver_webhook(body=b"{not json", secret=SECRET) == 400
        assert "not valid" in bot.output()

        tg.send_photo(chat, user, jpeg(3))
        assert await tg.deliver_webhook(secret=SECRET) == 200
        await tg.wait_for(lambda: said(tg, chat["id"], "1 photo"), timeout=30)
        # Every job done: the update handled, the photo stored, the acknowledgement sent.
        await tg.wait_for(lambda: _count(data, "jobs") == 0, timeout=30)
        assert _count(data, "received_updates WHERE handled_at IS NULL") == 0
        assert _count(data, "received_updates") == 1
        assert _count(data, "items") == 1  # the two refused photos were never stored
        assert not said(tg, chat["id"], "2 photos")
    finally:
        code = await bot.stop()
    assert code == 0, bot.output()
    assert "Stopped cleanly" in bot.output()
    assert SECRET not in bot.output()
