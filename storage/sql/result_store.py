"""What a job did, kept under its id: written in the transaction that did it, so a job run
again after a crash or a stall (its change committed, its end not) reads it back instead of
doing it again. Times are the database's; rows go a day after they were made."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, delete, select

from storage.records import JobResult
from storage.sql.clock import db_now
from storage.sql.database import Database
from storage.sql.tables import job_results

RETENTION_SECONDS = 24 * 3600.0  # a job is retried within minutes; a day is plenty

_GET = select(job_results.c.value).where(
    job_results.c.job_id == bindparam("job"), job_results.c.name == bindparam("name")
)
_PURGE = delete(job_results).where(job_results.c.created_at < db_now() - RETENTION_SECONDS)


class SqlResultStore:
    """Results of jobs, keyed by (job id, name)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def recall(self, job_id: int, name: str) -> str | None:
        """What the job recorded under `name`, if it got that far."""
        return await self.db.read(_recall, job_id, name)


def _recall(conn: Connection, job_id: int, name: str) -> str | None:
    value = conn.execute(_GET, {"job": job_id, "name": name}).scalar()
    return None if value is None else str(value)


def record_in(conn: Connection, result: JobResult) -> None:
    """Keep `result` in the caller's transaction (the one making the change it describes)."""
    conn.execute(_PURGE)
    conn.execute(
        job_results.insert().values(
            job_id=result.job_id, name=result.name, value=result.value, created_at=db_now()
        )
    )
