"""/usage says which prices its costs assume: the model's list price on the day, or the
operator's PRICE_*, and gives no cost where it knows no price."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import DEFAULT_MODEL
from bot.model_facts import list_price
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import Harness, jpeg

MakeBot = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_bot(tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path) -> AsyncIterator[MakeBot]:
    started: list[Harness] = []

    async def make(**env: str) -> Harness:
        harness = Harness(tg, gemini, tmp_path / "data", **env)
        await harness.start()
        started.append(harness)
        return harness

    yield make
    for harness in started:
        await harness.stop()


async def _usage_after_one_question(bot: Harness) -> str:
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    await bot.wait_text(bot.chat["id"], "1 photo")
    bot.tg.send_text(bot.chat, bot.ana, "What is this?")
    await bot.wait_text(bot.chat["id"], "Last question")
    bot.tg.send_command(bot.chat, bot.ana, "/usage")
    return await bot.wait_text(bot.chat["id"], "Your Gemini usage")


def _today_cost(report: str) -> str | None:
    today = next(line for line in report.splitlines() if line.startswith("Today"))
    found = re.search(r"≈ \$([\d.]+)", today)
    return found[1] if found else None


async def test_usage_names_the_models_list_price_of_the_day(make_bot: MakeBot) -> None:
    bot = await make_bot()
    before = datetime.now(UTC).date()
    report = await _usage_after_one_question(bot)
    # The day the report was made, even at midnight.
    [day] = {d for d in (before, datetime.now(UTC).date()) if d.isoformat() in report}
    listed = list_price(DEFAULT_MODEL, day)
    assert listed is not None
    assert f"{DEFAULT_MODEL}'s list price on {day.isoformat()}" in report
    assert (
        f"${listed.input:g} input, ${listed.cached_input:g} cached input "
        f"and ${listed.output:g} output per million tokens" in report
    )
    [row] = bot.rows("SELECT * FROM usage")
    output = row["output_tokens"] + row["thinking_tokens"]
    cost = (row["prompt_tokens"] * listed.input + output * listed.output) / 1e6
    assert _today_cost(report) == f"{cost:.4f}"


async def test_usage_says_when_the_prices_are_the_operators(make_bot: MakeBot) -> None:
    bot = await make_bot(
        PRICE_INPUT_PER_MILLION="3",
        PRICE_CACHED_INPUT_PER_MILLION="0.3",
        PRICE_OUTPUT_PER_MILLION="12",
    )
    report = await _usage_after_one_question(bot)
    assert "$3 input, $0.3 cached input and $12 output per million tokens" in report
    assert "set by the bot's operator" in report and "list price" not in report


async def test_usage_gives_no_cost_for_a_model_it_has_no_price_for(make_bot: MakeBot) -> None:
    bot = await make_bot(GEMINI_MODEL="gemini-9-ultra")
    report = await _usage_after_one_question(bot)
    assert "No cost estimate: there is no list price for gemini-9-ultra" in report
    assert "PRICE_INPUT_PER_MILLION" in report and _today_cost(report) is None
