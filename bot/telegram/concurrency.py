"""Chats in parallel, each chat's updates in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Processes updates of different chats concurrently and those of one chat one by one.

    PTB starts one task per update in arrival order; asyncio.Lock wakes waiters first come,
    first served, so a chat's updates run in the order Telegram sent them, while a chat waiting
    a minute for the model holds up nobody else.
    """

    def __init__(self, max_concurrent_updates: int = 4096) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, int] = {}
        # Called after each update's handlers ran (the durable queue crosses it off).
        self.on_done: Callable[[object], Awaitable[None]] | None = None

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Run the handler coroutine under its chat's lock."""
        key = _chat_key(update)
        if key is None:
            await coroutine
            await self._done(update)
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock:
                await coroutine
                await self._done(update)
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:  # keep the maps small: drop idle chats
                del self._waiting[key]
                del self._locks[key]

    async def _done(self, update: object) -> None:
        if self.on_done is not None:
            await self.on_done(update)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""


def _chat_key(update: object) -> int | None:
    if not isinstance(update, Update):
        return None
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return None
