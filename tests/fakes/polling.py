"""Waiting in tests without sleeping for a guessed time: poll a condition until it holds."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


async def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    explain: Callable[[Any], str] | None = None,
) -> Any:
    """Poll `predicate` every 10 ms until it returns something truthy (awaited if awaitable),
    and return that; AssertionError after `timeout` seconds, saying `explain(last value)`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                explain(value) if explain else f"condition not met within {timeout} s"
            )
        await asyncio.sleep(0.01)
