"""The real bot on PostgreSQL (DATABASE_URL): an album, its acknowledgement, /story, the rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.gemini_api import FakeGemini, Reply
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import ANA, BotProcess, Harness, pg_rows
from tests.image_files import jpeg
from tests.test_story_e2e import story


@pytest.fixture
async def pg_bot(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, postgres_url: str
) -> AsyncIterator[Harness]:
    harness = Harness(tg, gemini, tmp_path / "data", DATABASE_URL=postgres_url)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def test_an_album_and_its_story_are_kept_in_postgresql(pg_bot: Harness) -> None:
    bot, chat = pg_bot, pg_bot.chat
    bot.tg.send_text(chat, bot.ana, "Our week in Porto")
    for n in range(3):
        bot.tg.send_photo(chat, bot.ana, jpeg(n), caption="Ribeira" if n == 0 else None,
                          media_group_id="g")  # fmt: skip
    await bot.wait_text(chat["id"], "3 photos")
    bot.gemini.enqueue(Reply(json=story(("The river", "Photos 1-3.", [1, 2, 3])), chunks=None))
    bot.tg.send_command(chat, bot.ana, "/story")
    await bot.wait_text(chat["id"], "And then we flew home")

    assert not (bot.data_dir / "photostory.sqlite3").exists()  # nothing went to SQLite
    [album] = bot.rows("SELECT * FROM albums WHERE chat_id = ?", (chat["id"],))
    items = bot.rows("SELECT * FROM items WHERE album_id = ? ORDER BY position", (album["id"],))
    assert [(i["position"], i["kind"], i["sender_id"]) for i in items] == [
        (1, "photo", ANA), (2, "photo", ANA), (3, "photo", ANA),
    ]  # fmt: skip
    assert items[0]["caption"] == "Ribeira"
    assert len({i["source_sha256"] for i in items}) == 3
    assert [n["text"] for n in bot.rows("SELECT text FROM notes")] == ["Our week in Porto"]
    [exchange] = bot.rows("SELECT kind, answer_text FROM exchanges")
    assert exchange["kind"] == "story" and "The river" in exchange["answer_text"]
    assert bot.rows("SELECT SUM(total_tokens) AS t FROM usage")[0]["t"] > 0
    # Every update handled is crossed off (the last one just after its reply).
    pending = "SELECT * FROM received_updates WHERE handled_at IS NULL"
    await bot.tg.wait_for(lambda: not bot.rows(pending))
    files = {p.name for p in bot.media_files()}
    assert {i["source_sha256"] for i in items} <= files


async def test_python_m_bot_runs_on_postgresql_and_never_logs_the_password(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, postgres_url: str
) -> None:
    # The test server trusts loopback, so any password is accepted: this one must not be logged.
    url = postgres_url.replace("postgres@", "postgres:n0t-in-the-log-pw@")
    bot = BotProcess(tg, gemini, tmp_path / "data", tmp_path / "bot.log", DATABASE_URL=url)
    await bot.start()
    try:
        user = tg.user(user_id=ANA, first_name="Ana")
        chat = tg.private_chat(user)
        tg.send_photo(chat, user, jpeg(1))
        await tg.wait_for(lambda: any("1 photo" in (m.text or "") for m in tg.bot_messages(chat["id"])),
                          timeout=30)  # fmt: skip
        # Acknowledged once received; stored by its job (here, before the stop).
        await tg.wait_for(lambda: len(pg_rows(url, "SELECT * FROM items")) == 1, timeout=30)
    finally:
        code = await bot.stop()
    assert code == 0, bot.output()
    assert len(pg_rows(url, "SELECT * FROM items")) == 1
    assert not (tmp_path / "data" / "photostory.sqlite3").exists()
    assert "n0t-in-the-log-pw" not in bot.output()
