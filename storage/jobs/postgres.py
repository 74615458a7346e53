"""The PostgreSQL runner: jobs on procrastinate's tables, run by every replica's workers.

procrastinate gives the rules of `storage.jobs` (per-lock order, queueing locks, retries),
LISTEN/NOTIFY and heartbeats on the database's clock. What it leaves to us, here:

- Deferring in the caller's transaction, on our SQLAlchemy connection (`defer_in`): its SQL
  function, called in a savepoint so a refused queueing lock spoils nothing; delays on the
  database's clock.
- Fencing: an attempt owns its job while the row says ('doing', its attempt, its worker).
  `Attempt.fence` checks that and locks the row until the caller's commit; `_FencedJobManager`
  finishes or retries a job only if the row is still the attempt's (procrastinate's own finish
  would mark a successor's attempt done, and let the lock's next job start beside it).
- Stalled jobs: procrastinate notices stale heartbeats but leaves their jobs 'doing'. Every
  replica retries them (or gives them up) every second, judged on the database's clock;
  racing replicas skip each other's rows.
- Lock hand-over: migration m012's trigger wakes the workers when a locked job ends.
- Supervision: a worker whose row another replica pruned (it looked dead) fails on its next
  fetch; it is started again, under a new worker id.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import procrastinate
from procrastinate import job_context, jobs, retry, utils, worker
from procrastinate import manager as procrastinate_manager
from sqlalchemy import (
    CTE,
    Connection,
    Select,
    bindparam,
    case,
    column,
    exc,
    exists,
    func,
    literal_column,
    null,
    select,
    table,
    text,
)
from sqlalchemy.sql.dml import UpdateBase

from storage.jobs import (
    JSON,
    Ending,
    GivenUp,
    Job,
    TakenOver,
    Task,
    gave_up_job,
    gave_up_task,
    reset,
    running,
)
from storage.sql.database import PostgresDatabase, Rollback

log = logging.getLogger(__name__)

QUEUEING_LOCK_INDEX = "procrastinate_jobs_queueing_lock_idx_v1"
_RESTART_PAUSE = 1.0  # seconds before a failed worker is started again
# A wake-up for a delayed job comes this much after it is due (the replica's clock and the
# database's run at the same rate, but the deferring transaction commits a moment later).
_WAKE_MARGIN = 0.01

# procrastinate's own function; scheduled_at on the database's clock.
_DEFER = text(
    "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW("
    " CAST(:queue AS varchar), CAST(:task AS varchar), 0, CAST(:lock AS text),"
    " CAST(:queueing_lock AS text), CAST(:args AS jsonb),"
    " CASE WHEN CAST(:delay AS float8) > 0"
    "  THEN clock_timestamp() + make_interval(secs => CAST(:delay AS float8)) END"
    ")::procrastinate_job_to_defer_v1])"
)
_DEFER_ALL = text(
    "SELECT procrastinate_defer_jobs_v1(ARRAY("
    " SELECT ROW(u.queue, u.task, 0, u.lock, NULL, CAST(u.args AS jsonb),"
    "  CASE WHEN u.delay > 0"
    "   THEN clock_timestamp() + make_interval(secs => u.delay) END"
    " )::procrastinate_job_to_defer_v1"
    " FROM unnest(CAST(:queues AS varchar[]), CAST(:tasks AS varchar[]),"
    "  CAST(:locks AS text[]), CAST(:args AS text[]), CAST(:delays AS float8[]))"
    "  WITH ORDINALITY AS u(queue, task, lock, args, delay, n)"
    " ORDER BY u.n))"
)
# `_DEFER_ALL` for jobs that keep their lock's turn (`Job.keep_turn`): a lock's turn is kept
# while its jobs come less than keep_turn seconds apart (m018's job_turns), and a later turn is
# a lower priority (procrastinate's fetch: priority first, then id). A lock's jobs keep their
# order: within a turn by id, and a later turn never outranks an earlier one (the sequence
# would wrap after 2^31 turns). New turns are numbered in the jobs' order; the rows are locked
# in the locks' order (batches committing side by side never deadlock).
_DEFER_TURNS = text(
    "WITH u AS MATERIALIZED ("
    " SELECT * FROM unnest(CAST(:queues AS varchar[]), CAST(:tasks AS varchar[]),"
    "  CAST(:locks AS text[]), CAST(:args AS text[]), CAST(:delays AS float8[]),"
    "  CAST(:keeps AS float8[]))"
    "  WITH ORDINALITY AS u(queue, task, lock, args, delay, keep, n)),"
    " clock AS (SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS float8) AS now),"
    " turns AS ("
    "  INSERT INTO job_turns AS t (lock, turn, until)"
    "  SELECT f.lock, f.turn, (SELECT now FROM clock) + f.keep FROM ("
    "   SELECT lock, keep, nextval('job_turn_seq') AS turn FROM ("
    "    SELECT lock, max(keep) AS keep FROM u WHERE lock IS NOT NULL AND keep > 0"
    "    GROUP BY lock ORDER BY min(n)) l) f"
    "  ORDER BY f.lock"
    "  ON CONFLICT (lock) DO UPDATE SET"
    "   turn = CASE WHEN t.until >= (SELECT now FROM clock) THEN t.turn ELSE EXCLUDED.turn END,"
    "   until = EXCLUDED.until"
    "  RETURNING t.lock, t.turn)"
    " SELECT procrastinate_defer_jobs_v1(ARRAY("
    " SELECT ROW(u.queue, u.task,"
    "  COALESCE(-CAST(turns.turn % 2147483647 AS integer), 0), u.lock, NULL,"
    "  CAST(u.args AS jsonb),"
    "  CASE WHEN u.delay > 0 THEN clock_timestamp() + make_interval(secs => u.delay) END"
    " )::procrastinate_job_to_defer_v1"
    " FROM u LEFT JOIN turns ON turns.lock = u.lock AND u.keep > 0"
    " ORDER BY u.n))"
)
# The waiting job of a queueing lock brought forward, unless a job under the lock `behind`
# waits to start (none when `behind` is NULL); whether one waits, whether it moved, and
# whether one waits under `behind`.
_SOONER = text(
    "WITH waiting AS MATERIALIZED ("
    " SELECT id FROM procrastinate_jobs"
    " WHERE queueing_lock = :queueing_lock AND status = 'todo' FOR UPDATE),"
    " behind AS MATERIALIZED (SELECT EXISTS ("
    "  SELECT 1 FROM procrastinate_jobs b WHERE b.lock = :behind AND b.status = 'todo') AS b),"
    " moved AS (UPDATE procrastinate_jobs j SET scheduled_at = LEAST(j.scheduled_at,"
    "  clock_timestamp() + make_interval(secs => CAST(:delay AS float8)))"
    "  FROM waiting WHERE j.id = waiting.id AND NOT (SELECT b FROM behind)"
    "  RETURNING j.id)"
    " SELECT (SELECT count(*) FROM waiting) AS waiting, (SELECT count(*) FROM moved) AS moved,"
    " (SELECT b FROM behind) AS behind"
)
_WAITING = text(
    "SELECT 1 FROM procrastinate_jobs WHERE queueing_lock = :queueing_lock AND status = 'todo'"
)
_UNDER = text(
    "SELECT 1 FROM procrastinate_jobs WHERE lock = :lock AND task_name = :task"
    " AND status = ANY(CAST(:statuses AS procrastinate_job_status[])) LIMIT 1"
)
_FENCE = text(
    "SELECT status, attempts, worker_id FROM procrastinate_jobs WHERE id = :id FOR UPDATE"
)
# The attempt's row, locked (waiting for a fence holder's commit, then checked again).
_MINE = (
    "WITH mine AS MATERIALIZED ("
    " SELECT id FROM procrastinate_jobs"
    " WHERE id = %(job_id)s AND status = 'doing' AND attempts = %(attempts)s"
    " AND worker_id = %(worker_id)s FOR UPDATE)"
)
_FINISH_MINE = _MINE + (
    " SELECT procrastinate_finish_job_v1(id, %(status)s, %(delete_job)s) FROM mine"
)
# Running jobs whose worker missed its heartbeats (or was pruned), on the database's clock.
_STALLED = text(
    "SELECT j.id, j.task_name, j.args, j.attempts,"
    " EXISTS (SELECT 1 FROM procrastinate_jobs n WHERE n.queueing_lock = j.queueing_lock"
    "  AND n.status = 'todo') AS superseded"
    " FROM procrastinate_jobs j LEFT JOIN procrastinate_workers w ON w.id = j.worker_id"
    " WHERE j.status = 'doing'"
    " AND (w.id IS NULL OR w.last_heartbeat < now() - make_interval(secs => :stalled_after))"
    " FOR UPDATE OF j SKIP LOCKED"
)
# procrastinate's table, as far as a job's end reads it (`_end_with`).
_JOBS = table(
    "procrastinate_jobs", column("id"), column("status"), column("attempts"), column("worker_id")
)
# What m017's photostory_taken_over raises with: the job's row is another attempt's now.
TAKEN_OVER_STATE = "PH001"
_RETRY_IN = text(
    "SELECT procrastinate_retry_job_v2(:id,"
    " clock_timestamp() + make_interval(secs => CAST(:wait AS float8)), NULL, NULL, NULL)"
)
_GIVE_UP = text("SELECT procrastinate_finish_job_v1(:id, 'failed', false)")
# A stalled job out of attempts whose queueing lock has a job waiting: that one does its work.
_SUPERSEDED = text("SELECT procrastinate_finish_job_v1(:id, 'succeeded', true)")
_STALE_TURNS = text(
    "DELETE FROM job_turns WHERE until < CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS float8)"
)
_PENDING = text("SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')")


@dataclass
class PostgresAttempt:
    """One run of a job by one worker: it owns the job while the row says so."""

    job_id: int
    task: str
    number: int
    last: bool
    worker_id: int | None
    shared: bool = True
    endings: list[Ending] = field(default_factory=list)

    def at_end(self, work: Ending) -> None:
        """Run `work` once the task function returned, in the transaction that ends the job
        (`_end_with`)."""
        self.endings.append(work)

    def fence(self, conn: Connection) -> None:
        """Raise TakenOver unless the job's row is still this attempt's; lock it till commit."""
        row = conn.execute(_FENCE, {"id": self.job_id}).one_or_none()
        if row is None or tuple(row) != ("doing", self.number, self.worker_id):
            raise TakenOver(f"job {self.job_id} attempt {self.number} was taken over")


class _Backoff(retry.BaseRetryStrategy):
    """Task.attempts tries in all, retry_wait before the second, doubled each time after."""

    def __init__(self, task: Task) -> None:
        self.task = task

    def get_retry_decision(
        self, *, exception: BaseException, job: jobs.Job
    ) -> retry.RetryDecision | None:
        if isinstance(exception, TakenOver) or job.attempts + 1 >= self.task.attempts:
            return None
        return retry.RetryDecision(retry_in={"seconds": self.task.retry_wait * 2**job.attempts})


def _end_with(conn: Connection, attempt: PostgresAttempt) -> None:
    """A succeeded job's end and the writes its attempt asked for with it, as one statement
    (no BEGIN and COMMIT: it is atomic on its own, and three trips to the database fewer than
    a transaction of two); TakenOver, and nothing written, when the job's row is no longer
    the attempt's."""
    params: dict[str, Any] = {
        "end_job": attempt.job_id,
        "end_attempts": attempt.number,
        "end_worker": attempt.worker_id,
    }
    for ending in attempt.endings:
        for name, value in ending.params.items():
            assert params.setdefault(name, value) == value, f"two endings bind {name}"
    statement = _end_statement(tuple(ending.statement for ending in attempt.endings))
    try:
        conn.execute(statement, params)
    except exc.DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) == TAKEN_OVER_STATE:
            taken = f"job {attempt.job_id} attempt {attempt.number} was taken over"
            raise TakenOver(taken) from None
        raise


