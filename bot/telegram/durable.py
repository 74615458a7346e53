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
import logging
from typing import Protocol

from telegram import Update

from bot.service.reexports import CHAT, Job

log = logging.getLogger(__name__)

UPDATE_TASK = "update"


class Inbox(Protocol):
    """Where received updates are journaled (the storage's inbox)."""

    async def receive(self, update_id: int, job: Job) -> bool: ...


class DurableUpdateQueue(asyncio.Queue[object]):
    """PTB's update queue, turned into the journal: an update put here becomes a job.

    PTB's own loop takes from this queue only its stop signal; updates go to the job queue.
    `redeliver`: Telegram sends again an update whose `put` raised (webhook mode, the POST is
    answered 503), so a failure to journal is raised rather than handled past.
    """

    def __init__(self, redeliver: bool = False) -> None:
        super().__init__()
        self.inbox: Inbox | None = None
        self.redeliver = redeliver

    async def put(self, item: object) -> None:
        """Journal the update with its job (unless it was received before).

        A failure to journal is raised when Telegram will send the update again (a webhook
        answers 503: a 200 must mean journaled). Polling hands the update to PTB to handle
        at once instead: raising would end PTB's polling loop, and its next poll confirms the
        update regardless."""
        if self.inbox is None or not isinstance(item, Update):
            await super().put(item)  # PTB's stop signal, or an update before start-up ended
            return
        try:
            if not await self.inbox.receive(item.update_id, update_job(item)):
                log.info("Update %s was delivered again; it is not handled twice", item.update_id)
        except Exception:
            if self.redeliver:
                raise
            # Without the crash safety for this one update, but not deaf.
            log.exception("Could not journal update %s; handling it anyway", item.update_id)
            await super().put(item)


def update_job(update: Update) -> Job:
    """The job that handles an update: one at a time per chat, in the order received."""
    key = chat_key(update)
    return Job(
        UPDATE_TASK,
        {"update": update.to_dict()},
        lock=f"chat:{key}" if key is not None else None,
        queue=CHAT,
    )


def chat_key(update: object) -> int | None:
    """The chat an update belongs to (its user's for updates of no chat), or None."""
    if not isinstance(update, Update):
        return None
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return None
