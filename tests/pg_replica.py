"""A PostgresQueue "replica" for the tests, in the test's process or as a process of its own
(`python -m tests.pg_replica URL NAME`, which a test can freeze with SIGSTOP).

Its one task, `step`, records what it does in a table `effects` through fenced writes (as the
bot's jobs do through `Database.write`), so the rows are the effects a job had: once each, or
more than once if fencing broke. A step told to `hold` waits until the test inserts its row in
`releases` (n, who), so a test can keep a job running exactly as long as it needs.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, text

from storage.jobs import JSON, Attempt, TakenOver, Task, running
from storage.jobs.postgres import PostgresQueue
from storage.sql.database import PostgresDatabase, postgres_url
from storage.sql.migrations import apply_migrations

TABLES = (
    "CREATE TABLE IF NOT EXISTS effects (id bigserial PRIMARY KEY, n int NOT NULL,"
    " event text NOT NULL, who text NOT NULL, attempt int NOT NULL,"
    " at timestamptz NOT NULL DEFAULT clock_timestamp())",
    "CREATE TABLE IF NOT EXISTS releases (n int NOT NULL, who text NOT NULL)",
)
HOLD_LIMIT = 60.0  # seconds a held step waits for its release before failing


def _record(conn: Connection, n: int, event: str, who: str, attempt: int) -> None:
    conn.execute(
        text("INSERT INTO effects (n, event, who, attempt) VALUES (:n, :e, :w, :a)"),
        {"n": n, "e": event, "w": who, "a": attempt},
    )


def _released(conn: Connection, n: int, who: str) -> bool:
    found = conn.execute(
        text("SELECT 1 FROM releases WHERE n = :n AND who = :w"), {"n": n, "w": who}
    )
    return found.first() is not None


def step_task(db: PostgresDatabase, who: str, attempts: int = 3, retry_wait: float = 0.2) -> Task:
    """The `step` task of replica `who`: record start, maybe fail or hold, record end."""

    async def step(attempt: Attempt, args: JSON) -> None:
        n = int(args["n"])
        await db.write(_record, n, "start", who, attempt.number)
        if args.get("hold"):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + HOLD_LIMIT
            while not await db.read(_released, n, who):
                if loop.time() > deadline:
                    raise TimeoutError(f"step {n} of {who} was never released")
                await asyncio.sleep(0.02)
        if attempt.number < int(args.get("fail_first", 0)):  # after the hold: held, then fails
            raise RuntimeError(f"step {n} fails on attempt {attempt.number}")
        try:
            await db.write(_record, n, "end", who, attempt.number)
        except TakenOver:
            await _unfenced_record(db, n, "taken-over", who, attempt.number)
            raise

    return Task("step", step, attempts=attempts, retry_wait=retry_wait)


async def _unfenced_record(db: PostgresDatabase, n: int, event: str, who: str, number: int) -> None:
    # A task of its own: outside the job attempt's context, so the write is not fenced.
    async def write() -> None:
        running(None)
        await db.write(_record, n, event, who, number)

    await asyncio.create_task(write())


async def open_database(url: str) -> PostgresDatabase:
    """The database at `url`, migrated, with the tables `step` writes."""
    db = PostgresDatabase(postgres_url(url))
    await db.open()
    await db.write(apply_migrations)

    def tables(conn: Connection) -> None:
        for ddl in TABLES:
            conn.execute(text(ddl))

    await db.write(tables)
    return db


def replica(db: PostgresDatabase, url: str, who: str, **options: Any) -> PostgresQueue:
    """A PostgresQueue named `who` with `step` registered; quick heartbeats by default."""
    options = {"heartbeat": 0.5, "stalled_after": 2.0, "polling": 0.5, **options}
    queue = PostgresQueue(db, url, name=who, **options)
    queue.register(step_task(db, who))
    return queue


async def main(argv: Sequence[str]) -> None:
    """Run one replica until SIGTERM; print "ready" once its workers are up."""
    url, who = argv
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)  # the test reads what happened
    db = await open_database(url)
    queue = replica(db, url, who)
    await queue.start({"chat": 2})
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await queue.stop(5.0)
    await db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