def _mine() -> CTE:
    """The job's row, locked, while it is still the attempt's (bound: end_job, end_attempts,
    end_worker); empty once another worker has it."""
    job = _JOBS.c
    return (
        select(job.id)
        .where(
            job.id == bindparam("end_job"),
            job.status == literal_column("'doing'"),
            job.attempts == bindparam("end_attempts"),
            job.worker_id == bindparam("end_worker"),
        )
        .with_for_update()
        .cte("mine")
        .prefix_with("MATERIALIZED")
    )


def _fail_statement() -> Select[Any]:
    """Fail the job from `_mine` (bound too: delete_job); a row back if it was the attempt's."""
    mine = _mine()
    return select(
        func.procrastinate_finish_job_v1(
            mine.c.id, literal_column("'failed'"), bindparam("delete_job")
        )
    ).select_from(mine)


@functools.lru_cache(maxsize=64)
def _end_statement(endings: tuple[UpdateBase, ...]) -> Select[Any]:
    """The statement that ends a job with these endings (built once per kind of job: SQLAlchemy
    compiles a statement once, but building one is a third of a millisecond).

    The row is locked first (`mine`, materialized), the job ended from it, and each ending
    runs as a data-modifying CTE. A statement's parts commit together or not at all, so when
    `mine` is empty m017's `photostory_taken_over` raises and undoes the endings."""
    mine = _mine()
    ended = (
        select(
            func.procrastinate_finish_job_v1(
                mine.c.id, literal_column("'succeeded'"), literal_column("true")
            ).label("ended")
        )
        .cte("ended")
        .prefix_with("MATERIALIZED")
    )
    statement = select(
        case(
            (exists(select(ended.c.ended)), literal_column("true")),
            else_=func.photostory_taken_over(bindparam("end_job")),
        )
    )
    for n, ending in enumerate(endings):
        statement = statement.add_cte(ending.cte(f"ending_{n}"))
    return statement


