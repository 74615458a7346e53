"""Telegram and File API faults: retried where that helps, one clear sentence where not, and
never a half-stored photo, story or answer."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pytest

from storage.jobs import Job
from storage.sql.inbox_store import SqlInboxStore
from tests.fakes.gemini_api import Reply
from tests.harness import Harness, ever_said
from tests.image_files import jpeg

APOLOGY = "something went wrong"


def _item_rows(bot: Harness) -> list[dict[str, Any]]:
    return [dict(row) for row in bot.rows("SELECT * FROM items ORDER BY id")]


def _failed(bot: Harness, method: str) -> list[str]:
    return [c.error or "" for c in bot.tg.calls(method) if c.error]


def _no_apology(bot: Harness) -> None:
    assert not any(APOLOGY in t.lower() for t in bot.texts(bot.chat["id"]))


async def _photo(bot: Harness, seed: int, count: int) -> None:
    """Ana sends a photo; wait until the acknowledgement says the album holds `count`."""
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(seed))
    await bot.wait_text(bot.chat["id"], f"”: {count} photo")


async def _stored(bot: Harness, count: int) -> None:
    """The album holds `count` photos, downloaded and stored (after the acknowledgement, which
    counts what was received, their ingest jobs store them)."""
    await bot.tg.wait_for(lambda: len(_item_rows(bot)) == count)


def _named_once(bot: Harness, line: str) -> None:
    """The acknowledgement (or its one follow-up) named the failed file, once in all."""
    assert len([t for t in ever_said(bot.tg, bot.chat["id"]) if line in t]) == 1


def _answers(bot: Harness, needle: str) -> list[str]:
    return [t for t in bot.texts(bot.chat["id"]) if needle in t]


# Telegram refusing or failing what the bot sends ------------------------------------------


async def test_flood_limit_on_the_acknowledgement_is_waited_out(bot: Harness) -> None:
    bot.tg.fail_next("sendMessage", 429, retry_after=1)
    await _photo(bot, 1, 1)

    sends = bot.tg.calls("sendMessage")
    assert [c.error is not None for c in sends] == [True, False]
    assert "retry after 1" in (sends[0].error or "")
    assert sends[1].time - sends[0].time >= 1.0  # waited as long as Telegram asked
    await _stored(bot, 1)
    await _photo(bot, 2, 2)


async def test_flood_limit_on_an_answer_is_waited_out(bot: Harness) -> None:
    await _photo(bot, 1, 1)
    bot.gemini.enqueue(Reply(text="It is the Belém tower."))
    bot.tg.fail_next("sendMessage", 429, retry_after=1)
    bot.tg.send_text(bot.chat, bot.ana, "What is this?")

    await bot.wait_text(bot.chat["id"], "Belém tower")
    assert len(_failed(bot, "sendMessage")) == 1
    assert len(_answers(bot, "Belém tower")) == 1
    assert len(bot.rows("SELECT * FROM exchanges")) == 1
    _no_apology(bot)
    await _photo(bot, 2, 2)


@pytest.mark.parametrize("status", [500, 502])
async def test_telegram_5xx_on_an_answer_is_retried_and_the_answer_arrives(
    bot: Harness, status: int
) -> None:
    await _photo(bot, 1, 1)
    bot.gemini.enqueue(Reply(text="It is the Belém tower."))
    bot.tg.fail_next("sendMessage", status)
    bot.tg.send_text(bot.chat, bot.ana, "What is this?")

    await bot.tg.wait_for(lambda: _answers(bot, "Belém tower") or _answers(bot, "Sorry"))
    assert len(_failed(bot, "sendMessage")) == 1
    assert len(_answers(bot, "Belém tower")) == 1
    assert len(bot.rows("SELECT * FROM exchanges")) == 1  # stored once, shown once
    _no_apology(bot)


@pytest.mark.parametrize("status", [500, 502])
async def test_telegram_5xx_on_an_answer_never_leaves_a_half_stored_exchange(
    bot: Harness, status: int
) -> None:
    await _photo(bot, 1, 1)
    bot.gemini.enqueue(Reply(text="It is the Belém tower."))
    bot.tg.fail_next("sendMessage", status)
    bot.tg.send_text(bot.chat, bot.ana, "What is this?")
    await bot.gemini.wait_for(lambda: len(bot.gemini.generate_requests()) == 1)
    await bot.tg.wait_for(lambda: _failed(bot, "sendMessage"))

    # Whatever the bot says next, the history holds the exchange whole, or not at all.
    bot.gemini.enqueue(Reply(text="Built in the 16th century."))
    bot.tg.send_text(bot.chat, bot.ana, "When was it built?")
    await bot.wait_text(bot.chat["id"], "16th century")
    rows = bot.rows("SELECT user_text, answer_text FROM exchanges ORDER BY id")
    assert [r["user_text"] for r in rows][-1] == "When was it built?"
    assert all(r["answer_text"] for r in rows)
    turns = bot.gemini.generate_requests()[-1]["contents"]
    assert [c["role"] for c in turns] == ["user", "model"] * len(rows[:-1]) + ["user"]


async def test_telegram_5xx_on_the_acknowledgement_is_retried(bot: Harness) -> None:
    bot.tg.fail_next("sendMessage", 500)
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    await bot.wait_text(bot.chat["id"], "1 photo", timeout=5)  # a retry comes within seconds
    assert len(_failed(bot, "sendMessage")) == 1
    await _stored(bot, 1)


async def test_telegram_5xx_on_the_acknowledgement_loses_no_photo(bot: Harness) -> None:
    bot.tg.fail_next("sendMessage", 500)
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    await bot.tg.wait_for(lambda: _failed(bot, "sendMessage"))
    await _stored(bot, 1)
    await _photo(bot, 2, 2)  # the next acknowledgement counts both
    await _stored(bot, 2)


# Downloads --------------------------------------------------------------------------------
# A failure registered right after send_photo, with no await in between, is in place before
# the bot sees the update: the fake and the bot run on the test's event loop.


async def test_connection_dropped_during_a_download_is_retried_and_the_photo_stored_whole(
    bot: Harness,
) -> None:
    await _photo(bot, 1, 1)
    data = jpeg(2)
    sent = bot.tg.send_photo(bot.chat, bot.ana, data)
    bot.tg.fail_download(sent["photo"][-1]["file_id"], mode="drop", times=1)

    await bot.wait_text(bot.chat["id"], "2 photos")
    await bot.wait_stored()  # the acknowledgement counts it once received, before its download
    rows = _item_rows(bot)
    assert len(rows) == 2
    sha = hashlib.sha256(data).hexdigest()
    assert rows[1]["source_sha256"] == sha
    assert bot.blob_bytes(sha) == data
    assert len(bot.tg.getfile_calls()) == 3  # the first photo, then the broken try and the retry
    assert list((bot.data_dir / "tmp").iterdir()) == []


@pytest.mark.parametrize("mode", ["drop", "500"])
async def test_download_that_keeps_failing_is_named_in_the_acknowledgement_and_stores_nothing(
    bot: Harness, mode: str
) -> None:
    await _photo(bot, 1, 1)
    await bot.wait_stored()
    before = _item_rows(bot)
    files = bot.media_files()
    sent = bot.tg.send_photo(bot.chat, bot.ana, jpeg(2))
    bot.tg.fail_download(sent["photo"][-1]["file_id"], mode=mode, times=5)

    # Counted once received; named in its burst's acknowledgement once its download failed.
    failed = "photo 2 could not be added: its download from Telegram failed"
    await bot.wait_text(bot.chat["id"], failed)
    await bot.wait_stored()
    _named_once(bot, failed)
    assert _item_rows(bot) == before
    assert bot.media_files() == files
    assert list((bot.data_dir / "tmp").iterdir()) == []
    _no_apology(bot)
    await _photo(bot, 3, 2)


async def test_getfile_500_is_retried_and_the_photo_stored(bot: Harness) -> None:
    await _photo(bot, 1, 1)
    await bot.wait_stored()  # the first photo's getFile is done: the failure is the second's
    bot.tg.fail_next("getFile", 500)
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(2))

    await bot.wait_text(bot.chat["id"], "2 photos")
    await bot.wait_stored()
    assert len(_failed(bot, "getFile")) == 1
    await _stored(bot, 2)


async def test_getfile_failing_every_time_is_named_in_the_acknowledgement_and_stores_nothing(
    bot: Harness,
) -> None:
    await _photo(bot, 1, 1)
    await bot.wait_stored()
    before = _item_rows(bot)
    bot.tg.fail_next("getFile", 500, times=3)
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(2))

    failed = "photo 2 could not be added: its download from Telegram failed"
    await bot.wait_text(bot.chat["id"], failed)
    await bot.wait_stored()
    _named_once(bot, failed)
    assert len(_failed(bot, "getFile")) == 3
    assert _item_rows(bot) == before
    _no_apology(bot)
    await _photo(bot, 3, 2)


# The File API -----------------------------------------------------------------------------


def _upload_starts(bot: Harness, status: int) -> int:
    return sum(1 for r in bot.gemini.requests if r.kind == "upload_start" and r.status == status)


async def test_file_api_outage_shorter_than_the_retries_is_ridden_out(bot: Harness) -> None:
    await bot.two_photos()
    # Each photo's upload is tried up to GEMINI_ATTEMPTS (3) times: two failures in all
    # leave every photo at least one more try, however they are shared out.
    bot.gemini.fail_uploads(status=503, times=2)
    bot.gemini.enqueue(Reply(text="# Story\n\nTrams and tiles."))
    bot.tg.send_command(bot.chat, bot.ana, "/story")

    await bot.wait_text(bot.chat["id"], "Trams and tiles")
    assert _upload_starts(bot, 503) == 2
    assert len(bot.gemini.uploads()) == 2
    assert len(bot.rows("SELECT * FROM uploads")) == 2
    assert len(bot.rows("SELECT * FROM exchanges")) == 1
    assert not any("file service" in t for t in bot.texts(bot.chat["id"]))
    _no_apology(bot)


async def test_file_api_outage_gets_one_sentence_stores_nothing_and_the_next_story_works(
    bot: Harness,
) -> None:
    await bot.two_photos()
    bot.gemini.fail_uploads(status=503, times=6)  # every try of both photos
    story = bot.tg.send_command(bot.chat, bot.ana, "/story")

    text = await bot.wait_reply(story, "file service")
    assert "try again" in text
    await bot.gemini.wait_for(lambda: _upload_starts(bot, 503) == 6)  # 3 tries per photo
    assert bot.gemini.generate_requests() == []  # nothing was asked without the photos
    assert bot.rows("SELECT * FROM exchanges") == []
    assert bot.rows("SELECT * FROM uploads") == []
    await _stored(bot, 2)
    _no_apology(bot)

    bot.gemini.enqueue(Reply(text="# Story\n\nTrams and tiles."))
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "Trams and tiles")
    assert len(bot.rows("SELECT * FROM exchanges")) == 1
    assert len(bot.rows("SELECT * FROM uploads")) == 2


async def test_an_update_the_inbox_cannot_write_down_is_still_handled(
    bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    receive_many = SqlInboxStore.receive_many
    refused: list[int] = []

    async def locked_once(self: SqlInboxStore, updates: Sequence[tuple[int, Job]]) -> list[bool]:
        if not refused:
            refused.append(updates[0][0])
            raise OSError("database is locked")
        return await receive_many(self, updates)

    monkeypatch.setattr(SqlInboxStore, "receive_many", locked_once)
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    await bot.wait_text(bot.chat["id"], "1 photo")
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(2))  # polling went on
    await bot.wait_text(bot.chat["id"], "2 photos")
    await bot.wait_stored()
    assert len(refused) == 1 and len(bot.rows("SELECT * FROM items")) == 2
