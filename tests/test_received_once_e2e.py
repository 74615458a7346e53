"""Received means kept: journaled before Telegram is answered, handled once, never dropped silently.

A second delivery of an update (a webhook resent after a lost 200, a poll re-delivered after a
restart) is recognised by its update_id and not handled again; handled ids are kept a day, by
the database's clock, then purged; an update that never finishes is given up after a few tries
with one sentence to its sender and a log line with its id.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.telegram.jobs import GAVE_UP
from tests.fakes.gemini_api import FakeGemini, Reply
from tests.fakes.telegram_api import Call, FakeTelegram
from tests.harness import ANA, BotProcess, FailingFirst, Harness, free_port, pg_rows, said
from tests.image_files import jpeg

SECRET = "s3cret_Webhook-token"
DAY = 24 * 3600


def _rows(env: dict[str, str], data: Path, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Run a statement on the bot's database (its SQLite file or DATABASE_URL), committed."""
    url = env.get("DATABASE_URL")
    if url:
        return pg_rows(url, sql, params)
    conn = sqlite3.connect(data / "photostory.sqlite3")
    try:
        rows = list(conn.execute(sql, params))
        conn.commit()
        return rows
    finally:
        conn.close()


def _db_now(env: dict[str, str]) -> str:
    """Now on the database's clock, in seconds since the epoch, as SQL."""
    if env.get("DATABASE_URL"):
        return "EXTRACT(EPOCH FROM clock_timestamp())"
    return "((julianday('now') - 2440587.5) * 86400.0)"


def _handled(env: dict[str, str], data: Path, update_id: int) -> bool:
    sql = "SELECT 1 FROM received_updates WHERE update_id = ? AND handled_at IS NOT NULL"
    return bool(_rows(env, data, sql, (update_id,)))


async def _webhook_bot(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, **env: str
) -> BotProcess:
    """`python -m bot` in webhook mode, started and registered with the fake Telegram."""
    port = free_port()
    bot = BotProcess(
        tg, gemini, tmp_path / "data", tmp_path / "bot.log",
        WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram", WEBHOOK_SECRET=SECRET,
        WEBHOOK_LISTEN="127.0.0.1", WEBHOOK_PORT=str(port), **env,
    )  # fmt: skip
    await bot.start()
    await tg.wait_for(lambda: tg.webhook is not None, timeout=30)
    return bot


def _update_jobs(env: dict[str, str], data: Path, *statuses: str) -> int:
    """How many jobs of the task "update" are in one of `statuses` (a finished job's row goes;
    a failed one is kept a day)."""
    table, task = (
        ("procrastinate_jobs", "task_name") if env.get("DATABASE_URL") else ("jobs", "task")
    )
    marks = ", ".join("?" for _ in statuses)
    sql = f"SELECT COUNT(*) FROM {table} WHERE {task} = 'update' AND CAST(status AS TEXT) IN ({marks})"
    return int(_rows(env, data, sql, statuses)[0][0])


def _last_update_id(tg: FakeTelegram) -> int:
    return int(tg.pending_updates()[-1]["update_id"])


async def test_a_polled_update_is_journaled_before_its_offset_is_confirmed(
    tg: FakeTelegram, bot: Harness, storage_env: dict[str, str]
) -> None:
    journaled_when_confirmed: list[bool] = []

    def confirming(call: Call) -> None:
        offset = int(call.params.get("offset") or 0)
        if offset > 1:  # confirms every update before `offset`
            sql = "SELECT COUNT(*) FROM received_updates WHERE update_id < ?"
            [(count, *_)] = _rows(storage_env, bot.data_dir, sql, (offset,))
            journaled_when_confirmed.append(int(count) == offset - 1)

    tg.watch("getUpdates", confirming)
    for n in range(3):
        tg.send_photo(bot.chat, bot.ana, jpeg(n))
    await bot.wait_text(bot.chat["id"], "3 photos")
    assert journaled_when_confirmed and all(journaled_when_confirmed)


