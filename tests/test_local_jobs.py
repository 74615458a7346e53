"""What only the local job runner does (the shared contract is test_job_queue.py): its `jobs`
table, read back from the SQLite file, and a dispatcher woken by what happens rather than by
polling.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Connection

from storage.jobs import CHAT, JSON, Attempt, Job, Task, local
from storage.jobs.local import LocalQueue
from storage.sql.database import SqliteDatabase
from storage.sql.migrations import apply_migrations

WAIT = 20.0


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    db = SqliteDatabase(tmp_path / "jobs.sqlite3")
    await db.open()
    await db.write(apply_migrations)
    yield db
    await db.close()


def rows(db: SqliteDatabase) -> list[tuple[str, str, int]]:
    with sqlite3.connect(db.path) as conn:
        return list(conn.execute("SELECT task, status, attempts FROM jobs ORDER BY id"))


async def test_a_succeeded_job_leaves_no_row_and_a_failed_one_is_kept_a_day(
    db: SqliteDatabase,
) -> None:
    async def fails(attempt: Attempt, args: JSON) -> None:
        raise RuntimeError("no")

    async def works(attempt: Attempt, args: JSON) -> None:
        pass

    queue = LocalQueue(db)
    queue.register(Task("fails", fails, attempts=2, retry_wait=0.01))
    queue.register(Task("works", works))
    await queue.start({CHAT: 2})
    await queue.defer(Job("fails"))
    await queue.defer(Job("works"))
    assert await queue.wait_idle(WAIT)
    await queue.stop()
    assert rows(db) == [("fails", "failed", 2)]
    with sqlite3.connect(db.path) as conn:  # a day and a bit later
        conn.execute("UPDATE jobs SET failed_at = failed_at - 86400 - 60")
    queue = LocalQueue(db)
    await queue.start({CHAT: 2})  # purges at start, then hourly
    await queue.stop()
    assert rows(db) == []


async def test_defers_ends_and_delays_wake_the_dispatcher_without_polling(
    db: SqliteDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "POLL", 3600.0)  # only a wake-up can start a job in time
    started: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
    gate = asyncio.Event()

    async def record(attempt: Attempt, args: JSON) -> None:
        started[args["n"]].set()
        if args["n"] == "a":
            await gate.wait()

    async def runs(name: str) -> None:
        async with asyncio.timeout(WAIT):
            await started[name].wait()

    queue = LocalQueue(db)
    queue.register(Task("t", record))
    await queue.start({CHAT: 2})
    # another connection to the file, as the update journal has: a defer there wakes it too
    other = SqliteDatabase(db.path)
    await other.open()
    try:
        await queue.defer(Job("t", {"n": "a"}, lock="chat:1"))
        await runs("a")  # woken by the defer
        await queue.defer(Job("t", {"n": "b"}, lock="chat:1"))  # must wait for a
        gate.set()
        await runs("b")  # woken by a's end
        await queue.defer(Job("t", {"n": "late"}, delay=0.3))
        await runs("late")  # woken when it was due

        def defer(conn: Connection) -> bool:
            return queue.defer_in(conn, Job("t", {"n": "other"}))

        assert await other.write(defer)
        await runs("other")
    finally:
        await other.close()
        await queue.stop()


async def test_the_running_jobs_never_outnumber_the_workers(db: SqliteDatabase) -> None:
    most = 0

    async def count(attempt: Attempt, args: JSON) -> None:
        nonlocal most
        most = max(most, len(queue._running))

    def defer(conn: Connection) -> None:
        for n in range(60):
            queue.defer_in(conn, Job("t", {"n": n}))

    queue = LocalQueue(db)
    queue.register(Task("t", count))
    await db.write(defer)
    await queue.start({CHAT: 3})
    assert await queue.wait_idle(WAIT)
    await queue.stop()
    assert most == 3


async def test_a_claim_reads_the_clock_once_so_a_job_coming_due_is_taken_or_waited_for(
    db: SqliteDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between "which jobs are due?" and "when is the next one due?" SQLite's clock moves on:
    a job that came due in that moment was neither taken nor waited for, and the dispatcher
    slept a whole poll (an acknowledgement a second late, now and then). One reading of the
    clock serves both questions, so every waiting job is taken or counted."""
    queue = LocalQueue(db)
    await queue.defer(Job("due", delay=0.0))
    await queue.defer(Job("soon", delay=30.0))
    [soon_at] = await db.read(lambda conn: [r[0] for r in conn.exec_driver_sql(
        "SELECT run_after FROM jobs WHERE task = 'soon'")])  # fmt: skip
    readings: list[float] = []

    def clock(conn: Connection) -> float:
        # The moment "soon" comes due; a second reading would be later still.
        readings.append(soon_at)
        return soon_at + 0.001 * (len(readings) - 1)

    monkeypatch.setattr(local, "now_in", clock)
    claimed, due_in = await db.write(local._claim, {CHAT: 5})
    assert sorted(row["task"] for row in claimed) == ["due", "soon"]
    assert due_in is None
    assert len(readings) == 1


