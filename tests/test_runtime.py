"""The bot's small in-memory rules."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bot.telegram import runtime as runtime_module
from bot.telegram.runtime import Runtime


def test_a_refusal_is_said_once_per_burst_and_again_after_a_quiet_spell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(runtime_module.time, "monotonic", lambda: clock[0])
    rt = SimpleNamespace(_told={})

    def say(chat: int = 1) -> bool:
        return Runtime.first_time(rt, chat, "album_full")  # type: ignore[arg-type]

    assert say()
    for _ in range(20):  # a burst of photos, one a second: answered once
        clock[0] += 1
        assert not say()
    assert say(chat=2)  # another chat has its own
    clock[0] += 10  # a photo sent after ten quiet seconds gets its own answer
    assert say()
