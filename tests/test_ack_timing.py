"""When the chat's `ack` job sends the burst's acknowledgement (bot/telegram/acks.py).

A burst is due a debounce after its last file was received. When it is due while the chat's
updates still wait behind a backlog, the burst may grow: the job waits for them (their last
file brings it forward). When one update is being handled, it may be counting the last file:
the job looks again a moment later, until it is done (a few rounds at most). A burst a command ended is sent at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.telegram import acks
from bot.telegram.acks import SETTLE_ROUNDS, SETTLE_SECONDS, Acknowledger
from bot.telegram.durable import UPDATE_TASK, chat_lock
from storage.jobs import Job

CHAT = 7
DEBOUNCE = 1.0


@dataclass
class Albums:
    """The burst's rows, as the job reads them."""

    due_in: float | None = 0.0
    under_way: bool = True

    async def acknowledgement_due(self, chat_id: int) -> float | None:
        return self.due_in

    async def burst_under_way(self, chat_id: int) -> bool:
        return self.under_way


@dataclass
class Jobs:
    """The chat's update jobs: how many wait, whether one runs; what the ack job defers."""

    todo: int = 0
    doing: bool = False
    deferred: list[Job] = field(default_factory=list)

    async def waiting(self, lock: str, task: str, running: bool = False) -> bool:
        assert (lock, task) == (chat_lock(CHAT), UPDATE_TASK)
        return self.todo > 0 or (running and self.doing)

    async def defer(self, job: Job) -> bool:
        self.deferred.append(job)
        return True


@pytest.fixture
def flushed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sent: list[int] = []

    async def flush(bot: Any, albums: Any, chat_id: int) -> None:
        sent.append(chat_id)

    monkeypatch.setattr(acks, "flush", flush)
    return sent


def _acknowledger(albums: Albums, jobs: Jobs) -> Acknowledger:
    return Acknowledger(None, albums, jobs, DEBOUNCE)  # type: ignore[arg-type]


async def test_a_due_burst_waits_while_the_chats_updates_wait_to_be_taken_in(
    flushed: list[int],
) -> None:
    jobs = Jobs(todo=3)
    await _acknowledger(Albums(), jobs).run(CHAT)
    assert flushed == []
    [again] = jobs.deferred
    assert again.delay == DEBOUNCE and "settle" not in again.args  # a debounce at most
    assert again.queueing_lock == f"ack:{CHAT}"


async def test_while_an_update_is_handled_it_looks_again_until_it_is_done(
    flushed: list[int],
) -> None:
    jobs = Jobs(doing=True)
    acknowledger = _acknowledger(Albums(), jobs)
    await acknowledger.run(CHAT)
    await acknowledger.run(CHAT, settled=1)  # still handled: it may still be counting
    assert flushed == []
    assert [(j.delay, j.args["settle"]) for j in jobs.deferred] == [
        (SETTLE_SECONDS, 1),
        (SETTLE_SECONDS, 2),
    ]
    jobs.doing = False  # done: its count is committed
    await acknowledger.run(CHAT, settled=2)
    assert flushed == [CHAT] and len(jobs.deferred) == 2


async def test_an_update_handled_long_does_not_hold_the_acknowledgement_for_ever(
    flushed: list[int],
) -> None:
    jobs = Jobs(doing=True)
    await _acknowledger(Albums(), jobs).run(CHAT, settled=SETTLE_ROUNDS)
    assert flushed == [CHAT] and jobs.deferred == []


async def test_a_burst_a_command_ended_is_sent_whatever_waits(flushed: list[int]) -> None:
    jobs = Jobs(todo=3, doing=True)
    await _acknowledger(Albums(under_way=False), jobs).run(CHAT)
    assert flushed == [CHAT] and jobs.deferred == []


async def test_a_quiet_chat_is_sent_at_once_and_an_early_job_comes_back_when_due(
    flushed: list[int],
) -> None:
    await _acknowledger(Albums(), Jobs()).run(CHAT)
    assert flushed == [CHAT]
    jobs = Jobs()
    await _acknowledger(Albums(due_in=0.4), jobs).run(CHAT)
    assert flushed == [CHAT] and [j.delay for j in jobs.deferred] == [0.4]
    await _acknowledger(Albums(due_in=None), jobs).run(CHAT)  # nothing behind: nothing
    assert flushed == [CHAT]
