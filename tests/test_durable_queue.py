"""The journal's queue (bot/telegram/durable.py) on its own: batches, second deliveries, and
the parsed updates it keeps for their jobs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from telegram import Update

from bot.telegram import durable
from bot.telegram.durable import DurableUpdateQueue
from storage.jobs import Job


class Inbox:
    """The journal's side, in memory: which ids were received, and each batch as written."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.batches: list[list[int]] = []

    async def receive(self, update_id: int, job: Job) -> bool:
        return (await self.receive_many([(update_id, job)]))[0]

    async def receive_many(self, updates: Sequence[tuple[int, Job]]) -> list[bool]:
        await asyncio.sleep(0)  # a commit takes a moment: puts meanwhile join the next batch
        self.batches.append([update_id for update_id, _ in updates])
        fresh = []
        for update_id, _ in updates:
            fresh.append(update_id not in self.seen)
            self.seen.add(update_id)
        return fresh


def update(update_id: int) -> Update:
    return Update.de_json(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 1_700_000_000,
                "chat": {"id": 7, "type": "private", "first_name": "Ana"},
                "text": "hello",
            },
        },
        None,
    )


async def journaled(*updates: Update) -> tuple[DurableUpdateQueue, Inbox]:
    queue = DurableUpdateQueue(redeliver=True)
    inbox = Inbox()
    queue.inbox = inbox
    await asyncio.gather(*(queue.put(u) for u in updates))
    return queue, inbox


async def test_an_update_journaled_here_is_handed_to_its_job_as_parsed_once() -> None:
    first = update(1)
    queue, inbox = await journaled(first, update(2))
    assert sorted(n for batch in inbox.batches for n in batch) == [1, 2]
    assert queue.parsed(1) is first  # the job runs here: no second parse
    assert queue.parsed(1) is None  # once: a retry parses the job's own copy
    assert queue.parsed(3) is None  # journaled elsewhere (another replica)


async def test_a_second_delivery_is_not_kept_for_a_job() -> None:
    queue, _ = await journaled(update(1))
    assert queue.parsed(1) is not None
    again = update(1)
    await queue.put(again)  # Telegram sent it again: no job is made for it
    assert queue.parsed(1) is None


async def test_the_parsed_updates_kept_are_few_and_the_latest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Jobs that run on another replica never take theirs: the oldest go first.
    monkeypatch.setattr(durable, "PARSED_KEPT", 3)
    queue, _ = await journaled(*(update(n) for n in range(1, 6)))
    assert [n for n in range(1, 6) if queue.parsed(n) is not None] == [3, 4, 5]
