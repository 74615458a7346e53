"""Every Bot API call waits out flood limits and retries Telegram's passing server errors; a
job's calls go through its outbox (bot/telegram/outbox.py): posted once, none by a stale attempt.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from telegram.error import BadRequest, NetworkError, TimedOut
from telegram.ext import AIORateLimiter

from bot.service.reexports import current_attempt
from bot.telegram.outbox import SENDS, Outbox, harmless

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]
# Polling retries on its own; getFile is retried with its download, by the caller; the
# start-up calls wait for Telegram with their own policy (bot/telegram/connect.py).
NOT_RETRIED = frozenset({"getUpdates", "getFile", "getMe", "deleteWebhook", "setWebhook"})
# Progress signals are not messages: they do not count against the 30 messages a second, and
# queueing them behind other chats' messages would only make every chat look slower. Each
# chat's progress is already throttled by ChatProgress.
UNLIMITED = frozenset({"sendChatAction", "sendMessageDraft", "sendRichMessageDraft"})


class RetryingRateLimiter(AIORateLimiter):
    """PTB's AIORateLimiter (flood limits, 429 retry_after), plus retries of 5xx replies.

    A 500/502 from the Bot API means the call did not happen, so sending it again is safe; a
    timeout is not retried, because the message may have gone out and would then be doubled.
    While a job runs, its calls go through `outbox` (set at start-up): posted once per job.
    """

    def __init__(self, attempts: int = 3, backoff: float = 0.5) -> None:
        super().__init__(max_retries=3)
        self.attempts = attempts
        self.backoff = backoff
        self.outbox: Outbox | None = None

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | JSONDict | list[JSONDict]:
        """Send through the flood limiter, a job's posts once (its outbox); on a server error
        wait and send again."""
        if endpoint in UNLIMITED:
            once = functools.partial(callback, *args, **kwargs)
        else:
            limited = super().process_request
            once = functools.partial(
                limited, callback, args, kwargs, endpoint, data, rate_limit_args
            )
        send = functools.partial(self._retrying, once, endpoint)
        attempt = current_attempt()
        if attempt is None or self.outbox is None or harmless(endpoint):
            return await send()
        if endpoint in SENDS:
            return await self.outbox.send(attempt, endpoint, send)
        await self.outbox.fence(attempt)  # an edit, a delete, a draft: not by a stale attempt
        return await send()

    async def _retrying(
        self, once: Callable[[], Awaitable[bool | JSONDict | list[JSONDict]]], endpoint: str
    ) -> bool | JSONDict | list[JSONDict]:
        """Make the call; on a server error wait and make it again (not for progress signals,
        which are not worth a wait)."""
        if endpoint in UNLIMITED:
            return await once()
        for attempt in range(self.attempts):
            try:
                return await once()
            except (TimedOut, BadRequest):
                # PTB's BadRequest is a NetworkError too, but a 400 is a refusal: the same
                # request would be refused again (and a parse error's fallback would wait).
                raise
            except NetworkError as e:
                if endpoint in NOT_RETRIED or attempt + 1 >= self.attempts:
                    raise
                delay = self.backoff * 2**attempt
                log.info("Bot API %s failed (%s); retrying in %.1f s", endpoint, e.message, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")
