"""The embedded job runner: a `jobs` table in the SQLite file, run by a dispatcher on the bot's
event loop (one process). It follows procrastinate's rules (see `storage.jobs`), so jobs run in
the same order on either runner.

Not procrastinate's InMemoryConnector: it persists nothing, lets later jobs of a lock overtake
one being retried, and keeps every job it saw in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Double,
    RowMapping,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.jobs import (
    JSON,
    Ending,
    GivenUp,
    Job,
    TakenOver,
    Task,
    gave_up_job,
    gave_up_task,
    run_endings,
    running,
)
from storage.sql.clock import db_now, now_in
from storage.sql.database import Database
from storage.sql.tables import job_turns, jobs

log = logging.getLogger(__name__)

POLL = 1.0  # the longest the dispatcher sleeps unwoken: a safety net, defers and ends wake it
IDLE_POLL = 0.02  # how often wait_idle looks
FAILED_KEPT = 24 * 3600.0  # a failed job's row is kept this long (seconds), for a look
PURGE_EVERY = 3600.0
RECORD_RETRY = 0.1  # seconds before a job's end is recorded again, doubled up to the next
RECORD_RETRY_MAX = 5.0

_other = jobs.alias("other")
_ahead = or_(_other.c.status == "doing", and_(_other.c.status == "todo", _other.c.id < jobs.c.id))
# procrastinate's fetch rule: due, and nothing of its lock running or waiting ahead of it (a
# job being retried waits as the oldest of its lock, so it keeps its place).
# `now` is read once per claim: SQLite's clock moves between two statements, and a job that
# came due between "is it due?" and "when is the next one due?" would wait for the next poll.
_NOW: BindParameter[float] = bindparam("now", type_=Double())
_RUNNABLE = and_(
    jobs.c.status == "todo",
    jobs.c.run_after <= _NOW,
    or_(jobs.c.lock.is_(None), ~exists().where(_other.c.lock == jobs.c.lock, _ahead)),
)


@dataclass
class LocalAttempt:
    """One run of a job in this process: nobody else can take it over, so fencing is a no-op."""

    job_id: int
    task: str
    number: int
    last: bool
    shared: bool = False
    endings: list[Ending] = field(default_factory=list)

    def fence(self, conn: Connection) -> None:
        """Nothing to check: one process runs every job."""

    def at_end(self, work: Ending) -> None:
        """Run `work` in the transaction that records the job done."""
        self.endings.append(work)


class LocalQueue:
    """The `JobQueue` of one process on SQLite (see the module's docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._tasks: dict[str, Task] = {}
        self._workers: dict[str, int] = {}
        self._given_up: GivenUp | None = None
        # What runs now, by job id: never more than the workers, whatever waits in the table.
        self._running: dict[int, asyncio.Task[None]] = {}
        self._busy: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dispatcher: asyncio.Task[None] | None = None

    def register(self, task: Task) -> None:
        """Make a task runnable (before `start`)."""
        self._tasks[task.name] = task

    def defer_in(self, conn: Connection, job: Job) -> bool:
        """Defer a job inside the caller's open transaction; False when its queueing_lock
        already has a job waiting to start."""
        key = jobs.c.queueing_lock == job.queueing_lock
        if job.queueing_lock is not None and _exists(conn, key, jobs.c.status == "todo"):
            return False
        conn.execute(
            insert(jobs).values(
                task=job.task,
                args=json.dumps(dict(job.args)),
                lock=job.lock,
                queueing_lock=job.queueing_lock,
                queue=job.queue,
                status="todo",
                attempts=0,
                run_after=db_now() + job.delay,
                created_at=db_now(),
                turn=_turn(conn, job.lock, job.keep_turn) if job.keep_turn > 0 else 0,
            )
        )
        self._poke()
        return True

    def defer_all_in(self, conn: Connection, jobs: Sequence[Job]) -> None:
        """Defer jobs without a queueing_lock inside the caller's open transaction."""
        for job in jobs:
            assert job.queueing_lock is None, "a queueing lock may refuse a job: defer_in"
            self.defer_in(conn, job)

    async def defer(self, job: Job) -> bool:
        """Defer a job in a transaction of its own; False as for `defer_in`."""
        return await self.db.write(self.defer_in, job)

    def sooner_in(self, conn: Connection, queueing_lock: str, delay: float = 0.0) -> bool:
        """Bring the waiting job of `queueing_lock` forward to run `delay` seconds from now at
        the latest; False when none waits."""
        at = db_now() + delay
        moved = conn.execute(
            update(jobs)
            .where(jobs.c.queueing_lock == queueing_lock, jobs.c.status == "todo")
            .values(run_after=case((jobs.c.run_after > at, at), else_=jobs.c.run_after))
        ).rowcount
        self._poke()
        return bool(moved)

    def schedule_in(
        self, conn: Connection, job: Job, behind: str | None = None, hold: float = 0.0
    ) -> None:
        """Bring the job waiting under `job`'s queueing lock forward, or defer `job`; while a
        job under `behind` waits to start, neither sooner than that (`JobQueue`)."""
        assert job.queueing_lock is not None, "schedule_in: a job with a queueing lock"
        key = jobs.c.queueing_lock == job.queueing_lock
        if behind is not None and _exists(conn, jobs.c.lock == behind, jobs.c.status == "todo"):
            if not _exists(conn, key, jobs.c.status == "todo"):
                self.defer_in(conn, replace(job, delay=max(job.delay, hold)))
        elif not self.sooner_in(conn, job.queueing_lock, job.delay):
            self.defer_in(conn, job)

    async def sooner(self, queueing_lock: str, delay: float = 0.0) -> bool:
        """`sooner_in`, in a transaction of its own."""
        return await self.db.write(self.sooner_in, queueing_lock, delay)

    async def waiting(self, lock: str, task: str, running: bool = False) -> bool:
        """Whether a job of `task` under `lock` waits to start; with `running`, or runs."""
        statuses = ("todo", "doing") if running else ("todo",)
        return await self.db.read(
            _exists, jobs.c.lock == lock, jobs.c.task == task, jobs.c.status.in_(statuses)
        )

    async def start(self, workers: Mapping[str, int], given_up: GivenUp | None = None) -> None:
        """Start running jobs, `workers` at a time per queue; jobs left running by an earlier
        run (its process died) run again, counting that attempt, or are given up."""
        self._workers = {queue: n for queue, n in workers.items() if n > 0}
        self._given_up = given_up
        if given_up is not None:
            self.register(gave_up_task(given_up))
        self._loop = asyncio.get_running_loop()
        limits = {name: task.attempts for name, task in self._tasks.items()}
        await self.db.write(self._recover_left, limits)
        self._dispatcher = asyncio.create_task(self._dispatch(), name="jobs-dispatcher")

    async def stop(self, timeout: float = 10.0) -> None:
        """Take no more jobs; let running ones finish for up to `timeout` seconds, then cancel
        them (they stay `doing`, so the next start runs them again)."""
        self._loop = None  # the dispatcher's loop ends, not cancelled: a job it claims starts
        self._wake.set()
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None and not (await asyncio.wait([dispatcher], timeout=timeout))[0]:
            dispatcher.cancel()
        left = list(self._running.values())
        if left:
            _, late = await asyncio.wait(left, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no job is waiting or running; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if not self._running and not await self.db.read(_pending):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(IDLE_POLL)

    def _poke(self) -> None:
        # Called inside the deferring transaction, which now holds SQLite's write lock: the
        # dispatcher's next claim (a write too) waits for it to end, so sees what it committed.
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def _dispatch(self) -> None:
        purged = time.monotonic()  # by start
        while self._loop is not None:  # until stop()
            self._wake.clear()
            wait = POLL
            try:
                wait = min(wait, await self._fill())
                if time.monotonic() - purged > PURGE_EVERY:
                    await self.db.write(_purge)
                    purged = time.monotonic()
            except Exception:
                log.exception("Could not fetch jobs; trying again")
            # asyncio.timeout, not wait_for: 3.11's wait_for can lose a cancel.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.0)):
                    await self._wake.wait()

    async def _fill(self) -> float:
        """Start what may start now; the seconds until a delayed job is due."""
        free = {q: n - self._busy[q] for q, n in self._workers.items() if n > self._busy[q]}
        if not free:
            return POLL  # a job's end wakes the dispatcher
        claimed, due_in = await self.db.write(_claim, free)
        for row in claimed:
            self._busy[row["queue"]] += 1
            task = asyncio.create_task(self._run(row), name=f"job-{row['id']}")
            self._running[row["id"]] = task
            task.add_done_callback(functools.partial(self._ended, row["id"], row["queue"]))
        return POLL if due_in is None else due_in

    def _ended(self, job_id: int, queue: str, _: asyncio.Task[None]) -> None:
        del self._running[job_id]
        self._busy[queue] -= 1
        self._wake.set()  # a slot is free, and the next job of its lock may start

    async def _run(self, row: RowMapping) -> None:
        try:
            await self._attempt(row)
        except Exception:  # its bookkeeping failed: still `doing`, so it runs at the next start
            log.exception("Job %s (%s): could not record how it went", row["id"], row["task"])

    async def _attempt(self, row: RowMapping) -> None:
        job_id, name, args = row["id"], row["task"], json.loads(row["args"])
        task = self._tasks.get(name)
        if task is None:
            log.error("Job %s: no task named %r; failed", job_id, name)
            await self._record(self._fail, job_id, name, args)
            return
        attempt = LocalAttempt(job_id, name, row["attempts"] - 1, row["attempts"] >= task.attempts)
        running(attempt)  # in this asyncio task's own context
        try:
            await task.function(attempt, args)
        except TakenOver:
            log.warning("Job %s (%s) was taken over; left alone", job_id, name)
            return
        except Exception:
            running(None)
            if attempt.last:
                log.exception("Job %s (%s) failed its last attempt", job_id, name)
                await self._record(self._fail, job_id, name, args)
            else:
                log.exception("Job %s (%s) failed; it will be retried", job_id, name)
                await self._record(_retry, job_id, task.retry_wait * 2**attempt.number)
            return
        running(None)
        await self._record(_finish, job_id, attempt.endings)

    async def _record(self, work: Callable[..., None], job_id: int, *args: Any) -> None:
        """Record how a job went, trying again until the database takes it (a moment's
        "database is locked"): nobody else would, and a job left `doing` would hold up every
        later job of its lock (a chat) until the next start."""
        wait = RECORD_RETRY
        while True:
            try:
                await self.db.write(work, job_id, *args)
                return
            except Exception:
                if self._loop is None:  # stopping: it runs again at the next start
                    raise
                log.exception("Job %s: could not record how it went; trying again", job_id)
            await asyncio.sleep(wait)
            wait = min(wait * 2, RECORD_RETRY_MAX)

    def _fail(self, conn: Connection, job_id: int, name: str, args: JSON) -> None:
        """Fail a job, and defer the job that tells about it in the same transaction."""
        _fail(conn, job_id)
        log.error("Job %s (%s) given up", job_id, name)
        self._tell_in(conn, name, args)

    def _recover_left(self, conn: Connection, limits: Mapping[str, int]) -> None:
        """`_recover`, with the jobs it gave up told about (deferred in its transaction)."""
        for row in _recover(conn, limits):
            log.error("Job %s (%s) given up: its process stopped each time", row["id"], row["task"])
            self._tell_in(conn, row["task"], json.loads(row["args"]))

    def _tell_in(self, conn: Connection, task: str, args: JSON) -> None:
        """Defer, in the caller's transaction, the job that tells about a job given up."""
        telling = gave_up_job(task, args)
        if self._given_up is not None and telling is not None:
            self.defer_in(conn, telling)


# Jobs without a turn (0) first, then earlier turns, then in the order deferred (as
# procrastinate's priority, then id). Only the first waiting job of a lock is runnable: a
# lock's order is ids'.
_ORDER = (jobs.c.turn, jobs.c.id)
_NEW_TURN = select(func.coalesce(func.max(job_turns.c.turn), 0) + 1).scalar_subquery()
_UPSERT_TURN = (
    sqlite_insert(job_turns)
    .values(lock=bindparam("lock"), turn=_NEW_TURN, until=db_now() + bindparam("keep"))
    .on_conflict_do_update(
        index_elements=[job_turns.c.lock],
        set_={
            "turn": case((job_turns.c.until >= db_now(), job_turns.c.turn), else_=_NEW_TURN),
            "until": db_now() + bindparam("keep"),
        },
    )
    .returning(job_turns.c.turn)
)


def _turn(conn: Connection, lock: str | None, keep: float) -> int:
    """The lock's turn for a job deferred now: its last one, if its last job was deferred less
    than that job's keep_turn ago; otherwise a new turn, after every other (one statement)."""
    if lock is None:
        return 0
    return int(conn.execute(_UPSERT_TURN, {"lock": lock, "keep": float(keep)}).scalar_one())


def _claim(conn: Connection, free: Mapping[str, int]) -> tuple[list[RowMapping], float | None]:
    """Mark up to `free[queue]` runnable jobs of each queue doing, one more attempt each."""
    claimed: list[RowMapping] = []
    now = now_in(conn)
    for queue, n in free.items():
        query = select(jobs.c.id, jobs.c.task, jobs.c.args, jobs.c.queue, jobs.c.attempts)
        rows = conn.execute(
            query.where(jobs.c.queue == queue, _RUNNABLE).order_by(*_ORDER).limit(n),
            {"now": now},
        ).mappings()
        batch = [{**row, "attempts": row["attempts"] + 1} for row in rows]
        if batch:
            conn.execute(
                update(jobs)
                .where(jobs.c.id.in_([row["id"] for row in batch]))
                .values(status="doing", attempts=jobs.c.attempts + 1)
            )
        claimed += batch  # type: ignore[arg-type]
    due_in = conn.execute(
        select(func.min(jobs.c.run_after) - _NOW).where(
            jobs.c.status == "todo", jobs.c.run_after > _NOW
        ),
        {"now": now},
    ).scalar()
    return claimed, due_in


def _recover(conn: Connection, limits: Mapping[str, int]) -> Sequence[RowMapping]:
    """Jobs a dead process left doing wait again, or fail if out of attempts (returned); old
    failed jobs go."""
    _purge(conn)
    left = conn.execute(
        select(jobs.c.id, jobs.c.task, jobs.c.args, jobs.c.attempts).where(jobs.c.status == "doing")
    ).mappings()
    spent = [row for row in left if row["attempts"] >= limits.get(row["task"], 0)]
    conn.execute(update(jobs).where(jobs.c.status == "doing").values(status="todo"))
    for row in spent:
        _fail(conn, row["id"])
    return spent


def _retry(conn: Connection, job_id: int, wait: float) -> None:
    """The job waits again, `wait` seconds. When a job waits under its queueing lock already
    (deferred while it ran; one waits per key), it takes that one's place: that one's arguments
    and time, its own id, so what it sent before is known to its next try (the outbox)."""
    mine = jobs.c.id == job_id
    todo: dict[str, Any] = {"status": "todo", "run_after": db_now() + wait}
    lock = conn.execute(select(jobs.c.queueing_lock).where(mine)).scalar()
    if lock is not None:
        waiting = conn.execute(
            select(jobs.c.id, jobs.c.args, jobs.c.run_after, jobs.c.turn).where(
                jobs.c.queueing_lock == lock, jobs.c.status == "todo"
            )
        ).first()
        if waiting is not None:
            conn.execute(delete(jobs).where(jobs.c.id == waiting.id))
            later = func.max(todo["run_after"], waiting.run_after)  # SQLite's max of two
            todo |= {"args": waiting.args, "run_after": later, "turn": waiting.turn}
            log.info(
                "Job %s is retried in place of job %s, which waited beside it", job_id, waiting.id
            )
    conn.execute(update(jobs).where(mine).values(**todo))


def _fail(conn: Connection, job_id: int) -> None:
    failed = {"status": "failed", "failed_at": db_now()}
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(**failed))


def _finish(conn: Connection, job_id: int, endings: Sequence[Ending] = ()) -> None:
    run_endings(conn, endings)
    conn.execute(delete(jobs).where(jobs.c.id == job_id))


def _purge(conn: Connection) -> None:
    old = jobs.c.failed_at < db_now() - FAILED_KEPT
    conn.execute(delete(jobs).where(jobs.c.status == "failed", old))
    # Turns no job can keep any more; the last one stays, for the next to come after it.
    last = select(func.max(job_turns.c.turn)).scalar_subquery()
    conn.execute(delete(job_turns).where(job_turns.c.until < db_now(), job_turns.c.turn < last))


def _pending(conn: Connection) -> bool:
    return _exists(conn, jobs.c.status.in_(("todo", "doing")))


def _exists(conn: Connection, *where: ColumnElement[bool]) -> bool:
    return conn.execute(select(jobs.c.id).where(*where).limit(1)).first() is not None


__all__ = ["LocalAttempt", "LocalQueue"]