async def test_a_job_whose_end_could_not_be_recorded_at_once_does_not_hold_up_its_lock(
    db: SqliteDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A moment's "database is locked" when a job's end is written: the runner writes it again
    rather than leave the job `doing`, which would hold every later job of its chat until the
    process restarts."""
    finish = local._finish
    refused: list[int] = []

    def locked_once(conn: Connection, job_id: int, *args: object) -> None:
        if not refused:
            refused.append(job_id)
            raise sqlite3.OperationalError("database is locked")
        finish(conn, job_id, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(local, "_finish", locked_once)
    ran: list[str] = []

    async def step(attempt: Attempt, args: JSON) -> None:
        ran.append(args["n"])

    queue = LocalQueue(db)
    queue.register(Task("step", step))
    await queue.start({CHAT: 2})
    await queue.defer(Job("step", {"n": "first"}, lock="chat:1"))
    await queue.defer(Job("step", {"n": "second"}, lock="chat:1"))
    assert await queue.wait_idle(WAIT)
    await queue.stop()
    assert ran == ["first", "second"] and len(refused) == 1
    assert rows(db) == []  # both ended, each once


async def test_schedule_holds_a_job_while_a_lock_has_jobs_waiting_and_brings_it_forward_after(
    db: SqliteDatabase,
) -> None:
    # The acknowledgement's job while the chat's updates wait: deferred for `hold` (not due at
    # once, only to find them waiting), left there by a second file, brought forward by the
    # file after which none waits.
    queue = LocalQueue(db)  # not started: nothing runs
    ack = Job("ack", lock="ack:1", queueing_lock="ack:1")  # due now

    def due_in(conn: Connection) -> float:
        [(seconds,)] = conn.exec_driver_sql(
            "SELECT run_after - (julianday('now') - 2440587.5) * 86400.0 FROM jobs"
            " WHERE task = 'ack'"
        )
        return float(seconds)

    await queue.defer(Job("update", lock="chat:1"))
    await db.write(lambda conn: queue.schedule_in(conn, ack, "chat:1", hold=3600))
    assert 3500 < await db.read(due_in) <= 3600
    await db.write(lambda conn: queue.schedule_in(conn, ack, "chat:1", hold=3600))
    assert 3500 < await db.read(due_in) <= 3600  # still waiting: left as it is
    with sqlite3.connect(db.path) as conn:  # the update was taken in
        conn.execute("DELETE FROM jobs WHERE task = 'update'")
    await db.write(lambda conn: queue.schedule_in(conn, ack, "chat:1", hold=3600))
    assert await db.read(due_in) <= 0
    assert [task for task, _, _ in rows(db)] == ["ack"]  # one acknowledgement job throughout
