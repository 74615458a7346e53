"""Updates received from Telegram: each update_id recorded, and its job deferred, before
Telegram is answered; a second delivery of one is recognised and not handled again.

`received_updates` remembers every update_id received for a day after it was handled (a webhook
resent after a lost 200, a poll re-delivered after a crash before its offset was confirmed).
Times there are the database's, not a process's: replicas whose clocks disagree still agree on
what is a day old. The update itself travels in its job's arguments (storage/jobs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import Connection, bindparam, delete

from storage.jobs import Ending, Job, JobQueue
from storage.protocols import RECEIVED_AT
from storage.sql.clock import db_now
from storage.sql.database import Database
from storage.sql.tables import received_updates

RETENTION_SECONDS = 24 * 3600.0  # Telegram keeps an unconfirmed update this long


_PURGE = delete(received_updates).where(
    received_updates.c.handled_at < db_now() - RETENTION_SECONDS
)


class SqlInboxStore:
    """Every update_id received, with the job that handles it deferred in the same commit."""

    def __init__(self, db: Database, jobs: JobQueue | None = None) -> None:
        self.db = db
        self.jobs = jobs
        self._receive = (
            db.insert(received_updates)
            .values(update_id=bindparam("update"), received_at=db_now())
            .on_conflict_do_nothing(index_elements=[received_updates.c.update_id])
            .returning(received_updates.c.update_id, received_updates.c.received_at)
        )
        handled = db.insert(received_updates).values(
            update_id=bindparam("update"), received_at=db_now(), handled_at=db_now()
        )
        self._handled = handled.on_conflict_do_update(
            index_elements=[received_updates.c.update_id], set_={"handled_at": db_now()}
        )

    async def receive(self, update_id: int, job: Job) -> bool:
        """Record a received update and defer the job that handles it, in one transaction;
        False when the update_id was received before (pending or handled within
        RETENTION_SECONDS): a second delivery, not handled again."""
        return await self.db.write(self._receive_new, update_id, job)

    async def receive_many(self, updates: Sequence[tuple[int, Job]]) -> list[bool]:
        """`receive` for several updates in one transaction (all or none), in their order: a
        poll's worth, or the webhook requests that came in together."""
        return await self.db.write(self._receive_all, updates)

    def _receive_all(self, conn: Connection, updates: Sequence[tuple[int, Job]]) -> list[bool]:
        # Two statements for the lot: the ids (a second copy of one meets its row, as in
        # `receive`), then the jobs of the new ones, in their order.
        first: dict[int, int] = {}
        for index, (update_id, _) in enumerate(updates):
            first.setdefault(update_id, index)
        if not first:
            return []
        # In id order: batches committing side by side take the rows' locks in one order.
        rows = [{"update_id": update_id, "received_at": db_now()} for update_id in sorted(first)]
        insert = self.db.insert(received_updates).values(rows)
        returned = conn.execute(
            insert.on_conflict_do_nothing(index_elements=[received_updates.c.update_id]).returning(
                received_updates.c.update_id, received_updates.c.received_at
            )
        )
        new: dict[int, float] = {row.update_id: row.received_at for row in returned}
        fresh = [
            update_id in new and first[update_id] == index
            for index, (update_id, _) in enumerate(updates)
        ]
        assert self.jobs is not None, "receiving an update needs the job queue"
        jobs = [
            _stamped(job, new[update_id])
            for (update_id, job), ok in zip(updates, fresh, strict=True)
            if ok
        ]
        self.jobs.defer_all_in(conn, jobs)
        conn.execute(_PURGE)
        return fresh

    def _receive_new(self, conn: Connection, update_id: int, job: Job) -> bool:
        # The id first: a second copy meets its row there (or waits for the first copy's
        # transaction, then meets it), whether the first is pending or handled.
        row = conn.execute(self._receive, {"update": update_id}).first()
        if row is None:
            return False
        assert self.jobs is not None, "receiving an update needs the job queue"
        self.jobs.defer_in(conn, _stamped(job, row.received_at))
        conn.execute(_PURGE)
        return True

    def handled_mark(self, update_id: int) -> Ending:
        """`done` as a statement to make with a job's end (`Attempt.at_end`): the handled
        mark commits with the job's own end."""
        return Ending(self._handled, {"update": update_id})

    async def done(self, update_id: int) -> None:
        """The update was handled: its id stays marked handled for a day (ids handled longer
        ago are purged when updates are received: an indexed range, mostly empty, once per
        batch). Made by the update's job, so fenced: a stalled attempt whose job was taken
        over marks nothing."""
        await self.db.write(self._mark_handled, update_id)

    def _mark_handled(self, conn: Connection, update_id: int) -> None:
        conn.execute(self._handled, {"update": update_id})

    async def handled(self, update_id: int) -> bool:
        """Whether the update was handled already (its job runs again after a crash)."""
        return await self.db.read(_handled, update_id)


def _stamped(job: Job, received_at: float) -> Job:
    """The update's job, told when the update was received (`RECEIVED_AT`)."""
    return replace(job, args={**job.args, RECEIVED_AT: float(received_at)})


_IS_HANDLED = received_updates.select().where(
    received_updates.c.update_id == bindparam("update"),
    received_updates.c.handled_at.is_not(None),
)


def _handled(conn: Connection, update_id: int) -> bool:
    return conn.execute(_IS_HANDLED, {"update": update_id}).first() is not None
