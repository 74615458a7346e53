"""Two replicas' update queues on one PostgreSQL: who runs a chat's updates, and when it passes.

Each queue is driven by hand (`step()`), with its own clock for the leases; the end-to-end
test with two `python -m bot` processes is tests/test_replicas_e2e.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram import Bot, Update

from bot.telegram.replicas import SharedUpdateQueue
from storage.protocols import Storage
from tests.storage_backends import postgres_storage

BOT = Bot("123456:test-token")
LEASE = 15.0


class Clock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Storage]:
    async with postgres_storage(tmp_path) as storage:
        yield storage


def replica(store: Storage, clock: Clock, receiver_first: float = 60.0) -> SharedUpdateQueue:
    queue = SharedUpdateQueue(lease=LEASE, receiver_first=receiver_first, clock=clock)
    queue.shared_inbox = store.inbox
    queue.bot = BOT
    return queue


def text(update_id: int, chat_id: int, words: str) -> Update:
    return Update.de_json(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 1_700_000_000,
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": chat_id, "is_bot": False, "first_name": "Ana"},
                "text": words,
            },
        },
        BOT,
    )


def queued(queue: SharedUpdateQueue) -> list[int]:
    """The update ids the replica handed to its Application, taken off its queue."""
    ids = []
    while not queue.empty():
        item = queue.get_nowait()
        assert isinstance(item, Update)
        ids.append(item.update_id)
    return ids


async def test_a_chats_updates_run_on_the_replica_holding_it_whoever_received_them(
    store: Storage,
) -> None:
    clock = Clock()
    a, b = replica(store, clock), replica(store, clock)
    await a.put(text(1, 7, "first"))
    assert queued(a) == []  # journalled, not run yet
    await b.step()
    await a.step()
    assert queued(a) == [1] and a.holds(7) and not b.holds(7)
    await b.put(text(2, 7, "second"))  # the proxy sent the next one to B
    await b.put(text(3, 8, "another chat"))
    await b.step()  # chat 8 reached B itself: B takes it at once
    assert queued(b) == [3]  # B takes the chat nobody held
    await a.step()
    assert queued(a) == [2]  # A runs its chat's update, though B received it
    await a.step()
    assert queued(a) == []  # under way: not handed over twice
    await a.done(text(1, 7, "first"))
    await a.done(text(2, 7, "second"))
    assert [(w.chat_id, w.updates) for w in await store.inbox.waiting()] == [(8, 1)]


async def test_a_dead_replicas_chat_passes_on_with_what_it_had_not_finished(
    store: Storage,
) -> None:
    clock = Clock()
    a, b = replica(store, clock), replica(store, clock)
    for update_id in (1, 2, 3):
        await a.put(text(update_id, 7, f"message {update_id}"))
    await a.step()
    assert queued(a) == [1, 2, 3]
    await a.done(text(1, 7, "message 1"))
    # A is killed now: it never renews. Before the lease runs out B leaves the chat alone.
    clock.now += LEASE - 1
    await b.step()
    assert queued(b) == [] and not b.holds(7)
    clock.now += 2
    await b.step()
    assert queued(b) == [2, 3] and b.holds(7)  # in the order sent; 1 is not run again
    # A comes back to life: it learns the chat is no longer its own and feeds it no more.
    await a.put(text(4, 7, "message 4"))
    await a.step()
    assert not a.holds(7) and queued(a) == []
    await b.step()
    assert queued(b) == [4]


async def test_a_replica_that_stops_hands_its_chats_over_at_once(store: Storage) -> None:
    clock = Clock()
    a, b = replica(store, clock), replica(store, clock)
    await a.put(text(1, 7, "hello"))
    await a.step()
    assert queued(a) == [1]
    await a.let_go()  # SIGTERM before update 1 finished
    await b.step()
    assert queued(b) == [1] and b.holds(7)


async def test_a_quiet_chat_is_let_go_after_a_burst_and_taken_by_whoever_receives_next(
    store: Storage,
) -> None:
    clock = Clock()
    a = SharedUpdateQueue(lease=LEASE, keep_for=0.0, receiver_first=0.0, clock=clock)
    a.shared_inbox, a.bot = store.inbox, BOT
    b = replica(store, clock)
    await a.put(text(1, 7, "hello"))
    await a.step()
    await a.done(text(1, 7, "hello"))
    await a.step()
    assert not a.holds(7)
    await b.put(text(2, 7, "again"))
    await b.step()
    assert queued(b) == [2] and b.holds(7)


async def test_an_update_another_replica_received_is_left_to_it_for_a_moment(
    store: Storage,
) -> None:
    clock = Clock()
    a, b = replica(store, clock, receiver_first=0.2), replica(store, clock, receiver_first=0.2)
    await a.put(text(1, 7, "hello"))
    await b.step()
    assert not b.holds(7)  # A received it: A's to take
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not b.holds(7):  # A never looks (it died right after answering Telegram)
        assert loop.time() < deadline, "B never took the chat A left"
        await b.step()
    assert queued(b) == [1]


async def test_a_replica_whose_database_is_away_refuses_the_update_so_telegram_resends_it(
    store: Storage,
) -> None:
    a = replica(store, Clock())
    await store.close()
    with pytest.raises(Exception):  # noqa: B017 (whatever the driver raises)
        await a.put(text(1, 7, "hello"))


async def test_a_burst_of_new_chats_is_shared_by_the_replicas_that_look(store: Storage) -> None:
    # Ten chats' first messages reached both replicas (the proxy alternates); each look takes at
    # most two, so the replica that happens to look first does not take all ten.
    clock = Clock()
    a, b = replica(store, clock), replica(store, clock)
    for chat in range(10):
        await (a if chat % 2 else b).put(text(2 * chat + 1, 100 + chat, "hello"))
        await (b if chat % 2 else a).put(text(2 * chat + 2, 100 + chat, "again"))
    await a.step()
    assert len(queued(a)) == 4  # two chats, both their updates
    held_a = {chat for chat in range(100, 110) if a.holds(chat)}
    assert len(held_a) == 2
    for _ in range(10):
        await b.step()
        await a.step()
    held_a = {chat for chat in range(100, 110) if a.holds(chat)}
    held_b = {chat for chat in range(100, 110) if b.holds(chat)}
    assert held_a | held_b == set(range(100, 110)) and not held_a & held_b
    assert (len(held_a), len(held_b)) == (6, 4)  # two a look, in turns, A first
    assert len(queued(a)) + len(queued(b)) == 16  # every update once, none twice
