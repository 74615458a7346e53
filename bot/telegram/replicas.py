"""Several replicas on one database: any may receive an update, one runs each chat's updates.

The replica that receives an update (a webhook POST, spread over the replicas by a proxy)
journals it in the inbox with its chat and commits before Telegram gets its 200. Each chat is
run by one replica at a time, the holder of its lease (`chat_leases`): it takes the chat's
updates from the inbox in update_id order and hands them to the Application as if it had
received them, so the per-chat order, the album burst and its one acknowledgement, and /story
seeing every photo before it all live where they do with one process.

A replica keeps a chat while it works on it and for a burst's length after (the next photo
joins the same acknowledgement), renewing its leases every few seconds. A replica that stops
lets its chats go at once; one that dies stops renewing, and after `lease` seconds another
takes its chats and runs what it had accepted but not finished (each update at most three
times: one that kills every replica is given up, and its sender told so).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from telegram import Bot, Update

from bot.service.bursts import BURST_GAP_SECONDS
from bot.telegram.concurrency import chat_key
from bot.telegram.durable import DurableUpdateQueue, tell_given_up
from storage.protocols import InboxStore

log = logging.getLogger(__name__)

NO_CHAT = 0  # updates of no chat (none the bot asks for today) are one more "chat"
POLL_SECONDS = 0.1  # how often a replica looks for updates other replicas received
# An update another replica received is left to it this long before this one takes its chat:
# the chats then spread as the proxy spreads the updates, not to whichever replica looks first.
RECEIVER_FIRST_SECONDS = 0.5
# Free chats a replica takes in one look; it looks again at once while more are free. A busy
# replica (its event loop late) looks less often, so a burst of new chats spreads over the
# replicas by how much each can take rather than going all to the first that looked.
CLAIMS_PER_STEP = 2


@dataclass
class _LeasedChat:
    """A chat this replica holds: which of its updates are under way here, and since when."""

    running: set[int] = field(default_factory=set)
    quiet_since: float = field(default_factory=time.monotonic)


class SharedUpdateQueue(DurableUpdateQueue):
    """PTB's update queue for replicas: received updates go to the inbox, held chats' updates
    come out of it."""

    def __init__(
        self,
        lease: float,
        redeliver: bool = True,
        keep_for: float = BURST_GAP_SECONDS,
        receiver_first: float = RECEIVER_FIRST_SECONDS,
        claims_per_step: int = CLAIMS_PER_STEP,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(redeliver=redeliver)
        self.lease = lease
        self.keep_for = keep_for
        self.receiver_first = receiver_first
        self.claims_per_step = claims_per_step
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.bot: Bot | None = None
        # Called when this replica takes a chat over (its model copies are queued here).
        self.on_claim: Callable[[int], Awaitable[None]] | None = None
        self.shared_inbox: InboxStore | None = None
        self._chats: dict[int, _LeasedChat] = {}
        self._received: set[int] = set()  # chats whose updates reached this replica itself
        self._seen_free: dict[int, float] = {}  # chat -> when its waiting update was first seen
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._renewed = 0.0

    async def put(self, item: object) -> None:
        """Journal a received update; the holder of its chat runs it.

        A failure to journal is raised when Telegram will send the update again (a webhook
        answers 503). A polling replica, the only one receiving, runs the update itself instead:
        raising would end PTB's polling loop, and its next poll confirms the update anyway."""
        inbox = self.shared_inbox
        if inbox is None or not isinstance(item, Update):
            await asyncio.Queue.put(self, item)  # PTB's own stop signal, or not started yet
            return
        chat = chat_key(item)
        chat = NO_CHAT if chat is None else chat
        try:
            if not await inbox.keep(item.update_id, json.dumps(item.to_dict()), chat):
                log.info("Update %s was delivered again; it is not handled twice", item.update_id)
                return
        except Exception:
            if self.redeliver:
                raise
            log.exception("Could not journal update %s; handling it here", item.update_id)
            await asyncio.Queue.put(self, item)
            return
        self._received.add(chat)
        self._wake.set()

    async def start(self, inbox: InboxStore, bot: Bot) -> None:
        """Begin taking chats (start-up, once storage is open)."""
        self.shared_inbox = inbox
        self.bot = bot
        self._task = asyncio.create_task(self._run(), name="replica-inbox")

    async def stop_taking(self) -> None:
        """Take no more updates out of the inbox (stopping: what runs now may finish)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def let_go(self) -> None:
        """Hand every chat back (stopping): another replica takes what is left at once."""
        await self.stop_taking()
        if self.shared_inbox is not None:
            await self.shared_inbox.release(self.owner)
        self._chats.clear()

    async def done(self, update: object) -> None:
        """An update of a held chat ran: mark it handled."""
        if self.shared_inbox is None or not isinstance(update, Update):
            return
        await self.shared_inbox.done(update.update_id)
        key = chat_key(update)
        chat = self._chats.get(NO_CHAT if key is None else key)
        if chat is not None:
            chat.running.discard(update.update_id)
            chat.quiet_since = time.monotonic()

    def holds(self, chat_id: int) -> bool:
        """Whether this replica runs the chat's updates now."""
        return chat_id in self._chats

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            self._wake.clear()
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database is away for a moment: leases last `lease` seconds, try again.
                log.exception("Could not look for updates in the shared inbox")
                await asyncio.sleep(1.0)

    async def step(self) -> None:
        """Renew, take free chats with waiting updates, queue their new updates, let idle
        chats go."""
        inbox = self.shared_inbox
        assert inbox is not None and self.bot is not None
        now = self.clock()
        if now - self._renewed >= self.lease / 3:
            held = await inbox.renew(self.owner, now + self.lease)
            for lost in set(self._chats) - held:
                # Another replica took it (this one stalled past its lease): stop feeding it.
                log.warning("Chat %s passed to another replica", lost)
                self._chats.pop(lost, None)
            self._renewed = now
            # Now and then, not at every look: an update given up is rare, and telling its
            # sender can wait a few seconds.
            await tell_given_up(self.bot, await inbox.abandoned(), self.languages)
        wanted: set[int] = set()
        free: dict[int, bool] = {}  # chat -> whether nobody held it (rather than a lease lapsed)
        for waiting in await inbox.waiting():
            chat = NO_CHAT if waiting.chat_id is None else waiting.chat_id
            if chat in self._chats:
                if waiting.updates > len(self._chats[chat].running):
                    wanted.add(chat)  # more than are under way here: new ones came
            elif waiting.owner is None:
                free[chat] = True
            elif waiting.owner == self.owner or (waiting.expires_at or 0.0) < now:
                free[chat] = False
            else:
                self._received.discard(chat)  # another replica runs it
        moment = time.monotonic()
        claimed = 0
        for chat, unheld in free.items():
            first_seen = self._seen_free.setdefault(chat, moment)
            if unheld and chat not in self._received and moment - first_seen < self.receiver_first:
                continue  # its receiver takes it, unless that one is gone
            if claimed >= self.claims_per_step:
                self._wake.set()  # the rest at the next look
                continue
            claimed += 1
            if await inbox.claim(chat, self.owner, now, now + self.lease):
                self._chats[chat] = _LeasedChat()
                wanted.add(chat)
                if self.on_claim is not None and chat != NO_CHAT:
                    await self.on_claim(chat)
            self._seen_free.pop(chat, None)
            self._received.discard(chat)
        self._seen_free = {c: t for c, t in self._seen_free.items() if c in free}
        if wanted:
            running = set().union(*(self._chats[c].running for c in wanted))
            for entry in await inbox.take(sorted(wanted), running):
                self._chats[entry.chat_id].running.add(entry.update_id)
                update = Update.de_json(json.loads(entry.payload), self.bot)
                await asyncio.Queue.put(self, update)
        idle = [
            c
            for c, state in self._chats.items()
            if not state.running and moment - state.quiet_since >= self.keep_for
        ]
        if idle:
            await inbox.release(self.owner, idle)
            for chat in idle:
                del self._chats[chat]
