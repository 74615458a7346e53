"""The bot's event loop: uvloop's where it is installed, asyncio's where it is not."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from bot.__main__ import _new_loop


def test_the_bot_runs_on_uvloops_event_loop() -> None:
    loop = _new_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_without_uvloop_the_bot_runs_on_asyncios_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    loop = _new_loop()
    try:
        assert isinstance(loop, asyncio.BaseEventLoop)
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