# A job failed by its attempt while still the attempt's, in the transaction that also defers
# its telling.
_FAIL_MINE = _fail_statement()


def _retry_statement() -> Select[Any]:
    """Retry the job from `_mine` in `wait` seconds (the database's clock); a row back if it
    was the attempt's."""
    mine = _mine()
    at = func.clock_timestamp() + func.make_interval(0, 0, 0, 0, 0, 0, bindparam("wait"))
    return select(
        func.procrastinate_retry_job_v2(mine.c.id, at, null(), null(), null())
    ).select_from(mine)


_RETRY_STATEMENT = _retry_statement()
# The job waiting under the queueing lock of a job (:id) about to wait again, and in how many
# seconds it is due.
_WAITING_BESIDE = text(
    "SELECT w.id,"
    " GREATEST(EXTRACT(EPOCH FROM w.scheduled_at - clock_timestamp()), 0) AS due_in"
    " FROM procrastinate_jobs j JOIN procrastinate_jobs w ON w.queueing_lock = j.queueing_lock"
    " WHERE j.id = :id AND w.status = 'todo' FOR UPDATE OF w"
)
_DROP_WAITING = text("SELECT procrastinate_cancel_job_v1(:id, false, true)")
_TAKE_ARGS = text(
    "UPDATE procrastinate_jobs SET args = (SELECT args FROM procrastinate_jobs WHERE id = :waiting)"
    " WHERE id = :id"
)


