"""Context caching: follow-ups name a cache of the system instruction and the album instead of
sending them again, on the wire of the fake Gemini (cachedContents create/get/patch/delete)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.gemini_api import (
    FakeGemini,
    Recorded,
    Reply,
    file_uris,
    image_parts,
    system_text,
    texts,
)
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import Harness
from tests.image_files import jpeg

TTL = 900
JSON = dict[str, Any]
MakeBot = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_bot(tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path) -> AsyncIterator[MakeBot]:
    """The real bot with caching on (the harness switches it off for the other tests)."""
    started: list[Harness] = []

    async def make(**env: str) -> Harness:
        settings = {"GEMINI_CACHE_TTL_SECONDS": str(TTL), "GEMINI_CACHE_MIN_TOKENS": "1024"}
        harness = Harness(tg, gemini, tmp_path / "data", **(settings | env))
        await harness.start()
        started.append(harness)
        return harness

    yield make
    for harness in started:
        await harness.stop()


async def _ask(bot: Harness, question: str, answer: str | None = None) -> JSON:
    """Ask a follow-up, wait for its answer, return the last generate request."""
    before = len(bot.gemini.generate_requests())
    if answer is not None:
        bot.gemini.enqueue(Reply(text=answer))
    bot.tg.send_text(bot.chat, bot.ana, question)
    await bot.wait_text(bot.chat["id"], answer or f"Last question: {question}")
    await bot.gemini.wait_for(lambda: len(bot.gemini.generate_requests()) > before)
    return bot.gemini.generate_requests()[-1]


def _named(body: JSON) -> str | None:
    return body.get("cachedContent") or body.get("cached_content")


def _creates(bot: Harness) -> list[Recorded]:
    return [r for r in bot.gemini.cache_requests("create") if r.status == 200]


def _cache_row(bot: Harness) -> sqlite3.Row | None:
    rows = bot.rows("SELECT * FROM context_caches")
    return rows[0] if rows else None


def _time_passes(bot: Harness, seconds: float) -> None:
    """The same time passes for the fake Gemini and for the bot's record of its cache."""
    bot.gemini.advance(seconds)
    conn = sqlite3.connect(bot.settings.db_path)
    try:
        for album_id, expires in list(
            conn.execute("SELECT album_id, expires_at FROM context_caches")
        ):
            moved = datetime.fromisoformat(expires) - timedelta(seconds=seconds)
            conn.execute(
                "UPDATE context_caches SET expires_at = ? WHERE album_id = ?",
                (moved.isoformat(timespec="seconds"), album_id),
            )
        conn.commit()
    finally:
        conn.close()


async def test_story_of_a_big_album_is_cached_and_follow_ups_name_the_cache(
    make_bot: MakeBot,
) -> None:
    bot = await make_bot()
    await bot.album_with_story()
    story_body = bot.gemini.generate_requests()[0]
    [create] = _creates(bot)
    assert create.body["ttl"] == f"{TTL}s"
    assert system_text(create.body) == system_text(story_body) != ""
    assert len(image_parts(create.body)) == 3
    # A cache has no generation config: each photo carries the configured resolution.
    assert [p["mediaResolution"] for p in image_parts(create.body)] == [
        {"level": "MEDIA_RESOLUTION_MEDIUM"}
    ] * 3
    assert set(file_uris(create.body)) == set(file_uris(story_body))
    name = bot.gemini.live_caches().popitem()[0]

    # The fake's default answer says what the model saw: the album, through the cache.
    follow_up = await _ask(bot, "Where was photo 2 taken?")
    assert "Seen 3 images" in bot.texts(bot.chat["id"])[-1]
    assert _named(follow_up) == name
    assert system_text(follow_up) == ""
    assert image_parts(follow_up) == [] and file_uris(follow_up) == []
    assert [c["role"] for c in follow_up["contents"]] == ["user", "model", "user"]
    assert follow_up["contents"][0]["parts"][0]["text"].startswith(texts(story_body)[-1][:40])
    assert "Where was photo 2 taken?" in texts(follow_up)[-1]

    row = _cache_row(bot)
    assert row is not None and row["name"] == name
    usage = bot.rows("SELECT * FROM usage WHERE kind = 'question'")[0]
    assert usage["cached_tokens"] == bot.gemini.caches[name].tokens > 0
    assert usage["prompt_tokens"] > usage["cached_tokens"]


async def test_album_below_the_minimum_is_not_cached_and_is_sent_whole(
    make_bot: MakeBot,
) -> None:
    bot = await make_bot(GEMINI_CACHE_MIN_TOKENS="100000")
    await bot.album_with_story()
    follow_up = await _ask(bot, "Same day?", "Yes, the same day.")

    assert bot.gemini.cache_requests() == []
    assert _named(follow_up) is None
    assert len(image_parts(follow_up)) == 3 and system_text(follow_up) != ""
    assert _cache_row(bot) is None


