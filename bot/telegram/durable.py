"""Updates survive a crash: written down when fetched, crossed off when handled."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Protocol

from telegram import Bot, Update

log = logging.getLogger(__name__)


class Inbox(Protocol):
    """Where fetched updates are kept until handled (the storage's inbox)."""

    async def keep(self, update_id: int, payload: str) -> None: ...

    async def done(self, update_id: int) -> None: ...

    async def unfinished(self) -> list[str]: ...


class DurableUpdateQueue(asyncio.Queue[object]):
    """PTB's update queue, with every update written to the inbox before it is queued.

    PTB confirms fetched updates to Telegram with its next poll, before they are handled; the
    inbox is what lets a restarted bot finish the ones a killed process had only fetched.
    """

    def __init__(self) -> None:
        super().__init__()
        self.inbox: Inbox | None = None

    async def put(self, item: object) -> None:
        """Journal the update, then queue it."""
        if self.inbox is not None and isinstance(item, Update):
            try:
                await self.inbox.keep(item.update_id, json.dumps(item.to_dict()))
            except Exception:
                # Raising here would end PTB's polling loop and leave the bot deaf: handle the
                # update anyway, without the crash safety for this one.
                log.exception("Could not journal update %s; handling it anyway", item.update_id)
        await super().put(item)

    async def replay(self, bot: Bot) -> int:
        """Queue again the updates an earlier run did not finish; return how many."""
        if self.inbox is None:
            return 0
        payloads = await self.inbox.unfinished()
        for payload in payloads:
            await super().put(Update.de_json(json.loads(payload), bot))
        if payloads:
            log.info("Resuming %d update(s) left unhandled by the last run", len(payloads))
        return len(payloads)

    async def stop_taking(self) -> None:
        """Stopping: queue nothing more (every update here is queued as it is received)."""

    async def done(self, update: object) -> None:
        """Cross an update off once its handlers ran."""
        if self.inbox is not None and isinstance(update, Update):
            await self.inbox.done(update.update_id)
