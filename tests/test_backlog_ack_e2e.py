"""A burst is timed by when its files were received, not by when a backlog let them be taken in.

Photos that wait behind a slow update of their chat (here a /story whose model call is held)
are acknowledged once, with all of them, as soon as they are taken in: their burst was quiet a
debounce long already. Not file by file as each is numbered, and not a debounce later.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.fakes.gemini_api import FakeGemini, Reply
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import ANA, BotProcess, said
from tests.image_files import jpeg
from tests.test_received_once_e2e import _db_now, _rows, _update_jobs

DEBOUNCE = 1.0
ADDED = re.compile(r"added (\d+) photos?")


async def test_photos_behind_a_backlog_are_acknowledged_once_with_all_of_them(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, storage_env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    env = {"ACK_DEBOUNCE_SECONDS": f"{DEBOUNCE:g}", **storage_env}
    bot = BotProcess(tg, gemini, data, tmp_path / "bot.log", **env)
    await bot.start()
    try:
        user = tg.user(user_id=ANA, first_name="Ana", language_code="en")
        chat = tg.private_chat(user)
        tg.send_photo(chat, user, jpeg(1))
        await tg.wait_for(lambda: said(tg, chat["id"], "1 photo"), timeout=30)

        # /story holds the chat (its model call waits on the gate): what comes next waits.
        gate = asyncio.Event()
        gemini.enqueue(Reply(text="# A day\n\nOne photo, one day.", gate=gate))
        tg.send_command(chat, user, "/story")
        await tg.wait_for(lambda: len(gemini.generate_requests()) == 1, timeout=30)
        for n in range(2, 7):
            tg.send_photo(chat, user, jpeg(n))
        await tg.wait_for(lambda: _update_jobs(env, data, "todo") == 5, timeout=30)
        # They were received and wait: their burst goes quiet while nothing takes them in.
        newest = "SELECT MAX(received_at) FROM received_updates"
        await tg.wait_for(
            lambda: _rows(env, data, f"SELECT {_db_now(env)} - ({newest})")[0][0] > DEBOUNCE,
            timeout=30,
        )
        sent_before = len(tg.calls("sendMessage"))
        gate.set()
        await tg.wait_for(lambda: said(tg, chat["id"], "added 5 photos"), timeout=30)
        await tg.wait_for(lambda: _update_jobs(env, data, "todo", "doing") == 0, timeout=30)
    finally:
        code = await bot.stop()
    assert code == 0, bot.output()

    # One acknowledgement for the five, sent with all of them: never a partial count first.
    counts = [
        int(found.group(1))
        for call in tg.calls("sendMessage")[sent_before:] + tg.calls("editMessageText")
        if (found := ADDED.search(str(call.params.get("text") or "")))
        and call.time >= tg.calls("sendMessage")[sent_before - 1].time
    ]
    assert counts == [5], counts
