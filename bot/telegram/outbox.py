"""Effects once: what a job posts to Telegram is recorded, so a job run again (a crash, a stall
taken over by another replica, a retry) does not post it twice, and a stale attempt posts nothing.

Each call that posts something new is keyed by its job and its place in the attempt
("sendMessage#2": the attempt's third sendMessage). Before the call the key is recorded (the
intent, a fenced write: an attempt that lost its job raises TakenOver there, before it posts);
after it, Telegram's answer. A later attempt of the job making the same call gets that answer
back without calling Telegram. A job's sends must therefore come in the same order each time it
runs (they do: its work is the same, and its answers from the model are read back from the
conversation). A job whose messages follow what changed since its last try (the acknowledgement
of a burst that grew) gets the earlier message back, and brings it up to date (acks.py). Calls
that change what was posted (edits, deletes, drafts, callback answers) are only fenced, and only
where another worker could have taken the job over.

At least once in one window: an attempt that crashed after Telegram took a message and before
its answer was recorded leaves an intent without an answer, and the next attempt sends again.
So does a stale attempt stalled between its intent and its call (it finds out at its next write,
the answer's record, and stops there). A database failing only a moment as the answer is
recorded is tried again for a minute: that is not the window.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from bot.service.reexports import Attempt, SentStore, passing

log = logging.getLogger(__name__)

Result = bool | dict[str, Any] | list[dict[str, Any]]

# Calls that post something new to a chat: recorded, and not repeated by a job's later attempt.
SENDS = frozenset(
    {
        "sendMessage", "sendPhoto", "sendAudio", "sendDocument", "sendVideo", "sendAnimation",
        "sendVoice", "sendVideoNote", "sendPaidMedia", "sendMediaGroup", "sendLocation",
        "sendVenue", "sendContact", "sendPoll", "sendChecklist", "sendDice", "sendSticker",
        "sendInvoice", "sendGame", "sendRichMessage", "copyMessage", "copyMessages",
        "forwardMessage", "forwardMessages",
    }
)  # fmt: skip
# Calls that change nothing anyone keeps: neither recorded nor fenced. Reads start with "get".
HARMLESS = frozenset({"sendChatAction"})
IDLE_SECONDS = 3600.0  # an attempt's call counts are forgotten this long after its last call
# Recording Telegram's answer: tried again from a tenth of a second, doubling up to 2 s, for a
# minute (a SQLite writer waits out its busy timeout of 5 s in each try).
RECORD_FIRST_WAIT = 0.1
RECORD_MAX_WAIT = 2.0
RECORD_TRYING = 60.0


def _say_retrying(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    log.warning("Could not record a message sent (%r); trying again", error)


def harmless(endpoint: str) -> bool:
    """Whether a Bot API call changes nothing (a read, a chat action)."""
    return endpoint.startswith("get") or endpoint in HARMLESS


@dataclass
class _Calls:
    """How often an attempt made each call so far."""

    counts: Counter[str] = field(default_factory=Counter)
    used: float = 0.0


class Outbox:
    """Sends a job's messages once across its attempts (see the module's docstring)."""

    def __init__(self, store: SentStore) -> None:
        self.store = store
        # By (job, attempt number), not by context: the tasks an attempt starts count with it.
        self._calls: dict[tuple[int, int], _Calls] = {}

    async def send(
        self, attempt: Attempt, endpoint: str, call: Callable[[], Awaitable[Result]]
    ) -> Result:
        """Make a posting call once for the job: Telegram's earlier answer if an earlier
        attempt got one, else record the intent (TakenOver if this attempt lost its job),
        call, and record the answer."""
        key = f"{endpoint}#{self._count(attempt, endpoint)}"
        earlier = await self.store.intend(attempt.job_id, key, attempt.number)
        if earlier is not None:
            result: Result = earlier.result
            return result
        result = await call()
        await self._record(attempt.job_id, key, result)
        return result

    async def _record(self, job_id: int, key: str, result: Result) -> None:
        """Keep Telegram's answer, trying again for a while when the database fails a moment
        (busy, a connection dropped: `passing`): the message is out, and a record lost here
        would have the job's next try post it again. Anything else (an attempt that lost its
        job) raises at once."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(passing),
            wait=wait_exponential(multiplier=RECORD_FIRST_WAIT, max=RECORD_MAX_WAIT),
            stop=stop_after_delay(RECORD_TRYING),
            before_sleep=_say_retrying,
            reraise=True,
        )
        async for trying in retrying:
            with trying:
                await self.store.record(job_id, key, result)

    async def fence(self, attempt: Attempt) -> None:
        """Before a call that changes what was posted: TakenOver if this attempt lost its job
        (no database trip where no other worker can take it over)."""
        if attempt.shared:
            await self.store.fence()

    def _count(self, attempt: Attempt, endpoint: str) -> int:
        now = time.monotonic()
        calls = self._calls.get((attempt.job_id, attempt.number))
        if calls is None:
            if len(self._calls) >= 256:
                # Attempts end without saying so: forget the ones quiet for long.
                self._calls = {k: c for k, c in self._calls.items() if now - c.used < IDLE_SECONDS}
            calls = self._calls[(attempt.job_id, attempt.number)] = _Calls()
        calls.used = now
        n = calls.counts[endpoint]
        calls.counts[endpoint] = n + 1
        return n