def _take_place(conn: Connection, job_id: int) -> float:
    """Before a job waits again: a job waiting under its queueing lock (deferred while it ran;
    one may wait per key) goes, and the job takes its arguments. It is due when that one was
    (the seconds to wait at least, returned). Its own id stays, so what it sent before is
    known to its next try (the outbox)."""
    waiting = conn.execute(_WAITING_BESIDE, {"id": job_id}).first()
    if waiting is None:
        return 0.0
    conn.execute(_TAKE_ARGS, {"id": job_id, "waiting": waiting.id})
    conn.execute(_DROP_WAITING, {"id": waiting.id})
    log.info("Job %s waits again in place of job %s, which waited beside it", job_id, waiting.id)
    return float(waiting.due_in or 0.0)


def _first(conn: Connection, statement: Any, params: dict[str, Any]) -> bool:
    return conn.execute(statement, params).first() is not None


class _Wake(asyncio.Event):
    """A worker's "look for a job" event that counts its wake-ups (`_FencedJobManager`)."""

    def __init__(self) -> None:
        super().__init__()
        self.wakes = 0

    def set(self) -> None:
        self.wakes += 1
        super().set()


class _FencedJobManager(procrastinate_manager.JobManager):
    """Finishes or retries a job only while its row is still the attempt's (a retry in the
    place of the job waiting under its queueing lock, `retried`); fails a job that failed its
    last attempt with the job that tells about it (`failed`, one transaction); keeps the
    wake-ups that came during a fetch."""

    def __init__(self, connector: Any) -> None:
        super().__init__(connector)
        self.ended: set[int] = set()  # jobs whose attempt ended them with its endings
        self.workers: list[worker.Worker] = []  # this process's running workers
        # Fails a job still the attempt's (and defers its telling): whether it was (the queue's).
        self.failed: Callable[[jobs.Job, bool], Awaitable[bool]] | None = None
        # Retries a job still the attempt's, in the place of one waiting beside it: whether
        # it was (the queue's; procrastinate's retry would break the queueing lock's index).
        self.retried: Callable[[jobs.Job, float], Awaitable[bool]] | None = None

    async def fetch_job(self, queues: Any, worker_id: int) -> jobs.Job | None:
        # procrastinate's worker clears its event after each fetch. A job that became runnable
        # while the fetch ran (its notification came during it, too late for its query) would
        # then wait for the next poll: such a wake-up is given again, after that clear.
        wake = next((w._new_job_event for w in self.workers if w.worker_id == worker_id), None)
        if not isinstance(wake, _Wake):
            return await super().fetch_job(queues, worker_id)
        before = wake.wakes
        job = await super().fetch_job(queues, worker_id)
        if wake.wakes != before:
            asyncio.get_running_loop().call_soon(wake.set)
        return job

    async def finish_job(self, job: jobs.Job, status: jobs.Status, delete_job: bool) -> None:
        if job.id in self.ended:
            self.ended.discard(job.id)
            return
        if status == jobs.Status.FAILED and self.failed is not None:
            if not await self.failed(job, delete_job):
                log.info("Job %s attempt %s was taken over: not failed", job.id, job.attempts)
            return
        done = await self.connector.execute_query_all_async(
            _FINISH_MINE,
            job_id=job.id,
            attempts=job.attempts,
            worker_id=job.worker_id,
            status=status.value,
            delete_job=delete_job,
        )
        if not done:
            log.info(
                "Job %s attempt %s was taken over: left to its new worker", job.id, job.attempts
            )

    async def retry_job(
        self,
        job: jobs.Job,
        retry_at: datetime.datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        lock: str | None = None,
    ) -> None:
        self.ended.discard(job.id or 0)  # (not ended: the task raised after all)
        # The strategy said when on this process's clock; the wait goes to the database's.
        wait = 0.0 if retry_at is None else (retry_at - utils.utcnow()).total_seconds()
        assert self.retried is not None, "set by PostgresQueue"
        done = await self.retried(job, max(wait, 0.0))
        if not done:
            log.info("Job %s attempt %s was taken over: not retried", job.id, job.attempts)


