"""The product as a process: started as the README says, stopped, killed, and its logs."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

from tests.fakes.gemini_api import FakeGemini, Reply, image_parts
from tests.fakes.telegram_api import JSON, FakeTelegram
from tests.harness import ANA, API_KEY, TOKEN, BotProcess, said
from tests.image_files import jpeg

# Journaled updates not handled yet, and the jobs that are to handle them (the local runner's).
PENDING_UPDATES = "SELECT COUNT(*) FROM received_updates WHERE handled_at IS NULL"
UPDATE_JOBS = "SELECT COUNT(*) FROM jobs WHERE task = 'update' AND status IN ('todo', 'doing')"


async def test_python_m_bot_answers_start_and_writes_a_story(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    bot = BotProcess(tg, gemini, tmp_path / "data", tmp_path / "bot.log")
    await bot.start()
    try:
        user = tg.user(user_id=ANA, first_name="Ana")
        chat = tg.private_chat(user)
        tg.send_command(chat, user, "/start")
        await tg.wait_for(lambda: said(tg, chat["id"], "Hi Ana"), timeout=30)
        tg.send_photo(chat, user, jpeg(1))
        tg.send_photo(chat, user, jpeg(2))
        gemini.enqueue(Reply(text="# Two photos\n\nA story from a real process."))
        tg.send_command(chat, user, "/story")
        await tg.wait_for(lambda: said(tg, chat["id"], "real process"), timeout=30)
        assert len(image_parts(gemini.generate_requests()[-1])) == 2
    finally:
        code = await bot.stop()
    assert code == 0, bot.output()
    assert (tmp_path / "data" / "photostory.sqlite3").is_file()


async def test_missing_configuration_is_explained_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "GEMINI_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 2
    text = err.decode()
    assert "TELEGRAM_BOT_TOKEN is not set" in text and "GEMINI_API_KEY is not set" in text


async def test_sigkill_mid_burst_loses_no_acknowledged_photo(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    bot = BotProcess(tg, gemini, data, tmp_path / "bot.log", ACK_DEBOUNCE_SECONDS="0.2")
    await bot.start()
    user = tg.user(user_id=ANA, first_name="Ana")
    chat = tg.private_chat(user)
    photos = [jpeg(n, size=(1600, 1200)) for n in range(30)]
    slow = asyncio.Event()  # photo 16 arrives over a slow connection: the kill comes meanwhile
    for n, photo in enumerate(photos):
        sent = tg.send_photo(chat, user, photo, media_group_id=f"g{n // 10}")
        if n == 15:
            tg.hold_download(sent["photo"][-1]["file_id"], slow)

    def acknowledged() -> int:
        counts = [0]
        for message in tg.bot_messages(chat["id"]):
            for version in message.history:
                if version.startswith("📸"):
                    counts.append(int(version.split(": ", 1)[1].split(" photo")[0]))
        return max(counts)

    def stored() -> list[tuple[str, str]]:
        with sqlite3.connect(data / "photostory.sqlite3") as conn:
            return conn.execute("SELECT source_sha256, model_sha256 FROM items").fetchall()

    await tg.wait_for(lambda: acknowledged() >= 3, timeout=30)
    await bot.stop(signal.SIGKILL)
    acked = acknowledged()
    rows = stored()
    # A photo is acknowledged once numbered, before its download: photo 16 is still downloading.
    assert len(rows) < 30, "the kill came too late to test anything"

    with sqlite3.connect(data / "photostory.sqlite3") as conn:
        numbered = conn.execute(
            "SELECT position FROM items UNION ALL SELECT position FROM arrivals"
        )
        positions = sorted(position for (position,) in numbered)
    assert positions[:acked] == list(range(1, acked + 1))  # every acknowledged photo has its number
    for source, model in rows:
        assert (data / "media" / source[:2] / source).is_file()
        assert (data / "media" / model[:2] / model).is_file()

    # The restarted bot gets the unconfirmed updates again and completes the album, once each.
    slow.set()
    again = BotProcess(tg, gemini, data, tmp_path / "bot.log", ACK_DEBOUNCE_SECONDS="0.2")
    await again.start()

    def copies_made() -> bool:
        with sqlite3.connect(data / "photostory.sqlite3") as conn:
            return (
                conn.execute("SELECT COUNT(*) FROM items WHERE model_ready = 1").fetchone()[0] == 30
            )

    try:
        await tg.wait_for(lambda: acknowledged() == 30, timeout=60)
        await tg.wait_for(copies_made, timeout=60)  # including those the kill interrupted
    finally:
        assert await again.stop() == 0
    with sqlite3.connect(data / "photostory.sqlite3") as conn:
        assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 30
    assert list((data / "tmp").iterdir()) == []  # no half-written file left behind


async def _stopping_while_answering(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, answer: Reply
) -> tuple[BotProcess, JSON]:
    """A bot asked a question about a photo, sent SIGTERM while Gemini's `answer` is held by
    its gate: its graceful shutdown has begun. The bot and the chat."""
    bot = BotProcess(tg, gemini, tmp_path / "data", tmp_path / "bot.log")
    await bot.start()
    user = tg.user(user_id=ANA, first_name="Ana")
    chat = tg.private_chat(user)
    tg.send_photo(chat, user, jpeg(1))
    await tg.wait_for(lambda: said(tg, chat["id"], "1 photo"), timeout=30)
    gemini.enqueue(answer)
    tg.send_text(chat, user, "What is this?")
    await gemini.wait_for(lambda: gemini.generate_requests(), timeout=30)
    assert bot.process is not None
    bot.process.send_signal(signal.SIGTERM)
    await tg.wait_for(lambda: "finishing what is in flight" in bot.output())
    return bot, chat


async def test_sigterm_lets_an_answer_in_flight_finish(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    held = asyncio.Event()
    answer = Reply(text="Finished despite the shutdown.", gate=held)
    bot, chat = await _stopping_while_answering(tg, gemini, tmp_path, answer)
    held.set()
    code = await bot.wait(timeout=30)
    assert code == 0, bot.output()
    assert said(tg, chat["id"], "Finished despite the shutdown")
    with sqlite3.connect(tmp_path / "data" / "photostory.sqlite3") as conn:
        assert conn.execute("SELECT COUNT(*) FROM exchanges").fetchone()[0] == 1
        assert conn.execute(PENDING_UPDATES).fetchone()[0] == 0
        assert conn.execute(UPDATE_JOBS).fetchone()[0] == 0
    assert "Stopped cleanly" in bot.output()


async def test_second_sigterm_during_shutdown_exits_at_once(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    never = Reply(text="Never finished.", gate=asyncio.Event())  # held forever
    bot, _ = await _stopping_while_answering(tg, gemini, tmp_path, never)
    code = await bot.stop(signal.SIGTERM, timeout=10)
    assert code == 128 + signal.SIGTERM
    assert "Second SIGTERM: exiting without waiting" in bot.output()
    with sqlite3.connect(tmp_path / "data" / "photostory.sqlite3") as conn:
        # The unanswered question is still journaled with its job: the next start answers it.
        assert conn.execute(PENDING_UPDATES).fetchone()[0] == 1
        assert conn.execute(UPDATE_JOBS).fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM exchanges").fetchone()[0] == 0


async def test_sigusr1_writes_every_threads_stack_and_the_bot_goes_on(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    bot = BotProcess(tg, gemini, tmp_path / "data", tmp_path / "bot.log")
    await bot.start()
    user = tg.user(user_id=ANA, first_name="Ana")
    chat = tg.private_chat(user)
    tg.send_command(chat, user, "/start")
    await tg.wait_for(lambda: said(tg, chat["id"], "Hi Ana"), timeout=30)
    assert bot.process is not None
    bot.process.send_signal(signal.SIGUSR1)
    await tg.wait_for(lambda: "most recent call first" in bot.output(), timeout=30)
    dump = bot.output()
    assert "Current thread" in dump or "Thread 0x" in dump
    assert "bot/__main__.py" in dump  # the main thread, in the bot's own code
    assert TOKEN not in dump and API_KEY not in dump
    tg.send_photo(chat, user, jpeg(1))  # still running, still answering
    await tg.wait_for(lambda: said(tg, chat["id"], "1 photo"), timeout=30)
    assert await bot.stop(signal.SIGTERM) == 0


async def test_no_token_or_key_in_logs_or_messages_after_a_full_session(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    bot = BotProcess(tg, gemini, tmp_path / "data", tmp_path / "bot.log", LOG_LEVEL="DEBUG")
    await bot.start()
    try:
        user = tg.user(user_id=ANA, first_name="Ana")
        chat = tg.private_chat(user)
        tg.send_command(chat, user, "/start")
        await tg.wait_for(lambda: said(tg, chat["id"], "Hi Ana"), timeout=30)
        tg.send_photo(chat, user, jpeg(1))
        broken = tg.send_photo(chat, user, jpeg(2))
        tg.fail_download(broken["photo"][-1]["file_id"], mode="drop", times=5)
        # Named in the burst's acknowledgement, with the reason (no longer a reply of its own).
        failed = "could not be added: its download from Telegram failed"
        await tg.wait_for(lambda: said(tg, chat["id"], failed), timeout=30)
        gemini.enqueue(Reply(status=403, message=f"API key {API_KEY} rejected"))
        tg.send_text(chat, user, "What is this?")
        await tg.wait_for(lambda: said(tg, chat["id"], "Gemini"), timeout=30)
        tg.send_command(chat, user, "/story")
        await tg.wait_for(lambda: len(gemini.generate_requests()) == 2, timeout=30)
        await tg.wait_for(lambda: said(tg, chat["id"], "Seen 1 image"), timeout=30)
    finally:
        assert await bot.stop() == 0
    log = bot.output()
    assert "HTTP" in log or "getUpdates" in log or "photostory is up" in log  # it did log
    assert TOKEN not in log and TOKEN.split(":")[1] not in log
    assert API_KEY not in log
    for message in tg.bot_messages(chat["id"]):
        for text in [*message.history, message.caption or ""]:
            assert TOKEN not in text and API_KEY not in text
