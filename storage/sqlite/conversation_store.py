"""The conversation about an album, in SQLite: each question stored with its complete answer."""

from __future__ import annotations

from storage.records import Exchange, NewExchange, now_iso
from storage.sqlite.db import Database
from storage.sqlite.rows import record


class SqliteConversationStore:
    """Exchanges of an album, in order."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def exchanges(self, album_id: int) -> list[Exchange]:
        """The album's conversation so far, oldest first."""
        rows = await self.db.fetchall(
            "SELECT * FROM exchanges WHERE album_id = ? ORDER BY id", (album_id,)
        )
        return [record(Exchange, r) for r in rows]

    async def add(self, new: NewExchange) -> Exchange:
        """Append a finished exchange (one transaction: question and answer land together)."""
        stamp = now_iso()
        async with self.db.transaction() as tx:
            exchange_id = await tx.execute(
                "INSERT INTO exchanges (album_id, kind, prompt, user_text, focus_item_id,"
                " answer_text, answer_content, sender_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new.album_id, new.kind, new.prompt, new.user_text, new.focus_item_id,
                    new.answer_text, new.answer_content, new.sender_id, stamp,
                ),
            )  # fmt: skip
            await tx.execute("UPDATE albums SET updated_at = ? WHERE id = ?", (stamp, new.album_id))
        return Exchange(
            exchange_id, new.album_id, new.kind, new.prompt, new.user_text, new.focus_item_id,
            new.answer_text, new.answer_content, new.sender_id, stamp,
        )  # fmt: skip

    async def clear(self, album_id: int) -> int:
        """Forget the album's conversation (the media stay); return how many exchanges went."""
        async with self.db.transaction() as tx:
            return await tx.execute("DELETE FROM exchanges WHERE album_id = ?", (album_id,))

    async def latest(self, album_id: int) -> Exchange | None:
        """The album's most recent exchange."""
        row = await self.db.fetchone(
            "SELECT * FROM exchanges WHERE album_id = ? ORDER BY id DESC LIMIT 1", (album_id,)
        )
        return record(Exchange, row) if row else None

    async def remove(self, album_id: int, exchange_id: int) -> bool:
        """Delete one exchange of the album."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "DELETE FROM exchanges WHERE album_id = ? AND id = ?", (album_id, exchange_id)
            )
        return changed > 0