async def test_a_question_polled_again_after_a_restart_is_answered_once(
    bot: Harness, storage_env: dict[str, str]
) -> None:
    tg, gemini = bot.tg, bot.gemini
    await bot.album_with_story()
    gemini.enqueue(Reply(text="Yes, the same day."))
    tg.send_text(bot.chat, bot.ana, "Same day?")
    question = _last_update_id(tg)
    await bot.wait_text(bot.chat["id"], "the same day")
    await tg.wait_for(lambda: _handled(storage_env, bot.data_dir, question))

    await bot.restart()
    tg.redeliver(question)  # its confirming offset never reached Telegram
    # Were the question run again, it would take the first reply and the next one the second.
    gemini.enqueue(Reply(text="It was sunny."), Reply(text="Answered twice."))
    tg.send_text(bot.chat, bot.ana, "How was the weather?")
    weather = _last_update_id(tg)
    await bot.wait_text(bot.chat["id"], "sunny", timeout=30)
    await tg.wait_for(lambda: _handled(storage_env, bot.data_dir, weather))

    assert len(gemini.generate_requests()) == 3  # the story and two questions
    assert not said(tg, bot.chat["id"], "Answered twice")
    assert len(bot.rows("SELECT * FROM exchanges")) == 3


async def test_a_webhook_update_sent_again_after_its_200_is_answered_once(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, storage_env: dict[str, str]
) -> None:
    bot = await _webhook_bot(tg, gemini, tmp_path, **storage_env)
    data = tmp_path / "data"  # the DATA_DIR _webhook_bot gave it
    try:
        user = tg.user(user_id=ANA, first_name="Ana", language_code="en")
        chat = tg.private_chat(user)
        for n in range(2):
            tg.send_photo(chat, user, jpeg(n))
            assert await tg.deliver_webhook(secret=SECRET) == 200
        await tg.wait_for(lambda: said(tg, chat["id"], "2 photos"), timeout=30)
        gemini.enqueue(Reply(text="# Story\n\nThe tram (photo 1)."))
        tg.send_command(chat, user, "/story")
        assert await tg.deliver_webhook(secret=SECRET) == 200
        await tg.wait_for(lambda: said(tg, chat["id"], "That was the story of"), timeout=30)

        gemini.enqueue(Reply(text="Yes, the same day."))
        tg.send_text(chat, user, "Same day?")
        question = tg.take_updates()[0]
        assert await tg.deliver_webhook(question, secret=SECRET) == 200
        # Journaled before the 200: a crash from here on does not lose it.
        sql = "SELECT 1 FROM received_updates WHERE update_id = ?"
        assert _rows(storage_env, data, sql, (question["update_id"],))
        await tg.wait_for(lambda: said(tg, chat["id"], "the same day"), timeout=30)
        await tg.wait_for(lambda: _handled(storage_env, data, question["update_id"]), timeout=30)

        # The 200 was lost on the way: Telegram sends the same update again.
        assert await tg.deliver_webhook(question, secret=SECRET) == 200
        # Were the question run again, it would take the first reply and the next one the second.
        gemini.enqueue(Reply(text="It was sunny."), Reply(text="Answered twice."))
        tg.send_text(chat, user, "How was the weather?")
        weather = tg.take_updates()[0]
        assert await tg.deliver_webhook(weather, secret=SECRET) == 200
        await tg.wait_for(lambda: said(tg, chat["id"], "sunny"), timeout=30)
        await tg.wait_for(lambda: _handled(storage_env, data, weather["update_id"]), timeout=30)
    finally:
        code = await bot.stop()
    assert code == 0, bot.output()
    assert len(gemini.generate_requests()) == 3  # the story and two questions
    assert not said(tg, chat["id"], "Answered twice")


