"""Fixtures: the two fakes on loopback and the real bot running against them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

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
async def bot(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Harness]:
    # PHOTOSTORY_TEST_MEDIA=s3 runs the e2e tests with their media in a bucket on moto's server.
    extra: dict[str, str] = {}
    if os.environ.get("PHOTOSTORY_TEST_MEDIA") == "s3":
        extra = request.getfixturevalue("s3_bucket").env("media/")
    harness = Harness(tg, gemini, tmp_path / "data", **extra)
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
