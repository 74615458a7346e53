"""The PostgreSQL job runner (storage/jobs/postgres.py) on a real PostgreSQL: the rules every
runner keeps, and what only replicas need (shared work, a frozen worker taken over, fencing)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from procrastinate.schema import SchemaManager
from sqlalchemy import Connection, bindparam, column, func, insert, table, text

from storage.jobs import CHAT, JSON, MEDIA, Attempt, Ending, Job, TakenOver, Task
from storage.jobs.postgres import PostgresAttempt, PostgresQueue, _end_with
from storage.sql.database import PostgresDatabase, Rollback
from tests.pg_replica import open_database, replica

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 30.0  # seconds: far above any machine for what the tests wait on


async def eventually(check: Callable[[], Awaitable[bool]], what: str, limit: float = LIMIT) -> None:
    """Poll `check` until true; fail after `limit` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def rows(db: PostgresDatabase, sql: str, **params: Any) -> Awaitable[list[tuple[Any, ...]]]:
    return db.read(lambda conn: [tuple(r) for r in conn.execute(text(sql), params)])


async def effects(db: PostgresDatabase) -> list[tuple[int, str, str, int]]:
    """(n, event, who, attempt) in the order they happened (database clock)."""
    found = await rows(db, "SELECT n, event, who, attempt FROM effects ORDER BY at, id")
    return [(r[0], r[1], r[2], r[3]) for r in found]


def one_at_a_time(events: list[tuple[int, str, str, int]], ns: set[int]) -> bool:
    """Whether the steps `ns` (one lock) never overlapped: each start is followed by its end."""
    mine = [(n, e) for n, e, _, _ in events if n in ns and e in ("start", "end")]
    running: int | None = None
    for n, event in mine:
        if event == "start":
            if running is not None and running != n:
                return False
            running = n
        elif running == n:
            running = None
    return True


def step(n: int, chat: int | None = 1, **args: Any) -> Job:
    return Job("step", {"n": n, **args}, lock=None if chat is None else f"chat:{chat}")


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[PostgresDatabase]:
    database = await open_database(postgres_url)
    yield database
    await database.close()


@pytest.fixture
async def queues(
    db: PostgresDatabase, postgres_url: str
) -> AsyncIterator[Callable[..., PostgresQueue]]:
    """Make PostgresQueue replicas (each named, `step` registered); all stopped at the end."""
    made: list[PostgresQueue] = []

    def make(who: str = "A", **options: Any) -> PostgresQueue:
        queue = replica(db, postgres_url, who, **options)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        await queue.stop(5.0)


