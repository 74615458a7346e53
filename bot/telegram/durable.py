"""Received means kept: every update journaled, with the job that handles it, before Telegram
is told it arrived; handled once, in its chat's order, by whichever worker is free.

Polling: PTB puts each fetched update here and confirms it to Telegram (the offset of its next
getUpdates) only after `put` returned, that is after the journal committed. Webhook: the server
answers 200 only after `put` returned (bot/telegram/webhook.py). An update_id journaled before,
pending or handled, is a second delivery and is not handled again. The job (storage/jobs) runs
the update through the Application's handlers (bot/telegram/jobs.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from telegram import Update
from telegram.request import HTTPXRequest

from bot.service.reexports import CHAT, Job

log = logging.getLogger(__name__)

UPDATE_TASK = "update"
# When the update being handled was received, on the database's clock (its job's argument
# RECEIVED_AT, set by `receiving`): None outside an update's job.
_received_at: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "received_at", default=None
)
PARSED_KEPT = 1000  # parsed updates kept for their jobs: two bursts of 50 albums


class Inbox(Protocol):
    """Where received updates are journaled (the storage's inbox)."""

    async def receive(self, update_id: int, job: Job) -> bool: ...

    async def receive_many(self, updates: Sequence[tuple[int, Job]]) -> list[bool]: ...


class DurableUpdateQueue(asyncio.Queue[object]):
    """PTB's update queue, turned into the journal: an update put here becomes a job.

    PTB's own loop takes from this queue only its stop signal; updates go to the job queue.

    Updates are journaled in batches, one transaction each: what was put while the previous
    batch committed goes in the next. Polling (`redeliver` False): `put` returns at once, and
    the next getUpdates, which confirms the updates to Telegram, first waits for their commit
    (`journaled`, called by `JournaledPolling`); a poll of 100 updates is one commit. Webhook
    (`redeliver`): Telegram sends again an update whose `put` raised (the POST is answered
    503), so `put` returns once its batch committed, and raises if it did not.
    """

    def __init__(self, redeliver: bool = False) -> None:
        super().__init__()
        self.inbox: Inbox | None = None
        self.redeliver = redeliver
        self._waiting: list[_Waiting] = []
        self._journaling: asyncio.Task[None] | None = None
        # The updates this process journaled lately, as PTB parsed them: their job, when it
        # runs here, takes the object instead of parsing the update again (a tenth of the
        # event loop's time under a burst went to parsing updates, each one twice).
        self._parsed: OrderedDict[int, Update] = OrderedDict()

    def parsed(self, update_id: int) -> Update | None:
        """The update journaled here as PTB parsed it, once (None: parse the job's copy)."""
        return self._parsed.pop(update_id, None)

    async def put(self, item: object) -> None:
        """Journal the update with its job (unless it was received before).

        A failure to journal is raised when Telegram will send the update again (a webhook
        answers 503: a 200 must mean journaled). Polling hands the update to PTB to handle
        at once instead: raising would end PTB's polling loop, and its next poll confirms the
        update regardless."""
        if self.inbox is None or not isinstance(item, Update):
            await super().put(item)  # PTB's stop signal, or an update before start-up ended
            return
        await self._take(item, None)

    async def put_received(self, update: Update, data: dict[str, Any]) -> None:
        """`put` an update together with the JSON object it was parsed from (a webhook's
        body): its job keeps that object as it came, instead of PTB's `to_dict` of the
        update, which was a twentieth of a replica's event loop while a burst came in."""
        if self.inbox is None:
            await super().put(update)
            return
        await self._take(update, data)

    async def _take(self, update: Update, data: dict[str, Any] | None) -> None:
        committed = asyncio.get_running_loop().create_future() if self.redeliver else None
        self._waiting.append(_Waiting(update, data, committed))
        if self._journaling is None or self._journaling.done():
            self._journaling = asyncio.create_task(self._journal(), name="journal-updates")
        if committed is not None:
            await committed

    async def journaled(self) -> None:
        """Wait until every update put so far is journaled (or handed to PTB, see `put`)."""
        while self._journaling is not None and not self._journaling.done():
            await asyncio.shield(self._journaling)

    async def _journal(self) -> None:
        inbox = self.inbox
        assert inbox is not None
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                fresh = await inbox.receive_many([(w.update.update_id, w.job()) for w in batch])
            except asyncio.CancelledError:  # stopping: the webhook's requests get their 503
                for waiting in batch + self._waiting:
                    if waiting.committed is not None and not waiting.committed.done():
                        waiting.committed.cancel()
                raise
            except Exception:
                if len(batch) == 1:
                    await self._not_journaled(batch[0].update, batch[0].committed)
                    continue
                # One at a time, so one update that cannot be journaled spoils no other.
                for waiting in batch:
                    update = waiting.update
                    try:
                        new = await inbox.receive(update.update_id, waiting.job())
                    except Exception:
                        await self._not_journaled(update, waiting.committed)
                    else:
                        if new:
                            self._keep(update)
                        _settled(update, waiting.committed, new)
                continue
            for waiting, new in zip(batch, fresh, strict=True):
                if new:
                    self._keep(waiting.update)
                _settled(waiting.update, waiting.committed, new)

    def _keep(self, update: Update) -> None:
        self._parsed[update.update_id] = update
        while len(self._parsed) > PARSED_KEPT:
            self._parsed.popitem(last=False)  # its job ran elsewhere, or parses its copy

    async def _not_journaled(self, update: Update, committed: asyncio.Future[None] | None) -> None:
        if committed is not None:
            log.exception("Could not journal update %s", update.update_id)
            if not committed.done():
                committed.set_exception(JournalFailed(update.update_id))
            return
        # Without the crash safety for this one update, but not deaf.
        log.exception("Could not journal update %s; handling it anyway", update.update_id)
        await super().put(update)


@dataclass(frozen=True, slots=True)
class _Waiting:
    """An update put and not journaled yet: with its JSON object when it came as one, and
    the future its webhook request waits on (None when polling)."""

    update: Update
    data: dict[str, Any] | None
    committed: asyncio.Future[None] | None

    def job(self) -> Job:
        return update_job(self.update, self.data)


def _settled(update: Update, committed: asyncio.Future[None] | None, new: bool) -> None:
    if not new:
        log.info("Update %s was delivered again; it is not handled twice", update.update_id)
    if committed is not None and not committed.done():
        committed.set_result(None)


class JournalFailed(Exception):
    """An update could not be journaled (the database is away); Telegram should resend it."""

    def __init__(self, update_id: int) -> None:
        super().__init__(f"update {update_id} could not be journaled")


class JournaledPolling(HTTPXRequest):
    """The getUpdates connection: each poll confirms to Telegram the updates of the one before
    (its offset), so it first waits until those are journaled."""

    def __init__(self, journal: DurableUpdateQueue) -> None:
        super().__init__(connection_pool_size=1)  # what PTB gives getUpdates by default
        self.journal = journal

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        await self.journal.journaled()
        return await super().do_request(*args, **kwargs)


# Seconds: a chat's updates received this close together keep one turn in the queue, so under a
# backlog the chats whose bursts came first are taken in first (and acknowledged first), rather
# than every chat a file at a time until the backlog's end (storage/jobs, `keep_turn`).
KEEP_TURN = 2.0


def update_job(update: Update, data: dict[str, Any] | None = None) -> Job:
    """The job that handles an update: one at a time per chat, in the order received, the
    chat's burst in one turn. Its argument is the update's JSON object: `data`, when the
    update was parsed from it."""
    key = chat_key(update)
    return Job(
        UPDATE_TASK,
        {"update": update.to_dict() if data is None else data},
        lock=chat_lock(key) if key is not None else None,
        queue=CHAT,
        keep_turn=KEEP_TURN,
    )


def chat_lock(chat_id: int) -> str:
    """The lock of a chat's update jobs: one at a time, in the order received."""
    return f"chat:{chat_id}"


@contextlib.contextmanager
def receiving(received_at: float | None) -> Iterator[None]:
    """Handle an update received at `received_at` (the database's clock) in the block."""
    token = _received_at.set(received_at)
    try:
        yield
    finally:
        _received_at.reset(token)


def received_at() -> float | None:
    """When the update being handled was received, on the database's clock (None: not known,
    take now)."""
    return _received_at.get()


def chat_key(update: object) -> int | None:
    """The chat an update belongs to (its user's for updates of no chat), or None."""
    if not isinstance(update, Update):
        return None
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return None