async def test_handled_ids_are_kept_a_day_by_the_database_clock_then_purged(
    bot: Harness, storage_env: dict[str, str]
) -> None:
    now = _db_now(storage_env)
    insert = "INSERT INTO received_updates (update_id, received_at, handled_at) VALUES "
    _rows(
        storage_env, bot.data_dir, f"{insert}(900001, {now} - {DAY + 7200}, {now} - {DAY + 3600})"
    )
    _rows(storage_env, bot.data_dir, f"{insert}(900002, {now} - {DAY}, {now} - {DAY - 3600})")
    _rows(storage_env, bot.data_dir, f"{insert}(900003, {now} - {DAY + 7200}, NULL)")  # pending

    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    handling = _last_update_id(bot.tg)
    await bot.wait_text(bot.chat["id"], "1 photo")
    await bot.tg.wait_for(lambda: _handled(storage_env, bot.data_dir, handling))

    kept = _rows(storage_env, bot.data_dir, "SELECT update_id FROM received_updates")
    assert sorted(int(row[0]) for row in kept) == [handling, 900002, 900003]


async def test_an_update_that_never_finishes_is_given_up_with_one_sentence(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, storage_env: dict[str, str]
) -> None:
    data, log = tmp_path / "data", tmp_path / "bot.log"
    env = {"JOB_STALL_SECONDS": "1", "GEMINI_TIMEOUT_SECONDS": "300", **storage_env}
    user = tg.user(user_id=ANA, first_name="Ana", language_code="en")
    chat = tg.private_chat(user)
    gave_up = "tried several times"
    assert gave_up in GAVE_UP
    bot = BotProcess(tg, gemini, data, log, **env)
    await bot.start()
    tg.send_photo(chat, user, jpeg(1))
    await tg.wait_for(lambda: said(tg, chat["id"], "1 photo"), timeout=30)
    # /story's request to Gemini never ends: every process that runs its job is killed while
    # it waits, so the job crashes its process until it is out of attempts.
    never = asyncio.Event()
    gemini.enqueue(*(Reply(text="# Story\n\nNever told.", gate=never) for _ in range(6)))
    story = tg.send_command(chat, user, "/story")
    poisoned = _last_update_id(tg)

    processes = 1
    while True:
        asked = len(gemini.generate_requests())
        await tg.wait_for(
            lambda: len(gemini.generate_requests()) > asked or said(tg, chat["id"], gave_up),  # noqa: B023
            timeout=60,
        )
        if said(tg, chat["id"], gave_up):
            break
        await bot.stop(signal.SIGKILL)
        processes += 1
        assert processes <= 6, "retried without end"
        bot = BotProcess(tg, gemini, data, log, **env)
        await bot.start()

    # It tells once, in reply to the message, and logs the update's id.
    [told] = [m for m in tg.bot_messages(chat["id"]) if gave_up in (m.text or "")]
    assert told.reply_to_message_id == story["message_id"]
    assert f"Gave up update {poisoned}" in bot.output()
    tries = len(gemini.generate_requests())
    assert 1 <= tries <= 3  # the update job's attempts, each crash counted
    # The bot goes on: the next photo is taken, the given-up update is not run again.
    tg.send_photo(chat, user, jpeg(2))
    await tg.wait_for(lambda: said(tg, chat["id"], "”: 2 photos"), timeout=30)
    assert await bot.stop() == 0, bot.output()
    again = BotProcess(tg, gemini, data, log, **env)
    await again.start()
    tg.send_photo(chat, user, jpeg(3))
    await tg.wait_for(lambda: said(tg, chat["id"], "”: 3 photos"), timeout=30)
    assert await again.stop() == 0, again.output()
    assert len(gemini.generate_requests()) == tries
    assert len([m for m in tg.bot_messages(chat["id"]) if gave_up in (m.text or "")]) == 1
    assert _update_jobs(storage_env, data, "todo", "doing") == 0  # nothing left to run
    assert _handled(storage_env, data, poisoned)  # its id is purged a day later, as others'
    never.set()


