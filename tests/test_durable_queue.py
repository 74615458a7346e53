"""The journal's queue (bot/telegram/durable.py) on its own: batches, second deliveries, and
the parsed updates it keeps for their jobs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

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
        self.jobs: dict[int, Job] = {}

    async def receive(self, update_id: int, job: Job) -> bool:
        return (await self.receive_many([(update_id, job)]))[0]

    async def receive_many(self, updates: Sequence[tuple[int, Job]]) -> list[bool]:
        await asyncio.sleep(0)  # a commit takes a moment: puts meanwhile join the next batch
        self.batches.append([update_id for update_id, _ in updates])
        fresh = []
        for update_id, job in updates:
            fresh.append(update_id not in self.seen)
            self.seen.add(update_id)
            self.jobs.setdefault(update_id, job)
        return fresh


def data(update_id: int) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": {"id": 7, "type": "private", "first_name": "Ana"},
            "text": "hello",
        },
    }


def update(update_id: int) -> Update:
    return Update.de_json(data(update_id), None)


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


async def test_a_webhooks_update_goes_to_its_job_as_the_json_it_came_in() -> None:
    # Not PTB's to_dict of the parsed update (a twentieth of a replica's loop in a burst).
    queue, inbox = await journaled()
    body = data(1)
    body["message"]["a_field_of_a_later_bot_api"] = {"kept": True}
    await queue.put_received(Update.de_json(body, None), body)
    job = inbox.jobs[1]
    assert job.args["update"] is body
    assert job.lock == "chat:7"  # still one at a time per chat
    assert queue.parsed(1) is not None
    polled = update(2)
    await queue.put(polled)  # polling: PTB parsed it, so it goes as PTB's dict
    assert inbox.jobs[2].args["update"] == polled.to_dict()
