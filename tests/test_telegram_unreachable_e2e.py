"""`python -m bot` when Telegram cannot be reached at start-up, or rejects the token."""

from __future__ import annotations

import re
from pathlib import Path

from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import ANA, TOKEN, BotProcess, free_port

RETRY = re.compile(r"Cannot reach Telegram at (\S+) \((.+?)\); retrying in ([\d.]+) s")
SECRET = "s3cret_Webhook-token"


def _retries(bot: BotProcess) -> list[tuple[str, str, float]]:
    """Each retry sentence logged so far: (url, reason, seconds until the next try)."""
    return [(url, why, float(wait)) for url, why, wait in RETRY.findall(bot.output())]


def _unreachable(tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, **extra: str) -> BotProcess:
    """The bot pointed at a port of 127.0.0.1 nothing listens on."""
    env = {"TELEGRAM_API_URL": f"http://127.0.0.1:{free_port()}", **extra}
    return BotProcess(tg, gemini, tmp_path / "data", tmp_path / "bot.log", **env)


def _no_secret_or_traceback(output: str) -> None:
    assert "Traceback" not in output
    assert TOKEN not in output and TOKEN.split(":")[1] not in output


async def test_unreachable_telegram_is_retried_with_growing_waits_then_sigterm_exits_0(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    bot = _unreachable(tg, gemini, tmp_path, TELEGRAM_CONNECT_BACKOFF_SECONDS="0.05")
    await bot.start()
    await tg.wait_for(lambda: len(_retries(bot)) >= 4, timeout=60)
    code = await bot.stop(timeout=10)
    assert code == 0, bot.output()
    retries = _retries(bot)
    url = bot.env["TELEGRAM_API_URL"]
    assert all(r[:2] == (url, "connection refused") for r in retries), retries
    waits = [wait for _, _, wait in retries]
    assert waits[:4] == [0.05, 0.1, 0.2, 0.4]  # doubling from TELEGRAM_CONNECT_BACKOFF_SECONDS
    assert "Stopped cleanly" in bot.output()
    _no_secret_or_traceback(bot.output())


async def test_sigterm_cuts_a_long_wait_for_telegram_short(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    bot = _unreachable(tg, gemini, tmp_path, TELEGRAM_CONNECT_BACKOFF_SECONDS="60")
    await bot.start()
    await tg.wait_for(lambda: _retries(bot), timeout=60)
    assert _retries(bot)[0][2] == 60
    # Exiting within the timeout means the 60 s wait was cut short.
    assert await bot.stop(timeout=10) == 0, bot.output()
    assert len(_retries(bot)) == 1
    _no_secret_or_traceback(bot.output())


async def test_bot_starts_serving_when_telegram_comes_up_without_a_restart(
    gemini: FakeGemini, tmp_path: Path
) -> None:
    port = free_port()
    late = FakeTelegram(token=TOKEN)  # not listening yet
    bot = BotProcess(
        late, gemini, tmp_path / "data", tmp_path / "bot.log",
        TELEGRAM_API_URL=f"http://127.0.0.1:{port}", TELEGRAM_CONNECT_BACKOFF_SECONDS="0.05",
    )  # fmt: skip
    await bot.start()
    try:
        await late.wait_for(lambda: len(_retries(bot)) >= 3, timeout=60)
        await late.start(port=port)
        await late.wait_for(lambda: late.calls("getUpdates"), timeout=60)
        user = late.user(user_id=ANA, first_name="Ana")
        chat = late.private_chat(user)
        late.send_command(chat, user, "/start")
        await late.wait_for(
            lambda: any("Hi Ana" in (m.text or "") for m in late.bot_messages(chat["id"])),
            timeout=30,
        )
        code = await bot.stop()
    finally:
        await late.stop()
    assert code == 0, bot.output()
    assert bot.process is not None and len(late.calls("getMe")) == 1  # the same process
    _no_secret_or_traceback(bot.output())


async def test_giving_up_after_telegram_connect_attempts_exits_4(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    bot = _unreachable(
        tg, gemini, tmp_path,
        TELEGRAM_CONNECT_ATTEMPTS="3", TELEGRAM_CONNECT_BACKOFF_SECONDS="0.05",
    )  # fmt: skip
    await bot.start()
    assert await bot.wait(timeout=60) == 4, bot.output()
    assert len(_retries(bot)) == 2
    assert "in 3 tries (connection refused); giving up" in bot.output()
    _no_secret_or_traceback(bot.output())


async def test_token_telegram_rejects_is_one_sentence_and_exit_3(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    tg.fail_next("getMe", 401, "Unauthorized")
    bot = BotProcess(tg, gemini, tmp_path / "data", tmp_path / "bot.log")
    await bot.start()
    assert await bot.wait(timeout=60) == 3, bot.output()
    output = bot.output()
    assert "Telegram rejected TELEGRAM_BOT_TOKEN (getMe: Unauthorized)" in output
    assert "@BotFather" in output
    assert len(tg.calls("getMe")) == 1  # not retried: waiting cannot fix a token
    assert _retries(bot) == []
    _no_secret_or_traceback(output)


async def test_webhook_mode_token_rejected_at_setwebhook_exits_3(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    port = free_port()
    tg.fail_next("setWebhook", 401, "Unauthorized")
    bot = BotProcess(
        tg, gemini, tmp_path / "data", tmp_path / "bot.log",
        WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram", WEBHOOK_SECRET=SECRET,
        WEBHOOK_LISTEN="127.0.0.1", WEBHOOK_PORT=str(port),
    )  # fmt: skip
    await bot.start()
    assert await bot.wait(timeout=60) == 3, bot.output()
    output = bot.output()
    assert "Telegram rejected TELEGRAM_BOT_TOKEN (setWebhook: Unauthorized)" in output
    assert len(tg.calls("setWebhook")) == 1
    assert tg.webhook is None
    _no_secret_or_traceback(output)
    assert SECRET not in output


async def test_webhook_mode_waits_for_setwebhook_to_get_through(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    port = free_port()
    tg.fail_next("setWebhook", 502, times=2)  # a proxy in front of Telegram, briefly down
    bot = BotProcess(
        tg, gemini, tmp_path / "data", tmp_path / "bot.log",
        WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram", WEBHOOK_SECRET=SECRET,
        WEBHOOK_LISTEN="127.0.0.1", WEBHOOK_PORT=str(port),
        TELEGRAM_CONNECT_BACKOFF_SECONDS="0.05",
    )  # fmt: skip
    await bot.start()
    try:
        await tg.wait_for(lambda: tg.webhook is not None, timeout=60)
    finally:
        code = await bot.stop()
    assert code == 0, bot.output()
    assert len(tg.calls("setWebhook")) == 3
    assert [why for _, why, _ in _retries(bot)] == ["the server answered Bad Gateway (502)"] * 2
    _no_secret_or_traceback(bot.output())
