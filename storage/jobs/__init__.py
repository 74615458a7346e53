"""Work that outlives a request: jobs, deferred in the transaction that records why, run by any
worker, one at a time per key, again after a crash or a stall, their effects kept once.

One interface, two runners:

- `storage.jobs.local.LocalQueue`: the embedded default (one process, SQLite). A `jobs` table
  in the database file; an in-process dispatcher on the bot's event loop.
- `storage.jobs.postgres.PostgresQueue`: replicas on one PostgreSQL. procrastinate's tables and
  workers, plus what it leaves to us (the lock hand-over notification, stalled-job recovery on
  the database's clock, fencing).

Both run the same registered task functions. A task is `async def task(attempt, args)`; it may
run more than once for one job (a crash, a stall taken over by another replica), so every
effect it has is keyed: a database write made while a job attempt is current is *fenced*
(`Attempt.fence`, called by `Database.write` itself): once another worker has the job, the
stale attempt's next write raises `TakenOver` before it commits, and so does its next Telegram
message (the outbox records each message before it is sent).

Rules a job's order follows (procrastinate's, which the local runner copies):
- `lock`: jobs of one lock run one at a time, in the order deferred; a job retried after a
  failure keeps its place (nothing later of its lock starts before it is done).
- `queueing_lock`: at most one job of that key waits to start (a second defer is refused,
  `defer_in` returns False); one may run meanwhile.
- `delay`: seconds from now on the database's clock (replicas' clocks do not matter).
- `queue`: "chat" (a chat's ordered work) or "media" (downloads and processing, any order);
  each has its own number of workers, so a burst of downloads never holds up a reply.
- `keep_turn`: a lock's jobs deferred less than that many seconds apart share one turn, and
  the queue takes the jobs of earlier turns first (jobs without a turn before any). Under a
  backlog, the chats whose bursts came first are finished first, instead of every chat at the
  backlog's end. A lock's own order is unchanged.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection
from sqlalchemy.sql.dml import UpdateBase

CHAT = "chat"
MEDIA = "media"
QUEUES = (CHAT, MEDIA)

JSON = Mapping[str, Any]  # a job's arguments: JSON-serialisable


class TakenOver(Exception):
    """This attempt no longer owns its job (another worker took it over): stop, change nothing."""


@dataclass(frozen=True)
class Job:
    """A job to defer: which task, its arguments, and the keys that order it."""

    task: str
    args: JSON = field(default_factory=dict)
    lock: str | None = None  # one at a time per lock, in deferral order
    queueing_lock: str | None = None  # at most one waiting to start per key
    delay: float = 0.0  # seconds from now, on the database's clock
    queue: str = CHAT
    # Seconds: deferred this soon after its lock's previous job, the job keeps that one's turn
    # (0: its place is its order of deferral). All jobs of a lock should say the same.
    keep_turn: float = 0.0


@dataclass(frozen=True)
class Ending:
    """A write made with a job's end (`Attempt.at_end`): one INSERT, UPDATE or DELETE, and
    the values of its bound parameters. A statement, not a function, so that PostgreSQL's
    runner can make the job's end and its endings one statement (storage/jobs/postgres.py);
    built once (a module's constant), so that SQLAlchemy compiles it once."""

    statement: UpdateBase
    params: Mapping[str, Any] = field(default_factory=dict)


def run_endings(conn: Connection, endings: Sequence[Ending]) -> None:
    """Make the writes an attempt asked for with its job's end (the runners call this)."""
    for ending in endings:
        conn.execute(ending.statement, dict(ending.params))


class Attempt(Protocol):
    """One run of one job, as its task function sees it."""

    job_id: int  # the same for every attempt of a job
    task: str
    number: int  # 0 for the first attempt
    last: bool  # no retry follows if this one fails
    shared: bool  # whether another worker may take the job over (replicas): fencing matters

    def fence(self, conn: Connection) -> None:
        """Raise TakenOver unless this attempt still owns its job; inside the transaction that
        records an effect (PostgreSQL: the job's row is locked until that commit)."""
        ...

    def at_end(self, work: Ending) -> None:
        """Have `work` run when the task function returned, in the very transaction that
        records the job done (on PostgreSQL, a fenced one that ends the job with procrastinate's
        own function). A failed attempt runs none."""
        ...


TaskFunction = Callable[[Attempt, JSON], Awaitable[None]]
# Told when a job fails its last attempt (or crashed its process too often): the job's task and
# arguments, so the user can be told in one sentence and the job logged with its id.
GivenUp = Callable[[str, JSON], Awaitable[None]]

# The job that tells about a job given up: deferred by the runner in the very transaction that
# records the failure, so the telling is neither lost (a crash just after the failure) nor
# repeated (it is a job like any other: its messages go once, see bot/telegram/outbox.py).
GAVE_UP_TASK = "gave_up"
GAVE_UP_ATTEMPTS = 3


def gave_up_job(task: str, args: JSON) -> Job | None:
    """The job that tells about a job of `task` given up (None for a telling given up: that
    one is only logged, or a failing telling would tell about itself forever)."""
    if task == GAVE_UP_TASK:
        return None
    return Job(GAVE_UP_TASK, {"task": task, "args": dict(args)}, queue=CHAT)


def gave_up_task(given_up: GivenUp) -> Task:
    """The task that runs `given_up` for a job given up (`gave_up_job`'s)."""

    async def tell(attempt: Attempt, args: JSON) -> None:
        await given_up(str(args["task"]), args["args"])

    return Task(GAVE_UP_TASK, tell, attempts=GAVE_UP_ATTEMPTS)


@dataclass(frozen=True)
class Task:
    """A registered task: its function, how often it is tried, and its queue."""

    name: str
    function: TaskFunction
    attempts: int = 3  # tries in all, a crash of the process running it included
    retry_wait: float = 1.0  # seconds before the second try, doubled each time after


_current: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar(
    "job_attempt", default=None
)


def current_attempt() -> Attempt | None:
    """The job attempt this code runs in, if any (set by the runner around a task)."""
    return _current.get()


def running(attempt: Attempt | None) -> contextvars.Token[Attempt | None]:
    """Make `attempt` the current one (the runners call this around a task function)."""
    return _current.set(attempt)


def reset(token: contextvars.Token[Attempt | None]) -> None:
    """Undo a `running` (back to the attempt, if any, current before it)."""
    _current.reset(token)


def fence_current(conn: Connection) -> None:
    """Fence a write: raise TakenOver if the current job attempt (if any) lost its job."""
    attempt = _current.get()
    if attempt is not None:
        attempt.fence(conn)


class JobQueue(Protocol):
    """Defers jobs and runs the registered tasks; the same on both runners."""

    def register(self, task: Task) -> None:
        """Make a task runnable (before `start`)."""
        ...

    def defer_in(self, conn: Connection, job: Job) -> bool:
        """Defer a job inside the caller's open transaction (it exists if that commits);
        False when its queueing_lock already has a job waiting to start."""
        ...

    def defer_all_in(self, conn: Connection, jobs: Sequence[Job]) -> None:
        """Defer jobs that have no queueing_lock inside the caller's open transaction, in
        their order (one statement where the engine allows)."""
        ...

    async def defer(self, job: Job) -> bool:
        """Defer a job in a transaction of its own; False as for `defer_in`."""
        ...

    def sooner_in(self, conn: Connection, queueing_lock: str, delay: float = 0.0) -> bool:
        """Bring the waiting job of `queueing_lock` forward to run `delay` seconds from now at
        the latest; False when none waits."""
        ...

    def schedule_in(
        self, conn: Connection, job: Job, behind: str | None = None, hold: float = 0.0
    ) -> None:
        """Have `job` (it has a queueing_lock) run `job.delay` seconds from now at the latest:
        the job waiting under its queueing lock brought forward, or this one deferred. While
        a job under the lock `behind` waits to start, the waiting one is left as it is (the
        last of those brings it forward), and this one is deferred for `hold` seconds at
        least. Two statements at most."""
        ...

    async def waiting(self, lock: str, task: str, running: bool = False) -> bool:
        """Whether a job of `task` under `lock` waits to start (a chat's updates received
        and not taken in yet); with `running`, or runs."""
        ...

    async def sooner(self, queueing_lock: str, delay: float = 0.0) -> bool:
        """`sooner_in`, in a transaction of its own."""
        ...

    async def start(self, workers: Mapping[str, int], given_up: GivenUp | None = None) -> None:
        """Start running jobs: `workers` per queue ({"chat": 16, "media": 2}); jobs an earlier
        run left unfinished are run again (counting the attempt), or given up."""
        ...

    async def stop(self, timeout: float = 10.0) -> None:
        """Take no more jobs; let running ones finish for up to `timeout` seconds."""
        ...

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no job is waiting or running (tests, shutdown); False on timeout."""
        ...
