"""Updates fetched from Telegram but not handled yet, so a crash does not lose them."""

from __future__ import annotations

from storage.records import now_iso
from storage.sqlite.db import Database

MAX_ATTEMPTS = 3  # an update that crashed the process this often is given up


class SqliteInboxStore:
    """A durable queue of raw updates, keyed by Telegram's update_id."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def keep(self, update_id: int, payload: str) -> None:
        """Record a fetched update (a second copy of the same update is ignored)."""
        await self.db.execute(
            "INSERT OR IGNORE INTO inbox (update_id, payload, received_at) VALUES (?, ?, ?)",
            (update_id, payload, now_iso()),
        )

    async def done(self, update_id: int) -> None:
        """The update was handled."""
        await self.db.execute("DELETE FROM inbox WHERE update_id = ?", (update_id,))

    async def unfinished(self) -> list[str]:
        """Updates left unhandled by an earlier run, oldest first; each try is counted."""
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM inbox WHERE attempts >= ?", (MAX_ATTEMPTS,))
            await tx.execute("UPDATE inbox SET attempts = attempts + 1")
            rows = await tx.fetchall("SELECT payload FROM inbox ORDER BY update_id")
        return [str(row["payload"]) for row in rows]
