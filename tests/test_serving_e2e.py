"""`python -m bot` start-up and shutdown: health checks, and a SIGTERM at any moment of start-up."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import BotProcess, free_port

SECRET = "s3cret_Webhook-token"


async def _health(port: int) -> tuple[int, object] | None:
    """GET /healthz: (status, body), or None while nothing listens."""
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                return response.status, await response.json()
    except aiohttp.ClientConnectionError:
        return None


async def test_polling_mode_answers_health_checks_while_it_runs(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    port = free_port()
    bot = BotProcess(
        tg, gemini, tmp_path / "data", tmp_path / "bot.log",
        HEALTH_PORT=str(port), HEALTH_LISTEN="127.0.0.1",
    )  # fmt: skip
    await bot.start()
    try:
        await tg.wait_for(lambda: tg.calls("getUpdates"), timeout=30)
        assert await tg.wait_for(lambda: _health(port), timeout=10) == (200, {"status": "ok"})
    finally:
        code = await bot.stop()
    assert code == 0, bot.output()
    assert await _health(port) is None  # the health server went with the bot


def _mode_env(mode: str, tmp_path: Path) -> dict[str, str]:
    if mode == "polling":
        return {}
    port = free_port()
    return {
        "WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram",
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_LISTEN": "127.0.0.1",
        "WEBHOOK_PORT": str(port),
    }


@pytest.mark.parametrize(
    ("mode", "held"),
    [
        ("polling", "getMe"),  # while the bot's own start-up talks to Telegram
        ("polling", "deleteWebhook"),  # while PTB's updater is starting
        ("webhook", "setMyCommands"),
        ("webhook", "setWebhook"),  # the server already runs, the webhook is being registered
    ],
)
async def test_sigterm_while_start_up_waits_for_telegram_stops_the_bot_cleanly(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, mode: str, held: str
) -> None:
    gate = asyncio.Event()
    tg.hold_method(held, gate)
    bot = BotProcess(
        tg, gemini, tmp_path / "data", tmp_path / "bot.log", **_mode_env(mode, tmp_path)
    )
    await bot.start()
    try:
        await tg.wait_for(lambda: tg.calls(held), timeout=30)
        code = await bot.stop(signal.SIGTERM, timeout=20)  # one signal: no second one needed
    finally:
        gate.set()
    assert code == 0, bot.output()
    assert "Stopped cleanly" in bot.output()
    assert tg.calls("getUpdates") == []  # it never started taking updates
