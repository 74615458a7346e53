"""Updates fetched from Telegram but not handled yet, so a crash does not lose them."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, delete, select, update

from storage.records import now_iso
from storage.sql.database import Database
from storage.sql.rows import run
from storage.sql.tables import inbox

MAX_ATTEMPTS = 3  # an update that crashed the process this often is given up

_DONE = delete(inbox).where(inbox.c.update_id == bindparam("update"))
_GIVE_UP = delete(inbox).where(inbox.c.attempts >= MAX_ATTEMPTS)
_COUNT_TRY = update(inbox).values(attempts=inbox.c.attempts + 1)
_PAYLOADS = select(inbox.c.payload).order_by(inbox.c.update_id)


class SqlInboxStore:
    """A durable queue of raw updates, keyed by Telegram's update_id."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._keep = db.insert(inbox).on_conflict_do_nothing(index_elements=[inbox.c.update_id])

    async def keep(self, update_id: int, payload: str) -> None:
        """Record a fetched update (a second copy of the same update is ignored)."""
        values = {"update_id": update_id, "payload": payload, "received_at": now_iso()}
        await self.db.write(run, self._keep, values)

    async def done(self, update_id: int) -> None:
        """The update was handled."""
        await self.db.write(run, _DONE, {"update": update_id})

    async def unfinished(self) -> list[str]:
        """Updates left unhandled by an earlier run, oldest first; each try is counted."""
        return await self.db.write(_unfinished)


def _unfinished(conn: Connection) -> list[str]:
    conn.execute(_GIVE_UP)
    conn.execute(_COUNT_TRY)
    return [str(row.payload) for row in conn.execute(_PAYLOADS)]
