"""The job runners the contract suite (test_job_queue.py) runs against: one entry per runner.

A `Runner` owns a database and the queue running on it; `start` makes a fresh queue on the same
database (as a restarted process would), and `die` leaves the jobs as a killed process would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from storage.jobs import CHAT, MEDIA, GivenUp, JobQueue, Task
from storage.jobs.local import LocalQueue
from storage.sql.database import Database, SqliteDatabase
from storage.sql.migrations import apply_migrations

WORKERS = {CHAT: 4, MEDIA: 2}


class Runner:
    """A database and the job queue running on it (one at a time)."""

    def __init__(self, db: Database, make: Callable[[Database], JobQueue]) -> None:
        self.db = db
        self._make = make
        self._queue: JobQueue | None = None

    @property
    def queue(self) -> JobQueue:
        """The queue running now."""
        assert self._queue is not None, "start() first"
        return self._queue

    async def start(
        self,
        tasks: Iterable[Task],
        workers: Mapping[str, int] = WORKERS,
        given_up: GivenUp | None = None,
    ) -> JobQueue:
        """A new queue on this database, with `tasks` registered, started."""
        assert self._queue is None, "stop() or die() first"
        queue = self._make(self.db)
        for task in tasks:
            queue.register(task)
        await queue.start(workers, given_up)
        self._queue = queue
        return queue

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the queue as the bot does at shutdown."""
        queue, self._queue = self._queue, None
        if queue is not None:
            await queue.stop(timeout)

    async def die(self) -> None:
        """The process running the queue is killed: its running jobs stop where they are."""
        await self.stop(timeout=0)


@asynccontextmanager
async def local_runner(root: Path) -> AsyncIterator[Runner]:
    """LocalQueue on a SQLite file under `root`."""
    db = SqliteDatabase(root / "jobs.sqlite3")
    await db.open()
    runner = Runner(db, LocalQueue)
    try:
        await db.write(apply_migrations)
        yield runner
    finally:
        await runner.stop()
        await db.close()


RUNNERS: dict[str, Callable[[Path], AbstractAsyncContextManager[Runner]]] = {
    "local": local_runner,
}