@pytest.fixture
async def shipped_bot(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> AsyncIterator[Harness]:
    """The real bot with caching on and the cache minimum it ships with, against a Gemini that
    refuses what the real one refuses for the default model."""
    gemini.cache_min_tokens = 4096  # Google's minimum for gemini-3.8-flash (2026-10-13)
    harness = Harness(tg, gemini, tmp_path / "data", GEMINI_CACHE_TTL_SECONDS=str(TTL))
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def test_album_under_the_models_real_minimum_asks_for_no_cache(shipped_bot: Harness) -> None:
    bot = shipped_bot
    await bot.album_with_story(photos=3)
    follow_up = await _ask(bot, "Same day?", "Yes, the same day.")

    assert bot.gemini.cache_requests() == []  # not even one Gemini must refuse
    assert _named(follow_up) is None and len(image_parts(follow_up)) == 3
    assert _cache_row(bot) is None


async def test_album_over_the_models_real_minimum_is_cached(shipped_bot: Harness) -> None:
    bot = shipped_bot
    await bot.album_with_story(photos=16)
    follow_up = await _ask(bot, "Same day?", "Yes, the same day.")

    [create] = bot.gemini.cache_requests("create")
    assert create.status == 200
    assert _named(follow_up) == _cache_row(bot)["name"]  # type: ignore[index]


async def test_context_the_api_finds_too_small_is_asked_once_then_sent_whole(
    make_bot: MakeBot,
) -> None:
    bot = await make_bot()
    bot.gemini.cache_min_tokens = 50_000  # the model's real minimum is above the setting
    await bot.album_with_story()
    first = await _ask(bot, "Same day?", "Yes, the same day.")
    second = await _ask(bot, "Sunny?", "Sunny all day.")

    [refused] = bot.gemini.cache_requests("create")
    assert refused.status == 400
    for body in (first, second):
        assert _named(body) is None and len(image_parts(body)) == 3
    assert _cache_row(bot) is None


async def test_refused_cache_falls_back_to_the_whole_request_without_an_error(
    make_bot: MakeBot,
) -> None:
    bot = await make_bot()
    bot.gemini.fail_cache_creates(429)
    await bot.album_with_story()
    follow_up = await _ask(bot, "Same day?", "Yes, the same day.")

    assert [r.status for r in bot.gemini.cache_requests("create")] == [429]
    assert _named(follow_up) is None and len(image_parts(follow_up)) == 3
    assert not any("sorry" in t.lower() or "gemini" in t.lower() for t in bot.texts(bot.chat["id"]))


async def test_cache_the_api_let_expire_is_rebuilt_once_and_the_question_answered(
    make_bot: MakeBot,
) -> None:
    bot = await make_bot()
    await bot.album_with_story()
    [old] = list(bot.gemini.live_caches())
    bot.gemini.advance(TTL + 60)  # gone at the API; the bot still thinks it lives
    asks_before = len(bot.gemini.generate_requests())

    await _ask(bot, "Same day?", "Yes, the same day.")

    refused, answered = bot.gemini.generate_requests()[asks_before:]
    statuses = [r.status for r in bot.gemini.requests if r.kind in ("generate", "stream")]
    assert statuses[asks_before:] == [403, 200]
    [new] = list(bot.gemini.live_caches())
    assert _named(refused) == old and _named(answered) == new != old
    assert image_parts(answered) == []
    assert len(_creates(bot)) == 2
    row = _cache_row(bot)
    assert row is not None and row["name"] == new
    # Making each cache read the album once: counted at the input price.
    made = bot.rows("SELECT prompt_tokens, cached_tokens FROM usage WHERE kind = 'cache'")
    assert [(r["prompt_tokens"], r["cached_tokens"]) for r in made] == [(row["tokens"], 0)] * 2


async def test_when_the_rebuild_is_refused_too_the_album_is_sent_whole(
    make_bot: MakeBot,
) -> None:
    bot = await make_bot()
    await bot.album_with_story()
    bot.gemini.advance(TTL + 60)
    bot.gemini.fail_cache_creates(503)

    answered = await _ask(bot, "Same day?", "Yes, the same day.")

    assert _named(answered) is None and len(image_parts(answered)) == 3
    assert [r.status for r in bot.gemini.cache_requests("create")] == [200, 503]
    assert _cache_row(bot) is None


async def test_ttl_is_refreshed_while_the_conversation_goes_on(make_bot: MakeBot) -> None:
    bot = await make_bot()
    await bot.album_with_story()
    [name] = list(bot.gemini.live_caches())
    await _ask(bot, "First?", "First answer.")
    assert bot.gemini.cache_requests("update") == []  # young enough: used as it is

    _time_passes(bot, 600)  # two thirds of its life
    first = await _ask(bot, "Second?", "Second answer.")
    [patch] = bot.gemini.cache_requests("update")
    assert patch.path.split("?")[0].endswith(name) and patch.body == {"ttl": f"{TTL}s"}
    assert _named(first) == name

    _time_passes(bot, 600)  # past the first expiry, within the refreshed one
    second = await _ask(bot, "Third?", "Third answer.")
    assert _named(second) == name
    assert len(_creates(bot)) == 1
    assert bot.gemini.cache_requests("update")[-1] is not patch  # refreshed again


async def test_a_cache_that_expired_for_both_is_replaced_after_the_next_answer(
    make_bot: MakeBot,
) -> None:
    bot = await make_bot()
    await bot.album_with_story()
    _time_passes(bot, TTL + 60)

    plain = await _ask(bot, "Same day?", "Yes, the same day.")
    after = await _ask(bot, "Sunny?", "Sunny all day.")

    assert _named(plain) is None and len(image_parts(plain)) == 3
    assert len(_creates(bot)) == 2
    [new] = list(bot.gemini.live_caches())
    assert _named(after) == new


async def test_reset_deletes_the_cache(make_bot: MakeBot) -> None:
    bot = await make_bot()
    await bot.album_with_story()
    [name] = list(bot.gemini.live_caches())
    bot.tg.send_command(bot.chat, bot.ana, "/reset")
    await bot.wait_text(bot.chat["id"], "Cleared the conversation")

    [delete] = bot.gemini.cache_requests("delete")
    assert delete.path.split("?")[0].endswith(name) and delete.status == 200
    assert bot.gemini.live_caches() == {}
    assert _cache_row(bot) is None
    fresh = await _ask(bot, "What do you see?", "Fresh answer.")
    assert _named(fresh) is None and [c["role"] for c in fresh["contents"]] == ["user"]


async def test_forget_deletes_the_cache(make_bot: MakeBot) -> None:
    bot = await make_bot()
    await bot.album_with_story()
    [name] = list(bot.gemini.live_caches())
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    tg.send_command(chat, ana, "/forget")
    ask, yes = await bot.first_button(chat["id"], "Forget this chat?")
    tg.press_button(chat, ana, ask, yes)
    await bot.wait_text(chat["id"], "Done: deleted 1 album")

    [delete] = bot.gemini.cache_requests("delete")
    assert delete.path.split("?")[0].endswith(name) and delete.status == 200
    assert bot.gemini.live_caches() == {}
    assert bot.rows("SELECT * FROM context_caches") == []


async def test_new_media_after_the_story_replaces_the_cache(make_bot: MakeBot) -> None:
    bot = await make_bot()
    await bot.album_with_story()
    [old] = list(bot.gemini.live_caches())
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(10))
    await bot.wait_text(bot.chat["id"], "4 photos")

    plain = await _ask(bot, "And the last one?", "A bridge.")
    [delete] = bot.gemini.cache_requests("delete")
    assert delete.path.split("?")[0].endswith(old)
    assert _named(plain) is None and len(image_parts(plain)) == 4

    [new] = list(bot.gemini.live_caches())
    assert len(image_parts(_creates(bot)[-1].body)) == 4
    cached = await _ask(bot, "Sunny?", "Sunny all day.")
    assert _named(cached) == new != old and image_parts(cached) == []


