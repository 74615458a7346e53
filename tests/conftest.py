"""Fixtures: the two fakes on loopback and the real bot running against them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests import pg_server
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import API_KEY, TOKEN, BotProcess, Harness
from tests.s3_server import Bucket, S3Server


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


STORAGE_CONFIGS = ["embedded", "shared"]
"""Every end-to-end test through `bot` or `storage_env` runs on both storage configurations:
"embedded" (SQLite and DATA_DIR/media, the default) and "shared" (PostgreSQL and an
S3-compatible bucket, real servers on loopback started by the fixtures)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "embedded_only(reason): the test looks at the SQLite file or DATA_DIR/media itself, "
        "so its shared-storage run would test nothing",
    )


@pytest.fixture(params=STORAGE_CONFIGS)
def storage_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment that puts the bot's storage on one configuration."""
    if request.param == "embedded":
        return {}
    marker = request.node.get_closest_marker("embedded_only")
    if marker is not None:
        pytest.skip(f"embedded storage only: {marker.args[0] if marker.args else ''}")
    env: dict[str, str] = dict(request.getfixturevalue("s3_bucket").env("media/"))
    env.update(request.getfixturevalue("shared_database_env"))
    return env


@pytest.fixture
def shared_database_env(postgres_url: str) -> dict[str, str]:
    """The database of the shared configuration: a fresh one on the session's PostgreSQL."""
    return {"DATABASE_URL": postgres_url}


@pytest.fixture
async def bot(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, storage_env: dict[str, str]
) -> AsyncIterator[Harness]:
    harness = Harness(tg, gemini, tmp_path / "data", **storage_env)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on loopback, one for the session (not starting is a failure)."""
    server = S3Server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Bucket:
    """A fresh bucket of its own for each test."""
    return s3_server.new_bucket()
