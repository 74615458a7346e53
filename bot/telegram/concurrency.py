"""Chats in parallel; within a chat, media files side by side but stored in order."""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

from bot.telegram.media_types import carries_media

# Files of one chat downloaded and prepared at the same time; more mostly adds memory.
MEDIA_AT_ONCE = 4


@dataclass
class _Waiter:
    media: bool
    granted: asyncio.Future[int]


@dataclass
class _ChatQueue:
    """One chat's queue: who runs now, who waits, and whose turn it is to store."""

    waiting: deque[_Waiter] = field(default_factory=deque)
    media_running: int = 0
    other_running: bool = False
    next_ticket: int = 0
    storing: int = 0  # the ticket whose turn it is
    finished: set[int] = field(default_factory=set)
    turn_changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.media_running and not self.other_running


@dataclass
class _Slot:
    chat: _ChatQueue
    ticket: int


_slot: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar("media_slot", default=None)


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Processes chats concurrently; within a chat, updates keep Telegram's order.

    Media messages of one chat may run side by side (up to MEDIA_AT_ONCE: an album's ten
    files download and shrink in parallel), but each stores its result in arrival order
    (`in_turn()`), so "photo 3" is the third photo sent. Any other update (a command, a text,
    a button) waits until every earlier update has finished and runs alone: /story always sees
    every photo sent before it. A chat waiting a minute for the model holds up nobody else.
    """

    def __init__(self, max_concurrent_updates: int = 4096) -> None:
        super().__init__(max_concurrent_updates)
        self._chats: dict[int, _ChatQueue] = {}
        # Called after each update's handlers ran (the durable queue crosses it off).
        self.on_done: Callable[[object], Awaitable[None]] | None = None

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Run the handler coroutine when the chat's order allows it."""
        key = chat_key(update)
        if key is None:
            await coroutine
            await self._done(update)
            return
        chat = self._chats.setdefault(key, _ChatQueue())
        media = _is_media(update)
        waiter = _Waiter(media, asyncio.get_running_loop().create_future())
        chat.waiting.append(waiter)
        _grant(chat)
        try:
            ticket = await waiter.granted
        except asyncio.CancelledError:
            if waiter in chat.waiting:
                chat.waiting.remove(waiter)
                _grant(chat)
            elif waiter.granted.done() and not waiter.granted.cancelled():
                _release(chat, media, waiter.granted.result())  # granted, then cancelled
            if chat.idle:
                self._chats.pop(key, None)
            if asyncio.iscoroutine(coroutine):
                coroutine.close()  # never to run
            raise
        token = _slot.set(_Slot(chat, ticket) if media else None)
        try:
            await coroutine
            await self._done(update)
        finally:
            _slot.reset(token)
            _release(chat, media, ticket)
            if chat.idle:
                self._chats.pop(key, None)

    async def _done(self, update: object) -> None:
        if self.on_done is not None:
            await self.on_done(update)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""


@asynccontextmanager
async def in_turn() -> AsyncIterator[None]:
    """Wait until every earlier media message of the chat has stored its file, then store."""
    slot = _slot.get()
    if slot is None:  # not a media update (or outside the processor): nothing to wait for
        yield
        return
    chat = slot.chat
    while chat.storing != slot.ticket:
        chat.turn_changed.clear()
        await chat.turn_changed.wait()
    try:
        yield
    finally:
        _finish_ticket(chat, slot.ticket)


def _release(chat: _ChatQueue, media: bool, ticket: int) -> None:
    """An update is over (or was cancelled once granted): let the next ones run."""
    if media:
        chat.media_running -= 1
        _finish_ticket(chat, ticket)
    else:
        chat.other_running = False
    _grant(chat)


def _grant(chat: _ChatQueue) -> None:
    """Let the waiting updates at the head of the queue run, as far as the rules allow."""
    while chat.waiting:
        head = chat.waiting[0]
        if head.granted.done():  # cancelled while waiting: it takes no turn
            chat.waiting.popleft()
            continue
        if head.media:
            if chat.other_running or chat.media_running >= MEDIA_AT_ONCE:
                return
            chat.media_running += 1
            ticket = chat.next_ticket
            chat.next_ticket += 1
        else:
            if chat.other_running or chat.media_running:
                return
            chat.other_running = True
            ticket = -1
        chat.waiting.popleft()
        head.granted.set_result(ticket)


def _finish_ticket(chat: _ChatQueue, ticket: int) -> None:
    """A media update stored its file (or gave up): the next one may store."""
    if ticket < chat.storing:
        return  # already counted (stored, then its handler ended)
    chat.finished.add(ticket)
    while chat.storing in chat.finished:
        chat.finished.discard(chat.storing)
        chat.storing += 1
    chat.turn_changed.set()


def _is_media(update: object) -> bool:
    message = update.message if isinstance(update, Update) else None
    return message is not None and carries_media(message)


def chat_key(update: object) -> int | None:
    """The chat an update belongs to (its user's for updates of no chat), or None."""
    if not isinstance(update, Update):
        return None
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return None
