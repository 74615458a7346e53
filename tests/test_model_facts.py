"""Defaults that follow the model and the date: the explicit-cache minimum and the list prices.

The day is always given: nothing here reads a clock."""

from __future__ import annotations

from datetime import date

import pytest

from bot import model_facts
from bot.config import DEFAULT_MODEL, Settings
from bot.service.usage import assumed_prices
from storage.records import UsageTotals

BASE = {"TELEGRAM_BOT_TOKEN": "123456:ABCdef", "GEMINI_API_KEY": "key-123"}
LAST_INTRODUCTORY_DAY = date(2026, 12, 31)
FIRST_FULL_PRICE_DAY = date(2027, 1, 1)


def test_the_default_model_is_at_half_price_through_2026_then_at_its_full_price() -> None:
    before = model_facts.list_price(DEFAULT_MODEL, LAST_INTRODUCTORY_DAY)
    after = model_facts.list_price(DEFAULT_MODEL, FIRST_FULL_PRICE_DAY)
    assert before is not None and after is not None
    assert (before.input, before.cached_input, before.output) == (0.75, 0.075, 3.75)
    assert (after.input, after.cached_input, after.output) == (1.50, 0.15, 7.50)
    assert model_facts.list_price(DEFAULT_MODEL, date(2026, 9, 2)) == before


def test_usage_assumes_the_list_price_of_the_day_and_says_until_when() -> None:
    settings = Settings.from_env(BASE)
    december = assumed_prices(settings, LAST_INTRODUCTORY_DAY)
    january = assumed_prices(settings, FIRST_FULL_PRICE_DAY)
    assert (december.input, december.output) == (0.75, 3.75)
    assert december.listed_until == LAST_INTRODUCTORY_DAY and december.set_by_operator == ()
    assert (january.input, january.cached_input, january.output) == (1.50, 0.15, 7.50)
    assert january.listed_until is None and january.on == FIRST_FULL_PRICE_DAY
    tokens = UsageTotals(calls=1, prompt_tokens=10**6, output_tokens=10**6, total_tokens=2 * 10**6)
    assert december.cost(tokens) == pytest.approx(4.50)
    assert january.cost(tokens) == pytest.approx(9.00)  # not under-reported by half


def test_the_operators_prices_win_over_the_list_price() -> None:
    settings = Settings.from_env({**BASE, "PRICE_INPUT_PER_MILLION": "2"})
    prices = assumed_prices(settings, FIRST_FULL_PRICE_DAY)
    assert (prices.input, prices.cached_input, prices.output) == (2.0, 0.15, 7.50)
    assert prices.set_by_operator == ("input",)
    every = {f"PRICE_{n}_PER_MILLION": "1" for n in ("INPUT", "OUTPUT", "CACHED_INPUT")}
    own = assumed_prices(Settings.from_env({**BASE, **every}), LAST_INTRODUCTORY_DAY)
    assert (own.input, own.cached_input, own.output) == (1.0, 1.0, 1.0)
    assert own.set_by_operator == ("input", "cached input", "output")


def test_a_model_without_a_list_price_gives_no_cost_unless_the_operator_sets_prices() -> None:
    unknown = Settings.from_env({**BASE, "GEMINI_MODEL": "gemini-9-ultra"})
    prices = assumed_prices(unknown, LAST_INTRODUCTORY_DAY)
    assert prices.input is None and prices.cost(UsageTotals(1, 10, 10, 20)) is None
    every = {f"PRICE_{n}_PER_MILLION": "1" for n in ("INPUT", "OUTPUT", "CACHED_INPUT")}
    priced = assumed_prices(
        Settings.from_env({**BASE, "GEMINI_MODEL": "gemini-9-ultra", **every}),
        LAST_INTRODUCTORY_DAY,
    )
    assert priced.set_by_operator == ("input", "cached input", "output")
    assert priced.cost(UsageTotals(1, 10**6, 10**6, 2 * 10**6)) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("model", "minimum"),
    [
        ("gemini-3.8-flash", 4096),
        ("gemini-3.5-flash", 4096),
        ("models/gemini-3.8-flash-preview-09-2026", 4096),
        ("gemini-2.5-flash", 2048),
        ("gemini-2.5-pro", 2048),
        ("gemini-4-argon", 4096),
        ("gemini-flash-latest", 4096),  # an alias the table cannot resolve: the conservative one
        ("some-other-model", 4096),
    ],
)
def test_the_cache_minimum_follows_the_model(model: str, minimum: int) -> None:
    settings = Settings.from_env({**BASE, "GEMINI_MODEL": model})
    assert settings.gemini_cache_min_tokens == minimum


def test_the_cache_minimum_set_by_the_operator_wins() -> None:
    settings = Settings.from_env({**BASE, "GEMINI_CACHE_MIN_TOKENS": "1024"})
    assert settings.gemini_cache_min_tokens == 1024


def test_a_longer_family_name_is_not_taken_for_a_shorter_one() -> None:
    known = ["gemini-3.5-flash", "gemini-3.5-flash-lite"]
    assert model_facts.family("gemini-3.5-flash-lite-preview", known) == "gemini-3.5-flash-lite"
    assert model_facts.family("gemini-3.5-flash", known) == "gemini-3.5-flash"
    assert model_facts.family("gemini-3.5-flashy", known) is None
