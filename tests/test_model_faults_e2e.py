"""Gemini failures: one clear sentence each, history untouched, and the next question works."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.gemini_api import FakeGemini, Reply
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import Harness
from tests.image_files import jpeg

CASES = {
    "rate_limited": ([Reply(status=429, retry_delay="120s")], "Gemini is busy right now"),
    "server_errors": ([Reply(status=500)] * 3, "Gemini is having trouble"),
    "unavailable": ([Reply(status=503)] * 3, "Gemini is having trouble"),
    "safety_block": ([Reply(finish_reason="SAFETY")], "safety reasons"),
    "prompt_blocked": ([Reply(block_reason="PROHIBITED_CONTENT")], "declined"),
    "recitation": ([Reply(finish_reason="RECITATION")], "too close to text published"),
    "empty_answer": ([Reply(text="")], "empty answer"),
    "stream_cut": ([Reply(text="word " * 200, chunks=["word " * 50] * 4, cut_after=2)], "broke"),
}


@pytest.fixture
async def slow_bot(tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tg, gemini, tmp_path / "data", GEMINI_TIMEOUT_SECONDS="1")
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def _ask_after_failure(bot: Harness, replies: list[Reply], expected: str) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    tg.send_photo(chat, ana, jpeg(1))
    await bot.wait_text(chat["id"], "1 photo")
    bot.gemini.enqueue(Reply(text="# Story\n\nA first answer."))
    tg.send_command(chat, ana, "/story")
    await bot.wait_text(chat["id"], "A first answer")

    bot.gemini.enqueue(*replies)
    tg.send_text(chat, ana, "Which city is this?")
    await bot.wait_text(chat["id"], expected)
    assert len(bot.rows("SELECT * FROM exchanges")) == 1  # nothing half-stored

    bot.gemini.enqueue(Reply(text="It is Lisbon."))
    tg.send_text(chat, ana, "Which city is this?")
    await bot.wait_text(chat["id"], "It is Lisbon")
    roles = [c["role"] for c in bot.gemini.generate_requests()[-1]["contents"]]
    assert roles == ["user", "model", "user"]
    assert len(bot.rows("SELECT * FROM exchanges")) == 2


@pytest.mark.parametrize("case", list(CASES))
async def test_model_failure_gets_a_clear_sentence_and_the_next_question_works(
    bot: Harness, case: str
) -> None:
    replies, expected = CASES[case]
    await _ask_after_failure(bot, list(replies), expected)


async def test_timeout_gets_a_clear_sentence_and_the_next_question_works(slow_bot: Harness) -> None:
    await _ask_after_failure(slow_bot, [Reply(text="late", delay=3.0)], "took too long")


async def test_short_429_delay_and_a_burst_of_5xx_are_retried_transparently(bot: Harness) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    tg.send_photo(chat, ana, jpeg(1))
    await bot.wait_text(chat["id"], "1 photo")
    bot.gemini.enqueue(Reply(status=429, retry_delay="0.05s"), Reply(text="After a pause."))
    tg.send_text(chat, ana, "What is this?")
    await bot.wait_text(chat["id"], "After a pause")
    bot.gemini.enqueue(Reply(status=503), Reply(status=500), Reply(text="After a burst."))
    tg.send_text(chat, ana, "And this?")
    await bot.wait_text(chat["id"], "After a burst")
    assert not any("Gemini is" in t for t in bot.texts(chat["id"]))
    assert len(bot.rows("SELECT * FROM exchanges")) == 2
