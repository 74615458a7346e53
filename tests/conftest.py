"""Fixtures: the two fakes on loopback and the real bot running against them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests import pg_server
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import API_KEY, TOKEN, BotProcess, Harness


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Proxies may be configured on the machine; the fakes are on loopback.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in ("GOOGLE_GEMINI_BASE_URL", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True, scope="session")
def _postgres_stopped_at_the_end() -> Iterator[None]:
    # The PostgreSQL server starts on first use (tests/pg_server.py) and stops with the session.
    yield
    pg_server.stop_shared()


@pytest.fixture
def postgres_url() -> str:
    """A fresh database on the session's PostgreSQL server."""
    return pg_server.shared().new_database()


@pytest.fixture(autouse=True)
async def _no_bot_left_behind() -> AsyncIterator[None]:
    # A failed test must not leave a `python -m bot` running on after the suite.
    yield
    while BotProcess.running:
        process = BotProcess.running.pop().process
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def gemini() -> AsyncIterator[FakeGemini]:
    async with FakeGemini(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tg, gemini, tmp_path / "data")
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()