async def test_an_update_whose_handler_raises_gets_the_apology_once_and_is_not_run_again(
    bot: Harness, storage_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    tg = bot.tg
    tg.fail_next("sendMessage", 400, "Bad Request: can't parse entities", times=1)
    tg.send_command(bot.chat, bot.ana, "/help")
    failing = _last_update_id(tg)
    await bot.wait_text(bot.chat["id"], "Nothing was lost")
    await tg.wait_for(lambda: _handled(storage_env, bot.data_dir, failing))
    assert f"Unhandled error while handling update {failing}" in caplog.text

    await bot.restart()
    tg.redeliver(failing)
    tg.send_command(bot.chat, bot.ana, "/start")
    after = _last_update_id(tg)
    await tg.wait_for(lambda: _handled(storage_env, bot.data_dir, after))
    assert len(tg.calls("sendMessage")) == 3  # the failed help, the apology, /start's reply
    # Its job finished (not retried, not failed): the apology was all there was to do.
    await tg.wait_for(lambda: _update_jobs(storage_env, bot.data_dir, "todo", "doing") == 0)
    assert _update_jobs(storage_env, bot.data_dir, "failed") == 0


def _busy(bot: Harness) -> Exception:
    """What the bot's database raises when it fails a moment: SQLite's busy writer, or a
    PostgreSQL connection lost."""
    if bot.settings.database_url:
        return psycopg.OperationalError("server closed the connection unexpectedly")
    return sqlite3.OperationalError("database is locked")


async def test_a_photo_whose_intake_meets_a_busy_database_is_taken_by_the_next_try(
    bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The photo's update cannot be written a moment: its job runs it again, and the photo is
    # kept, rather than an apology ("please try again") and a photo the traveller must resend.
    arrivals = bot.services.storage.arrivals
    busy = FailingFirst(arrivals.reserve, _busy(bot))
    monkeypatch.setattr(arrivals, "reserve", busy)
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    await bot.wait_text(bot.chat["id"], "1 photo")
    await bot.wait_stored()
    assert busy.failed
    assert len(bot.rows("SELECT 1 FROM items")) == 1
    assert not any("Nothing was lost" in text for text in bot.texts(bot.chat["id"]))


async def test_an_update_the_database_fails_every_try_gets_the_apology_once(
    bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrivals = bot.services.storage.arrivals
    busy = FailingFirst(arrivals.reserve, _busy(bot), times=99)
    monkeypatch.setattr(arrivals, "reserve", busy)
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    await bot.wait_text(bot.chat["id"], "Nothing was lost")
    assert len(busy.failed) == 3  # the update job's attempts; the last one apologised
    assert sum("Nothing was lost" in text for text in bot.texts(bot.chat["id"])) == 1


async def test_a_webhook_update_not_journaled_is_answered_503_and_handled_once_when_resent(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    # The embedded configuration: one process owns its SQLite file and its inbox.
    bot = await _webhook_bot(tg, gemini, tmp_path)
    data = tmp_path / "data"  # the DATA_DIR _webhook_bot gave it
    try:
        user = tg.user(user_id=ANA, first_name="Ana", language_code="en")
        chat = tg.private_chat(user)
        tg.send_photo(chat, user, jpeg(1))
        first = _last_update_id(tg)
        assert await tg.deliver_webhook(secret=SECRET) == 200
        await tg.wait_for(lambda: said(tg, chat["id"], "1 photo"), timeout=30)
        await tg.wait_for(lambda: _handled({}, data, first), timeout=30)

        # Another connection holds the database's write lock: the journal cannot be written
        # (the bot waits out its busy timeout, then gives up on the write).
        tg.send_photo(chat, user, jpeg(2))
        photo = tg.take_updates()[0]
        locker = sqlite3.connect(data / "photostory.sqlite3", isolation_level=None)
        try:
            locker.execute("BEGIN IMMEDIATE")
            assert await tg.deliver_webhook(photo, secret=SECRET) == 503
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert "Telegram will resend it" in bot.output()
        sql = "SELECT 1 FROM received_updates WHERE update_id = ?"
        assert not _rows({}, data, sql, (photo["update_id"],))

        # Telegram sends it again after the 503; the journal works again.
        assert await tg.deliver_webhook(photo, secret=SECRET) == 200
        await tg.wait_for(lambda: said(tg, chat["id"], "2 photos"), timeout=30)
        await tg.wait_for(lambda: _handled({}, data, photo["update_id"]), timeout=30)
    finally:
        code = await bot.stop()
    assert code == 0, bot.output()
    assert _rows({}, data, "SELECT COUNT(*) FROM items")[0][0] == 2  # handled once