async def test_reply_to_a_photo_sends_only_that_photo_beside_the_cache(make_bot: MakeBot) -> None:
    bot = await make_bot()
    photo_2 = (await bot.album_with_story())[1]
    [name] = list(bot.gemini.live_caches())
    bot.gemini.enqueue(Reply(text="That is a tiled facade."))
    bot.tg.send_text(bot.chat, bot.ana, "What is this building", reply_to=photo_2["message_id"])
    await bot.wait_text(bot.chat["id"], "tiled facade")

    body = bot.gemini.generate_requests()[-1]
    assert _named(body) == name
    assert len(image_parts(body)) == 1
    assert any("replied to photo 2" in t for t in texts(body))


async def test_usage_shows_cached_tokens_at_their_price(make_bot: MakeBot) -> None:
    prices = {"input": 1000.0, "cached": 100.0, "output": 10.0}
    bot = await make_bot(
        PRICE_INPUT_PER_MILLION=str(prices["input"]),
        PRICE_CACHED_INPUT_PER_MILLION=str(prices["cached"]),
        PRICE_OUTPUT_PER_MILLION=str(prices["output"]),
    )
    await bot.album_with_story()
    await _ask(bot, "Same day?", "Yes, the same day.")
    bot.tg.send_command(bot.chat, bot.ana, "/usage")
    report = await bot.wait_text(bot.chat["id"], "Your Gemini usage")

    rows = bot.rows("SELECT * FROM usage")
    cached = sum(r["cached_tokens"] for r in rows)
    assert cached == bot.rows("SELECT tokens FROM context_caches")[0]["tokens"] > 0
    prompt = sum(r["prompt_tokens"] for r in rows)
    output = sum(r["output_tokens"] + r["thinking_tokens"] for r in rows)
    cost = (
        (prompt - cached) * prices["input"] + cached * prices["cached"] + output * prices["output"]
    ) / 1_000_000
    today = next(line for line in report.splitlines() if line.startswith("Today"))
    assert f"{prompt:,} in, {cached:,} of them cached" in today
    assert re.search(r"≈ \$([\d.]+)", today)[1] == f"{cost:.4f}"  # type: ignore[index]
    assert f"{cost:.4f}" != f"{(prompt * prices['input'] + output * prices['output']) / 1e6:.4f}"
    assert "$100 cached in" in report