class PostgresQueue:
    """`storage.jobs.JobQueue` on procrastinate: any replica defers, any replica runs."""

    def __init__(
        self,
        db: PostgresDatabase,
        url: str,
        *,
        name: str = "replica",
        heartbeat: float = 2.0,
        stalled_after: float = 10.0,
        polling: float = 0.5,
        recover_every: float = 1.0,
        keep_failed_hours: int = 7 * 24,
    ) -> None:
        self.db = db
        self.name = name
        self.heartbeat = heartbeat
        self.stalled_after = stalled_after
        self.polling = polling  # also how late a delayed job may start
        self.recover_every = recover_every
        self.keep_failed_hours = keep_failed_hours
        conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(conninfo=conninfo, min_size=1, max_size=4)
        )
        self._manager = _FencedJobManager(self.app.connector)
        self.app.job_manager = self._manager
        self._tasks: dict[str, Task] = {}
        self._workers: list[worker.Worker] = []
        self._manager.workers = self._workers
        self._running: list[asyncio.Task[None]] = []
        self._stopping = False
        self._given_up: GivenUp | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def register(self, task: Task) -> None:
        """Make a task runnable (before `start`)."""
        self._tasks[task.name] = task

        async def run(context: job_context.JobContext, /, **args: Any) -> None:
            job = context.job
            assert job.id is not None
            attempt = PostgresAttempt(
                job_id=job.id,
                task=task.name,
                number=job.attempts,
                last=job.attempts + 1 >= task.attempts,
                worker_id=job.worker_id,
            )
            # One short line per start (procrastinate's own, at INFO, carries the arguments:
            # a whole update, the user's words; its worker logs warnings and errors only).
            log.info("Job %s (%s) started, attempt %s", job.id, task.name, job.attempts + 1)
            running(attempt)  # this job's own asyncio task: the context ends with it
            try:
                await task.function(attempt, args)
                if attempt.endings:
                    # The job's end and its endings in one transaction; procrastinate's own
                    # finish, just after, finds the job ended and leaves it. (Fenced by the
                    # end itself, not by `Database.write`: one statement fewer.)
                    token = running(None)
                    try:
                        await self.db.once(_end_with, attempt)
                    finally:
                        reset(token)
                    self._manager.ended.add(job.id)
            except TakenOver:
                log.info(
                    "Job %s (%s) attempt %s stopped: taken over", job.id, task.name, job.attempts
                )

        self.app.task(name=task.name, pass_context=True, retry=_Backoff(task))(run)

    def defer_in(self, conn: Connection, job: Job) -> bool:
        """Defer a job inside the caller's open transaction (it exists if that commits);
        False when its queueing_lock already has a job waiting to start."""
        params = {
            "queue": job.queue,
            "task": job.task,
            "lock": job.lock,
            "queueing_lock": job.queueing_lock,
            "args": json.dumps(dict(job.args)),
            "delay": float(job.delay),
        }
        if job.queueing_lock is None:
            if job.keep_turn > 0:
                self.defer_all_in(conn, [job])
                return True
            conn.execute(_DEFER, params)
            if job.delay > 0:  # one due now: procrastinate's trigger notifies the workers
                self._wake_at(job.delay)
            return True
        if conn.execute(_WAITING, {"queueing_lock": job.queueing_lock}).first() is not None:
            return False  # the usual refusal, without a savepoint and an error
        try:
            with conn.begin_nested():  # one deferred meanwhile: its refusal undoes only this
                conn.execute(_DEFER, params)
        except exc.IntegrityError as error:
            if getattr(getattr(error.orig, "diag", None), "constraint_name", None) == (
                QUEUEING_LOCK_INDEX
            ):
                return False
            raise
        if job.delay > 0:
            self._wake_at(job.delay)
        return True

    def defer_all_in(self, conn: Connection, jobs: Sequence[Job]) -> None:
        """Defer jobs without a queueing_lock inside the caller's open transaction: one call
        of procrastinate's function for all (its ids follow their order)."""
        if not jobs:
            return
        assert all(job.queueing_lock is None for job in jobs), "a queueing lock: defer_in"
        params = {
            "queues": [job.queue for job in jobs],
            "tasks": [job.task for job in jobs],
            "locks": [job.lock for job in jobs],
            "args": [json.dumps(dict(job.args)) for job in jobs],
            "delays": [float(job.delay) for job in jobs],
        }
        if any(job.keep_turn > 0 and job.lock is not None for job in jobs):
            params["keeps"] = [float(job.keep_turn) for job in jobs]
            conn.execute(_DEFER_TURNS, params)
        else:
            conn.execute(_DEFER_ALL, params)
        if any(job.delay > 0 for job in jobs):
            self._wake_at(min(job.delay for job in jobs if job.delay > 0))

    async def defer(self, job: Job) -> bool:
        """Defer a job in a transaction of its own; False as for `defer_in`."""
        return await self.db.write(self.defer_in, job)

    def sooner_in(self, conn: Connection, queueing_lock: str, delay: float = 0.0) -> bool:
        """Bring the waiting job of `queueing_lock` forward to run `delay` seconds from now at
        the latest; False when none waits. One statement."""
        return bool(self._sooner(conn, queueing_lock, delay, None).waiting)

    def schedule_in(
        self, conn: Connection, job: Job, behind: str | None = None, hold: float = 0.0
    ) -> None:
        """Bring the job waiting under `job`'s queueing lock forward, or defer `job`; while a
        job under `behind` waits to start, neither sooner than that (`JobQueue`)."""
        assert job.queueing_lock is not None, "schedule_in: a job with a queueing lock"
        row = self._sooner(conn, job.queueing_lock, job.delay, behind)
        if not row.waiting:
            self.defer_in(conn, replace(job, delay=max(job.delay, hold)) if row.behind else job)

    def _sooner(
        self, conn: Connection, queueing_lock: str, delay: float, behind: str | None
    ) -> Any:
        params = {"queueing_lock": queueing_lock, "delay": float(delay), "behind": behind}
        row = conn.execute(_SOONER, params).one()
        if row.moved:
            self._wake_at(delay)  # an UPDATE: procrastinate's trigger says nothing of it
        return row

    async def waiting(self, lock: str, task: str, running: bool = False) -> bool:
        """Whether a job of `task` under `lock` waits to start; with `running`, or runs."""
        statuses = ["todo", "doing"] if running else ["todo"]
        params = {"lock": lock, "task": task, "statuses": statuses}
        return await self.db.read(_first, _UNDER, params)

    def _wake_at(self, delay: float) -> None:
        """Have this replica's workers look for jobs again `delay` seconds from now, when a
        job deferred for then comes due (procrastinate notifies a new job at once, and
        otherwise only polls: a delayed acknowledgement would be up to a polling interval
        late). A job another replica deferred is found by its own wake-up or by a poll."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.call_later, max(delay, 0.0) + _WAKE_MARGIN, self._wake)

    def _wake(self) -> None:
        for running_worker in self._workers:
            running_worker._new_job_event.set()  # what its LISTEN handler does on a new job

    async def sooner(self, queueing_lock: str, delay: float = 0.0) -> bool:
        """`sooner_in`, in a transaction of its own."""
        return await self.db.write(self.sooner_in, queueing_lock, delay)

    async def start(self, workers: Mapping[str, int], given_up: GivenUp | None = None) -> None:
        """Start one worker per queue and the stalled-job recoverer; a job an earlier run left
        running is retried (or given up) once its worker's heartbeat is stale."""
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self._given_up = given_up
        if given_up is not None:
            self.register(gave_up_task(given_up))
        self._manager.failed = self._failed
        self._manager.retried = self._retried
        await self.app.open_async()
        for queue, concurrency in workers.items():
            if concurrency > 0:
                self._running.append(asyncio.create_task(self._supervise(queue, concurrency)))
        self._running.append(asyncio.create_task(self._recover_forever()))

    async def _supervise(self, queue: str, concurrency: int) -> None:
        """Run a worker for `queue`; start it again whenever it stops on its own."""
        while not self._stopping:
            running_worker = worker.Worker(
                self.app,
                queues=[queue],
                name=f"{self.name}-{queue}",
                concurrency=concurrency,
                fetch_job_polling_interval=self.polling,
                update_heartbeat_interval=self.heartbeat,
                stalled_worker_timeout=self.stalled_after,
                install_signal_handlers=False,
                delete_jobs="successful",
            )
            running_worker._new_job_event = _Wake()
            self._workers.append(running_worker)
            try:
                await running_worker.run()  # type: ignore[no-untyped-call]
            except asyncio.CancelledError:
                raise
            except Exception:
                # e.g. its row was pruned while this process was frozen: it looked dead.
                log.exception("The %s worker failed; starting it again", queue)
            finally:
                self._workers.remove(running_worker)
            if not self._stopping:
                await asyncio.sleep(_RESTART_PAUSE)

    async def _recover_forever(self) -> None:
        """Every `recover_every` seconds, retry or give up the jobs of stalled workers; now and
        then purge failed jobs kept `keep_failed_hours`, and turns no job can keep any more."""
        rounds = 0
        while not self._stopping:
            try:
                await self.db.write(self._recover)
                if rounds % 3600 == 0:
                    await self.db.write(lambda conn: conn.execute(_STALE_TURNS))
                    await self.app.job_manager.delete_old_jobs(
                        self.keep_failed_hours,
                        include_failed=True,
                        include_cancelled=True,
                        include_aborted=True,
                    )
            except Exception:
                log.exception("Recovering stalled jobs failed; trying again")
            rounds += 1
            await asyncio.sleep(self.recover_every)

    async def _failed(self, job: jobs.Job, delete_job: bool) -> bool:
        """Fail a job that failed its last attempt, while its row is still the attempt's, and
        defer the job that tells about it in the same transaction; False if taken over."""
        assert job.id is not None
        token = running(None)  # fenced by the statement itself
        try:
            return await self.db.write(
                self._fail_mine, job.id, job.attempts, job.worker_id, delete_job,
                job.task_name, job.task_kwargs,
            )  # fmt: skip
        finally:
            reset(token)

    def _fail_mine(
        self,
        conn: Connection,
        job_id: int,
        attempts: int,
        worker_id: int | None,
        delete_job: bool,
        task: str,
        args: JSON,
    ) -> bool:
        params = {
            "end_job": job_id,
            "end_attempts": attempts,
            "end_worker": worker_id,
            "delete_job": delete_job,
        }
        if conn.execute(_FAIL_MINE, params).first() is None:
            return False
        log.error("Job %s (%s) given up after its last attempt", job_id, task)
        self._tell_in(conn, task, args)
        return True

    async def _retried(self, job: jobs.Job, wait: float) -> bool:
        """Retry a job in `wait` seconds while its row is still the attempt's (False if taken
        over), in the place of a job waiting under its queueing lock (`_take_place`)."""
        assert job.id is not None
        token = running(None)  # fenced by the statement itself
        try:
            return await self.db.write(self._retry_mine, job.id, job.attempts, job.worker_id, wait)
        finally:
            reset(token)

    def _retry_mine(
        self, conn: Connection, job_id: int, attempts: int, worker_id: int | None, wait: float
    ) -> bool:
        wait = max(wait, _take_place(conn, job_id))
        params = {"end_job": job_id, "end_attempts": attempts, "end_worker": worker_id}
        if conn.execute(_RETRY_STATEMENT, {**params, "wait": wait}).first() is None:
            raise Rollback(False)  # taken over: the job that waited stays
        return True

    def _tell_in(self, conn: Connection, task: str, args: JSON) -> None:
        """Defer, in the caller's transaction, the job that tells about a job given up."""
        telling = gave_up_job(task, args)
        if self._given_up is not None and telling is not None:
            self.defer_in(conn, telling)

    def _recover(self, conn: Connection) -> None:
        """Retry the stalled jobs, or fail those out of attempts (and defer their telling)."""
        for row in conn.execute(_STALLED, {"stalled_after": self.stalled_after}).mappings():
            job_id, task_name, attempts = row["id"], row["task_name"], row["attempts"]
            task = self._tasks.get(task_name)
            if attempts + 1 < (task.attempts if task else Task.attempts):
                # In the place of a job waiting beside it, if one does: what it sent before
                # stays known to its next try.
                conn.execute(_RETRY_IN, {"id": job_id, "wait": _take_place(conn, job_id)})
                log.warning("Stalled job %s (%s) retried", job_id, task_name)
            elif row["superseded"]:
                conn.execute(_SUPERSEDED, {"id": job_id})
                log.warning("Stalled job %s (%s) left to the one waiting", job_id, task_name)
            else:
                conn.execute(_GIVE_UP, {"id": job_id})
                log.warning("Stalled job %s (%s) was out of attempts", job_id, task_name)
                self._tell_in(conn, task_name, row["args"])

    async def stop(self, timeout: float = 10.0) -> None:
        """Take no more jobs; let running ones finish for up to `timeout` seconds (then they
        are cancelled and retried later)."""
        self._stopping = True
        for running_worker in self._workers:
            running_worker.shutdown_graceful_timeout = timeout
        # Cancelling a worker's run is procrastinate's graceful stop: it fetches no more and
        # waits for its running jobs (up to the timeout above).
        tasks, self._running = self._running, []
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("A job worker ended with an error: %r", result)
        with contextlib.suppress(Exception):
            await self.app.close_async()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no job is waiting or running (tests, shutdown); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            pending = await self.db.read(lambda conn: conn.execute(_PENDING).scalar_one())
            if pending == 0:
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
