"""The Telegram messages jobs sent: recorded, so a job run again does not post them twice.

A row is written before its message is sent (the intent: a fenced write, so an attempt that
lost its job stops there) and completed with Telegram's answer after. Times are the database's,
so replicas' clocks do not matter; rows go a day after they were made.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from storage.records import Sent
from storage.sql.clock import db_now
from storage.sql.database import Database
from storage.sql.rows import one, run
from storage.sql.tables import sent_messages

RETENTION_SECONDS = 24 * 3600.0  # a job is retried within minutes; a day is plenty

_KEY = (sent_messages.c.job_id == bindparam("job"), sent_messages.c.key == bindparam("call"))
_GET = select(sent_messages.c.attempt, sent_messages.c.result).where(*_KEY)
_RESULT = update(sent_messages).where(*_KEY).values(result=bindparam("answer"))
_PURGE = delete(sent_messages).where(
    sent_messages.c.created_at <= db_now() - bindparam("age", type_=sent_messages.c.created_at.type)
)


class SqlSentStore:
    """Messages jobs sent, keyed by (job id, call)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        intent = db.insert(sent_messages).values(
            job_id=bindparam("job"),
            key=bindparam("call"),
            attempt=bindparam("number"),
            created_at=db_now(),
        )
        self._intend = intent.on_conflict_do_update(
            index_elements=[sent_messages.c.job_id, sent_messages.c.key],
            set_={"attempt": intent.excluded.attempt},
        )

    async def recorded(self, job_id: int, key: str) -> Sent | None:
        """What is recorded of one call of a job, if anything."""
        return await self.db.read(_sent, {"job": job_id, "call": key})

    async def intend(self, job_id: int, key: str, attempt: int) -> Sent | None:
        """About to send: an earlier attempt's record of this call when it holds Telegram's
        answer (send nothing then); else the intent is recorded and None returned. A fenced
        write: an attempt that lost its job raises TakenOver here, before it sends."""
        return await self.db.write(self._intend_once, {"job": job_id, "call": key}, attempt)

    def _intend_once(self, conn: Connection, key: dict[str, Any], attempt: int) -> Sent | None:
        earlier = _sent(conn, key)
        if earlier is not None and earlier.result is not None:
            return earlier
        conn.execute(self._intend, {**key, "number": attempt})
        return None

    async def record(self, job_id: int, key: str, result: Any) -> None:
        """Keep Telegram's answer to a call (JSON-serialisable); rows older than a day go on
        the way (an indexed range, mostly empty)."""
        params = {"job": job_id, "call": key, "answer": json.dumps(result)}
        await self.db.write(_record, params)

    async def purge(self, older_than: float = RETENTION_SECONDS) -> int:
        """Forget the calls recorded `older_than` seconds ago or more; how many went."""
        return await self.db.write(run, _PURGE, {"age": older_than})

    async def fence(self) -> None:
        """An empty write: raises TakenOver if the current job attempt lost its job."""
        await self.db.write(_nothing)


def _sent(conn: Connection, key: dict[str, Any]) -> Sent | None:
    row = one(conn, _GET, key)
    if row is None:
        return None
    result = None if row["result"] is None else json.loads(row["result"])
    return Sent(attempt=row["attempt"], result=result)


def _record(conn: Connection, params: dict[str, Any]) -> None:
    conn.execute(_RESULT, params)
    conn.execute(_PURGE, {"age": RETENTION_SECONDS})


def _nothing(conn: Connection) -> None:
    """Database.write fences before it runs a function: there is nothing else to do."""