async def test_jobs_of_one_lock_run_one_at_a_time_in_deferral_order(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    queue = queues()
    for n in range(1, 6):
        assert await queue.defer(step(n, chat=1))
    for n in range(11, 14):
        assert await queue.defer(step(n, chat=2))
    await queue.start({CHAT: 4})
    assert await queue.wait_idle(LIMIT)
    events = await effects(db)
    assert [n for n, e, _, _ in events if e == "start" and n < 10] == [1, 2, 3, 4, 5]
    assert [n for n, e, _, _ in events if e == "start" and n > 10] == [11, 12, 13]
    assert one_at_a_time(events, {1, 2, 3, 4, 5})
    assert one_at_a_time(events, {11, 12, 13})


async def test_a_retried_job_keeps_its_place_in_its_lock(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    queue = queues()
    await queue.defer(step(1, fail_first=1))
    await queue.defer(step(2))
    await queue.defer(step(3))
    await queue.start({CHAT: 4})
    assert await queue.wait_idle(LIMIT)
    starts = [(n, attempt) for n, e, _, attempt in await effects(db) if e == "start"]
    assert starts == [(1, 0), (1, 1), (2, 0), (3, 0)]


def turned(n: int, chat: int, keep: float = LIMIT) -> Job:
    return replace(step(n, chat=chat), keep_turn=keep)


async def test_a_locks_jobs_deferred_close_together_keep_its_turn(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    # Two chats' bursts arrive interleaved (as webhooks do); one worker slot takes the first
    # chat's whole burst before the second's. Without turns it would alternate.
    queue = queues()
    for n, chat in [(1, 1), (11, 2), (2, 1), (12, 2), (3, 1)]:
        assert await queue.defer(turned(n, chat))  # each in a transaction of its own

    def batch(conn: Connection) -> None:  # and a batch (one statement), in the same turns
        queue.defer_all_in(conn, [turned(13, 2), turned(4, 1), turned(21, 3)])

    await db.write(batch)
    await queue.start({CHAT: 1})
    assert await queue.wait_idle(LIMIT)
    starts = [n for n, e, _, _ in await effects(db) if e == "start"]
    assert starts == [1, 2, 3, 4, 11, 12, 13, 21]


async def test_a_lapsed_turn_goes_behind_the_turns_taken_since(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    queue = queues()
    assert await queue.defer(turned(1, 1, keep=0.05))

    async def lapsed() -> bool:
        sql = (
            "SELECT until < EXTRACT(EPOCH FROM clock_timestamp())"
            " FROM job_turns WHERE lock = 'chat:1'"
        )
        return bool((await rows(db, sql))[0][0])

    await eventually(lapsed, "chat 1's turn to lapse")
    assert await queue.defer(turned(11, 2))
    assert await queue.defer(turned(2, 1))  # a new burst of chat 1: after chat 2's
    assert await queue.defer(turned(12, 2))
    await queue.start({CHAT: 1})
    assert await queue.wait_idle(LIMIT)
    starts = [n for n, e, _, _ in await effects(db) if e == "start"]
    assert starts == [1, 11, 12, 2]


async def test_a_queueing_lock_lets_one_job_wait(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    queue = queues()
    ack = Job("step", {"n": 1}, queueing_lock="ack:1")
    assert await queue.defer(ack)
    assert not await queue.defer(Job("step", {"n": 2}, queueing_lock="ack:1"))
    await queue.start({CHAT: 1})
    assert await queue.wait_idle(LIMIT)
    assert await queue.defer(Job("step", {"n": 3}, queueing_lock="ack:1"))  # none waits now
    assert await queue.wait_idle(LIMIT)
    assert [n for n, e, _, _ in await effects(db) if e == "end"] == [1, 3]


async def test_a_job_retried_while_one_waits_under_its_queueing_lock_takes_its_place(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    # A chat's acknowledgement job fails while the chat's next one waits (deferred while it
    # ran). procrastinate's retry would make it a second waiting job, which the queueing lock's
    # unique index refuses: the job stayed `doing`, holding the chat's acknowledgements for as
    # long as its replica lived. It takes the waiting one's place instead: its own id (what it
    # sent is known to its next try), that one's arguments.
    queue = queues()
    await queue.start({CHAT: 2})
    ack = {"lock": "ack:1", "queueing_lock": "ack:1"}
    assert await queue.defer(Job("step", {"n": 1, "hold": True, "fail_first": 1}, **ack))
    await eventually(lambda: _started(db, 1), "the first acknowledgement job to start")
    assert await queue.defer(Job("step", {"n": 2}, **ack))
    await db.write(lambda c: c.execute(text("INSERT INTO releases VALUES (1, 'A')")))
    assert await queue.wait_idle(LIMIT)
    events = await effects(db)
    assert [(n, attempt) for n, e, _, attempt in events if e == "start"] == [(1, 0), (2, 1)]
    assert [n for n, e, _, _ in events if e == "end"] == [2]
    assert await rows(db, "SELECT id FROM procrastinate_jobs") == []


async def _started(db: PostgresDatabase, n: int) -> bool:
    return bool(await rows(db, "SELECT 1 FROM effects WHERE n = :n AND event = 'start'", n=n))


async def test_a_refused_queueing_lock_spoils_nothing_else_in_the_transaction(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    queue = queues()

    def journal_and_defer(conn: Connection) -> list[bool]:
        conn.execute(text("INSERT INTO releases (n, who) VALUES (1, 'journal')"))
        first = queue.defer_in(conn, Job("step", {"n": 1}, queueing_lock="ack:1"))
        second = queue.defer_in(conn, Job("step", {"n": 2}, queueing_lock="ack:1"))
        third = queue.defer_in(conn, step(3))
        conn.execute(text("INSERT INTO releases (n, who) VALUES (2, 'journal')"))
        return [first, second, third]

    assert await db.write(journal_and_defer) == [True, False, True]
    assert await rows(db, "SELECT n FROM releases ORDER BY n") == [(1,), (2,)]
    assert await rows(db, "SELECT args->>'n' FROM procrastinate_jobs ORDER BY id") == [
        ("1",),
        ("3",),
    ]


async def test_a_job_deferred_in_a_rolled_back_transaction_does_not_exist(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    queue = queues()

    def defer_then_fail(conn: Connection) -> None:
        assert queue.defer_in(conn, step(1))
        raise Rollback()

    await db.write(defer_then_fail)
    assert await rows(db, "SELECT count(*) FROM procrastinate_jobs") == [(0,)]


async def test_a_delay_counts_on_the_database_clock(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    queue = queues()
    [(before,)] = await rows(db, "SELECT clock_timestamp()")
    await queue.defer(Job("step", {"n": 1}, delay=1.5))
    [(scheduled,)] = await rows(db, "SELECT scheduled_at FROM procrastinate_jobs")
    assert 1.5 <= (scheduled - before).total_seconds() < 1.5 + LIMIT
    await queue.start({CHAT: 1})
    assert await queue.wait_idle(LIMIT)
    [(started,)] = await rows(db, "SELECT at FROM effects WHERE event = 'start'")
    assert started >= scheduled


async def test_a_delayed_job_starts_when_due_without_waiting_for_a_poll(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    # Polling once a minute: procrastinate notifies a job when it is inserted, not when it
    # comes due; the replica that deferred it wakes its workers then (an acknowledgement's
    # job is deferred a debounce ahead, and must not wait for the next poll).
    queue = queues(polling=60.0)
    await queue.start({CHAT: 1})
    await eventually(lambda: rows(db, "SELECT 1 FROM procrastinate_workers"), "the worker")
    await queue.defer(step(0, chat=None))  # the worker took it and waits for news or a poll
    await eventually(lambda: rows(db, "SELECT 1 FROM effects WHERE n = 0 AND event = 'end'"), "0")
    await queue.defer(Job("step", {"n": 1}, delay=0.3))
    await db.write(lambda conn: queue.defer_all_in(conn, [Job("step", {"n": 2}, delay=0.6)]))
    assert await queue.wait_idle(LIMIT)  # LIMIT is half of one polling interval
    assert [n for n, e, _, _ in await effects(db) if e == "end"] == [0, 1, 2]


async def test_sooner_brings_the_waiting_job_forward(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    queue = queues(polling=60.0)  # only the brought-forward notification can wake it in time
    await queue.defer(Job("step", {"n": 1}, queueing_lock="ack:1", delay=3600))
    await queue.start({CHAT: 1})
    await queue.defer(step(0, chat=None))  # once it ran, the worker waits for news or a poll
    await eventually(lambda: rows(db, "SELECT 1 FROM effects WHERE n = 0 AND event = 'end'"), "0")
    assert not await db.write(lambda conn: queue.sooner_in(conn, "ack:2"))
    assert await db.write(lambda conn: queue.sooner_in(conn, "ack:1", 0.0))
    assert await queue.wait_idle(LIMIT)
    assert [n for n, e, _, _ in await effects(db) if e == "end"] == [0, 1]


async def test_schedule_holds_a_job_while_a_lock_has_jobs_waiting_and_brings_it_forward_after(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    queue = queues()  # not started: nothing runs
    ack = Job("step", {"n": 1}, lock="ack:1", queueing_lock="ack:1")  # due now
    due_in = (
        "SELECT EXTRACT(EPOCH FROM scheduled_at - clock_timestamp()), count(*) OVER ()"
        " FROM procrastinate_jobs WHERE queueing_lock = 'ack:1'"
    )
    await queue.defer(step(0, chat=1))
    await db.write(lambda conn: queue.schedule_in(conn, ack, "chat:1", hold=3600))
    [(seconds, _)] = await rows(db, due_in)
    assert 3500 < seconds <= 3600
    await db.write(lambda conn: queue.schedule_in(conn, ack, "chat:1", hold=3600))
    [(seconds, _)] = await rows(db, due_in)
    assert 3500 < seconds <= 3600  # still waiting: left as it is
    await db.write(
        lambda conn: conn.execute(text("DELETE FROM procrastinate_jobs WHERE lock = 'chat:1'"))
    )
    await db.write(lambda conn: queue.schedule_in(conn, ack, "chat:1", hold=3600))
    [(seconds, count)] = await rows(db, due_in)
    assert seconds <= 0 and count == 1  # brought forward: one acknowledgement job throughout


async def test_a_job_failing_every_attempt_is_given_up_once(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    queue = queues()
    told: list[tuple[str, JSON]] = []

    async def given_up(task: str, args: JSON) -> None:
        told.append((task, dict(args)))

    await queue.defer(step(1, fail_first=99))
    await queue.defer(step(2))
    await queue.start({CHAT: 1}, given_up)
    assert await queue.wait_idle(LIMIT)
    starts = [(n, attempt) for n, e, _, attempt in await effects(db) if e == "start"]
    assert starts == [(1, 0), (1, 1), (1, 2), (2, 0)]  # three tries in all, then the next
    assert told == [("step", {"n": 1, "fail_first": 99})]
    assert await rows(db, "SELECT status FROM procrastinate_jobs") == [("failed",)]


async def test_the_telling_of_a_job_given_up_outlives_the_replica_that_gave_it_up(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    # The telling is a job deferred in the transaction that fails the job: a replica stopped
    # while telling leaves it to another, which tells (before, the telling ran in the failing
    # worker after the commit, and was lost with it).
    first = queues("A")
    telling = asyncio.Event()

    async def tell_and_hang(task: str, args: JSON) -> None:
        telling.set()
        await asyncio.Event().wait()

    await first.defer(step(1, fail_first=99))
    await first.start({CHAT: 1}, tell_and_hang)
    async with asyncio.timeout(LIMIT):
        await telling.wait()
    await first.stop(0)
    told: list[tuple[str, JSON]] = []

    async def given_up(task: str, args: JSON) -> None:
        told.append((task, dict(args)))

    second = queues("B", stalled_after=1.0)
    await second.start({CHAT: 1}, given_up)
    assert await second.wait_idle(LIMIT)
    assert told == [("step", {"n": 1, "fail_first": 99})]
    starts = [(n, attempt) for n, e, _, attempt in await effects(db) if e == "start"]
    assert starts == [(1, 0), (1, 1), (1, 2)]  # the job itself is not run again


async def test_a_telling_that_fails_is_tried_again(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    queue = queues()
    calls: list[tuple[str, JSON]] = []

    async def given_up(task: str, args: JSON) -> None:
        calls.append((task, dict(args)))
        if len(calls) == 1:
            raise RuntimeError("Telegram is away for a moment")

    await queue.defer(step(1, fail_first=99))
    await queue.start({CHAT: 1}, given_up)
    assert await queue.wait_idle(LIMIT)
    assert calls == [("step", {"n": 1, "fail_first": 99})] * 2


async def test_the_queues_run_independently(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    queue = queues()
    await queue.defer(Job("step", {"n": 1, "hold": True}, queue=MEDIA))
    await queue.defer(Job("step", {"n": 2, "hold": True}, queue=MEDIA))
    await queue.start({CHAT: 1, MEDIA: 1})
    await eventually(
        lambda: rows(db, "SELECT 1 FROM effects WHERE n = 1 AND event = 'start'"), "media job 1"
    )
    await queue.defer(step(3))  # a chat job, while the only media worker is busy
    await eventually(
        lambda: rows(db, "SELECT 1 FROM effects WHERE n = 3 AND event = 'end'"), "the chat job"
    )
    assert await rows(db, "SELECT count(*) FROM effects WHERE n = 2") == [(0,)]
    await db.write(lambda c: c.execute(text("INSERT INTO releases VALUES (1, 'A'), (2, 'A')")))
    assert await queue.wait_idle(LIMIT)


async def test_the_next_job_of_a_lock_starts_without_waiting_for_a_poll(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    # Polling once a minute: five jobs of one lock would need four polls (four minutes)
    # without m012's trigger; with it, each hand-over is a notification.
    queue = queues(polling=60.0)
    await queue.start({CHAT: 2})
    await eventually(lambda: rows(db, "SELECT 1 FROM procrastinate_workers"), "the worker")

    def five(conn: Connection) -> None:
        for n in range(1, 6):
            queue.defer_in(conn, step(n))

    await db.write(five)
    assert await queue.wait_idle(LIMIT)  # LIMIT is half of one polling interval
    assert [n for n, e, _, _ in await effects(db) if e == "end"] == [1, 2, 3, 4, 5]


async def test_a_job_made_runnable_during_a_fetch_that_found_none_starts_without_a_poll(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    # The race behind a hand-over: the worker's fetch finds nothing, and the notification of
    # a job that became runnable meanwhile comes before the fetch returns. procrastinate's
    # worker clears its event after each fetch: the job would wait for the next poll (a
    # minute here). Made certain: once the worker listens, its next empty fetch returns only
    # after such a notification has been handled.
    queue = queues(polling=60.0)
    connector = queue._manager.connector
    real = connector.execute_query_one_async
    armed, raced = asyncio.Event(), asyncio.Event()

    async def fetch_racing_a_job(query: str, **arguments: Any) -> Any:
        row = await real(query, **arguments)
        if "procrastinate_fetch_job" in query and row["id"] is None and armed.is_set():
            armed.clear()
            await queue.defer(step(2))
            [running] = queue._workers
            await eventually(wrap(running._new_job_event.is_set), "the notification")
            raced.set()
        return row

    connector.execute_query_one_async = fetch_racing_a_job
    await queue.start({CHAT: 1})
    listening = (
        "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
    )
    await eventually(lambda: rows(db, listening), "the worker to listen")
    armed.set()
    assert await queue.defer(step(1))  # its notification wakes the worker: then an empty fetch
    await eventually(wrap(raced.is_set), "the raced fetch")
    assert await queue.wait_idle(LIMIT)  # LIMIT is half of one polling interval
    assert sorted(n for n, e, _, _ in await effects(db) if e == "end") == [1, 2]


def wrap(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def checked() -> bool:
        return check()

    return checked


async def test_two_replicas_share_three_chats_and_never_run_two_jobs_of_a_chat_at_once(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    a, b = queues("A"), queues("B")
    await a.start({CHAT: 2})
    await b.start({CHAT: 2})
    await eventually(
        lambda: rows(db, "SELECT 1 FROM procrastinate_workers OFFSET 1"), "both workers"
    )

    def burst(conn: Connection) -> None:
        for round_ in range(4):
            for chat in (1, 2, 3):
                a.defer_in(conn, step(chat * 10 + round_, chat=chat))

    await db.write(burst)
    assert await a.wait_idle(LIMIT)
    events = await effects(db)
    for chat in (1, 2, 3):
        ns = [chat * 10 + r for r in range(4)]
        assert [n for n, e, _, _ in events if e == "start" and n in ns] == ns
        assert one_at_a_time(events, set(ns))
    assert {who for _, _, who, _ in events} == {"A", "B"}


async def test_a_frozen_worker_is_taken_over_and_its_late_effects_are_refused(
    db: PostgresDatabase, postgres_url: str, queues: Callable[..., PostgresQueue]
) -> None:
    frozen = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.pg_replica", postgres_url, "A",
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert frozen.stdout is not None and frozen.stderr is not None
    log = bytearray()

    async def read_log() -> None:
        assert frozen.stderr is not None
        while line := await frozen.stderr.readline():
            log.extend(line)

    reader = asyncio.create_task(read_log())
    try:
        assert await frozen.stdout.readline() == b"ready\n"
        b = queues("B")

        def chat_jobs(conn: Connection) -> None:
            b.defer_in(conn, step(1, chat=3, hold=True))
            b.defer_in(conn, step(2, chat=3))

        await db.write(chat_jobs)
        await eventually(
            lambda: rows(db, "SELECT 1 FROM effects WHERE n = 1 AND who = 'A'"), "A's start"
        )
        os.kill(frozen.pid, signal.SIGSTOP)
        await b.start({CHAT: 2})  # recovers job 1 once A's heartbeat is 2 s old
        await eventually(
            lambda: rows(db, "SELECT 1 FROM effects WHERE n = 1 AND who = 'B'"), "B's takeover"
        )
        os.kill(frozen.pid, signal.SIGCONT)
        await db.write(lambda c: c.execute(text("INSERT INTO releases VALUES (1, 'A')")))
        await eventually(
            lambda: rows(db, "SELECT 1 FROM effects WHERE event = 'taken-over'"), "A's refusal"
        )

        async def a_left_the_row() -> bool:
            return b"was taken over: left to its new worker" in log

        await eventually(a_left_the_row, "A's finish to pass")
        # A's finish changed nothing: job 1 is still B's, so job 2 has not started.
        assert await rows(db, "SELECT count(*) FROM effects WHERE n = 2") == [(0,)]
        await db.write(lambda c: c.execute(text("INSERT INTO releases VALUES (1, 'B')")))
        assert await b.wait_idle(LIMIT)
    finally:
        if frozen.returncode is None:
            os.kill(frozen.pid, signal.SIGCONT)
            frozen.terminate()
        await frozen.wait()
        await reader
    events = await effects(db)
    ends = [(n, who) for n, e, who, _ in events if e == "end"]
    assert ends == [(1, "B"), (2, ends[1][1])]  # each effect once; n=1 by the taker-over
    b_end = events.index((1, "end", "B", 1))
    assert all(i > b_end for i, ev in enumerate(events) if ev[0] == 2)  # order kept


async def test_a_worker_whose_row_was_pruned_is_started_again(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    queue = queues(heartbeat=60.0)  # no heartbeat puts the row back meanwhile
    await queue.start({CHAT: 1})
    await eventually(lambda: rows(db, "SELECT 1 FROM procrastinate_workers"), "the worker")
    [(first,)] = await rows(db, "SELECT id FROM procrastinate_workers")
    await db.write(lambda c: c.execute(text("DELETE FROM procrastinate_workers")))
    await queue.defer(step(1))  # its fetch now fails: it is not a registered worker any more
    assert await queue.wait_idle(LIMIT)
    assert [w for (w,) in await rows(db, "SELECT id FROM procrastinate_workers")] != [first]


async def test_the_frozen_schema_is_the_installed_procrastinates() -> None:
    # An upgrade of procrastinate changes its schema.sql: append its migrations as ours.
    frozen = (ROOT / "storage" / "sql" / "procrastinate_3_10.sql").read_text(encoding="utf-8")
    assert frozen == SchemaManager.get_schema()


async def test_the_sql_functions_we_call_have_the_signatures_we_call_them_with(
    db: PostgresDatabase,
) -> None:
    found = dict(
        await rows(
            db,
            "SELECT proname, pg_get_function_identity_arguments(oid) FROM pg_proc"
            " WHERE proname LIKE 'procrastinate%'",
        )
    )
    assert found["procrastinate_defer_jobs_v1"] == "jobs procrastinate_job_to_defer_v1[]"
    assert found["procrastinate_retry_job_v2"] == (
        "job_id bigint, retry_at timestamp with time zone, new_priority integer,"
        " new_queue_name character varying, new_lock character varying"
    )
    assert found["procrastinate_finish_job_v1"] == (
        "job_id bigint, end_status procrastinate_job_status, delete_job boolean"
    )
    fields = await rows(
        db,
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'procrastinate_job_to_defer_v1'::regclass AND attnum > 0"
        " ORDER BY attnum",
    )
    assert [name for name, _ in fields] == [
        "queue_name", "task_name", "priority", "lock", "queueing_lock", "args", "scheduled_at",
    ]  # fmt: skip
    columns = {
        name
        for (name,) in await rows(
            db,
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name IN ('procrastinate_jobs', 'procrastinate_workers')",
        )
    }
    assert {"status", "attempts", "worker_id", "lock", "queueing_lock", "scheduled_at"} <= columns
    assert "last_heartbeat" in columns


async def test_the_attempt_a_task_sees(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    queue = queues()
    seen: list[tuple[str, int, bool, bool]] = []

    async def look(attempt: Attempt, args: JSON) -> None:
        seen.append((attempt.task, attempt.number, attempt.last, attempt.shared))
        if attempt.number == 0:
            raise RuntimeError("once")

    queue.register(Task("look", look, attempts=2, retry_wait=0.1))
    await queue.defer(Job("look"))
    await queue.start({CHAT: 1})
    assert await queue.wait_idle(LIMIT)
    assert seen == [("look", 0, False, True), ("look", 1, True, True)]


async def test_a_stalled_job_whose_queueing_lock_has_one_waiting_takes_its_place(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    # A replica died running an acknowledgement job while the chat's next one already waited
    # (one waiting per queueing lock): retrying the dead one beside it would be a second
    # waiting job, which the queueing lock's unique index refuses, and the recovery of every
    # other stalled job would fail with it. It takes the waiting one's place (its own id: what
    # it sent is known to its next try); out of attempts, it leaves its work to that one.
    queue = queues(stalled_after=1.0)
    running = Job("step", {"n": 1}, lock="ack:1", queueing_lock="ack:1")
    assert await queue.defer(running)
    other = await queue.defer(step(2, chat=2))  # another dead replica's job, stalled too
    assert other
    spent = Job("step", {"n": 4}, lock="ack:2", queueing_lock="ack:2")
    assert await queue.defer(spent)  # a third, out of attempts

    def die_running_both(conn: Any) -> None:
        worker = conn.execute(
            text(
                "INSERT INTO procrastinate_workers (last_heartbeat)"
                " VALUES (now() - interval '1 hour') RETURNING id"
            )
        ).scalar_one()
        conn.execute(
            text("UPDATE procrastinate_jobs SET status = 'doing', worker_id = :w"),
            {"w": worker},
        )

    await db.write(die_running_both)
    spent_out = text("UPDATE procrastinate_jobs SET attempts = 2 WHERE args->>'n' = '4'")
    await db.write(lambda conn: conn.execute(spent_out))
    assert await queue.defer(Job("step", {"n": 3}, lock="ack:1", queueing_lock="ack:1"))
    assert await queue.defer(Job("step", {"n": 5}, lock="ack:2", queueing_lock="ack:2"))

    ids = dict(await rows(db, "SELECT args->>'n', id FROM procrastinate_jobs"))

    await db.write(queue._recover)  # what every replica runs each second

    left = await rows(
        db, "SELECT id, args->>'n', status, attempts FROM procrastinate_jobs ORDER BY id"
    )
    assert left == [
        (ids["1"], "3", "todo", 1),  # the dead ack, with the waiting one's arguments
        (ids["2"], "2", "todo", 1),
        (ids["5"], "5", "todo", 0),  # the spent one left its work to the one waiting
    ]


async def test_a_jobs_endings_commit_in_the_transaction_that_ends_it(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    # The job's end (procrastinate's delete of its row) and the writes its attempt asked for
    # with it are one commit: a crash between them cannot leave an update marked handled
    # whose job runs again, nor a job ended without its mark.
    await db.write(
        lambda conn: conn.execute(
            text(
                "CREATE TABLE ends (what text, tx bigint);"
                "CREATE FUNCTION note_end() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN INSERT INTO ends VALUES ('job ' || OLD.task_name, txid_current());"
                " RETURN NULL; END $$;"
                "CREATE TRIGGER note_end AFTER DELETE ON procrastinate_jobs"
                " FOR EACH ROW EXECUTE FUNCTION note_end();"
            )
        )
    )
    queue = queues()
    ends_table = table("ends", column("what"), column("tx"))
    mark = Ending(insert(ends_table).values(what="ending", tx=func.txid_current()))
    # Its write fails (no such column): the job's end fails with it.
    broken = Ending(insert(table("ends", column("what"), column("nothing"))).values(nothing=1))

    async def ends(attempt: Attempt, args: JSON) -> None:
        attempt.at_end(mark)
        if args.get("break") and attempt.number == 0:
            attempt.at_end(broken)

    queue.register(Task("ends", ends, attempts=2, retry_wait=0.1))
    await queue.defer(Job("ends"))
    await queue.defer(Job("ends", {"break": True}))
    await queue.start({CHAT: 1})
    assert await queue.wait_idle(LIMIT)

    found = await rows(db, "SELECT what, tx FROM ends ORDER BY tx, what")
    # Two jobs ended, each with one ending in its own transaction; the failed ending's write
    # was undone with it and its job ran again.
    assert [what for what, _ in found] == ["ending", "job ends", "ending", "job ends"]
    assert found[0][1] == found[1][1] and found[2][1] == found[3][1] != found[0][1]


async def test_a_jobs_end_taken_over_writes_nothing(
    db: PostgresDatabase, queues: Callable[..., PostgresQueue]
) -> None:
    # The end and its endings are one statement: when the row is no longer the attempt's,
    # photostory_taken_over (m017) raises inside it, so the endings written before it in
    # the same statement are undone, and the job is left to the attempt that has it.
    await db.write(lambda conn: conn.execute(text("CREATE TABLE ends (what text)")))
    queue = queues()
    assert await queue.defer(Job("step", {"n": 1}, lock="chat:1"))

    def running_elsewhere(conn: Connection) -> tuple[int, int]:
        worker = conn.execute(
            text("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id")
        ).scalar_one()
        job = conn.execute(
            text("UPDATE procrastinate_jobs SET status = 'doing', worker_id = :w RETURNING id"),
            {"w": worker},
        ).scalar_one()
        return int(job), int(worker)

    job_id, worker = await db.write(running_elsewhere)
    mark = Ending(
        insert(table("ends", column("what"))).values(what=bindparam("what")), {"what": "x"}
    )
    stale = PostgresAttempt(job_id, "step", 0, False, worker_id=worker + 1, endings=[mark])
    with pytest.raises(TakenOver):
        await db.once(_end_with, stale)
    assert await rows(db, "SELECT what FROM ends") == []
    assert await rows(db, "SELECT status FROM procrastinate_jobs") == [("doing",)]

    mine = PostgresAttempt(job_id, "step", 0, False, worker_id=worker, endings=[mark])
    await db.once(_end_with, mine)
    assert await rows(db, "SELECT what FROM ends") == [("x",)]
    assert await rows(db, "SELECT status FROM procrastinate_jobs") == []


async def test_the_fetch_walks_the_priority_index_whatever_the_statistics(
    db: PostgresDatabase,
) -> None:
    # Planned on a quiet moment's statistics, procrastinate's fetch sorted every waiting job
    # to take one (m016): it must run without a sort.
    [(config,)] = await rows(
        db,
        "SELECT proconfig FROM pg_proc WHERE proname = 'procrastinate_fetch_job_v2'",
    )
    assert config == ["enable_sort=off"]