async def test_a_restarted_bot_reuses_the_cache(make_bot: MakeBot) -> None:
    bot = await make_bot()
    await bot.album_with_story()
    [name] = list(bot.gemini.live_caches())
    await bot.restart()

    follow_up = await _ask(bot, "Same day?", "Yes, the same day.")

    assert _named(follow_up) == name and image_parts(follow_up) == []
    assert len(_creates(bot)) == 1


async def test_a_question_in_another_language_leaves_the_groups_cache_alone(
    make_bot: MakeBot,
) -> None:
    bot = await make_bot()
    tg = bot.tg
    group = tg.group_chat(-100903, "Trip")
    for n in range(3):
        tg.send_photo(group, bot.ana, jpeg(n))
    await bot.wait_text(group["id"], "3 photos")
    bot.gemini.enqueue(Reply(text="# Story\n\nThe tram (photo 1)."))
    tg.send_command(group, bot.ana, "/story")
    await bot.wait_text(group["id"], "That was the story of")
    [name] = list(bot.gemini.live_caches())

    bot.gemini.enqueue(Reply(text="Sim, no mesmo dia."))
    closing = tg.bot_messages(group["id"])[-1].message_id  # replies to the bot are for it
    tg.send_text(group, bot.bob, "Mesmo dia?", reply_to=closing)  # Bob's Telegram is in pt-br
    await bot.wait_text(group["id"], "no mesmo dia")
    in_portuguese = bot.gemini.generate_requests()[-1]
    bot.gemini.enqueue(Reply(text="Yes, the same day."))
    tg.send_text(group, bot.ana, "Same day?", reply_to=closing)
    await bot.wait_text(group["id"], "Yes, the same day")
    in_english = bot.gemini.generate_requests()[-1]

    assert _named(in_portuguese) is None and "Portuguese" in system_text(in_portuguese)
    assert len(image_parts(in_portuguese)) == 3
    assert _named(in_english) == name
    assert bot.gemini.cache_requests("delete") == [] and len(_creates(bot)) == 1


async def test_a_rebuilt_cache_lost_again_gives_way_to_the_whole_request(
    make_bot: MakeBot,
) -> None:
    bot = await make_bot()
    await bot.album_with_story()
    bot.gemini.lose_caches(2)  # the cache, then its rebuild, are gone when asked for
    asks_before = len(bot.gemini.generate_requests())

    await _ask(bot, "Same day?", "Yes, the same day.")
    later = await _ask(bot, "Sunny?", "Sunny all day.")

    lost, lost_again, answered, plain_again = bot.gemini.generate_requests()[asks_before:]
    assert _named(lost) and _named(lost_again) and _named(lost) != _named(lost_again)
    assert _named(answered) is None and len(image_parts(answered)) == 3
    # Given up on for this album's context: no third cache, the next question is sent whole.
    assert len(_creates(bot)) == 2
    assert later is plain_again and _named(later) is None
    assert _cache_row(bot) is None


async def test_a_second_story_names_the_cache_too(make_bot: MakeBot) -> None:
    bot = await make_bot()
    await bot.album_with_story()
    [name] = list(bot.gemini.live_caches())
    bot.tg.send_command(bot.chat, bot.ana, "/story shorter")
    await bot.wait_text(bot.chat["id"], "Seen 3 images")  # the fake saw the album in the cache

    story = bot.gemini.generate_requests()[-1]
    assert _named(story) == name and image_parts(story) == [] and system_text(story) == ""
    assert "responseJsonSchema" in story["generationConfig"]
