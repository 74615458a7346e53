"""Deleting everything a chat left behind, in one transaction."""

from __future__ import annotations

from storage.records import ChatFootprint, Forgotten
from storage.sqlite.db import Database
from storage.sqlite.rows import drop_orphan_blobs


class SqlitePrivacyStore:
    """A chat's footprint, and wiping it."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def footprint(self, chat_id: int) -> ChatFootprint:
        """Counts of what the bot holds for the chat."""
        row = await self.db.fetchone(
            "SELECT"
            " (SELECT COUNT(*) FROM albums WHERE chat_id = :c) AS albums,"
            " (SELECT COUNT(*) FROM items i JOIN albums a ON a.id = i.album_id"
            "  WHERE a.chat_id = :c) AS items,"
            " (SELECT COUNT(*) FROM notes n JOIN albums a ON a.id = n.album_id"
            "  WHERE a.chat_id = :c) AS notes,"
            " (SELECT COUNT(*) FROM exchanges e JOIN albums a ON a.id = e.album_id"
            "  WHERE a.chat_id = :c) AS exchanges,"
            " (SELECT COUNT(*) FROM usage WHERE chat_id = :c) AS usage_rows",
            {"c": chat_id},
        )
        assert row is not None
        return ChatFootprint(*(int(row[k]) for k in row.keys()))

    async def forget(self, chat_id: int) -> Forgotten:
        """Delete the chat's albums, items, notes, conversation and usage detail."""
        footprint = await self.footprint(chat_id)
        async with self.db.transaction() as tx:
            shas = {
                sha
                for row in await tx.fetchall(
                    "SELECT i.source_sha256, i.model_sha256 FROM items i"
                    " JOIN albums a ON a.id = i.album_id WHERE a.chat_id = ?",
                    (chat_id,),
                )
                for sha in (row[0], row[1])
            }
            # Items, notes, batches and exchanges go with their albums (ON DELETE CASCADE).
            await tx.execute("DELETE FROM albums WHERE chat_id = ?", (chat_id,))
            await tx.execute("DELETE FROM chats WHERE chat_id = ?", (chat_id,))
            # Token counts stay for budgets and totals, but no longer say which chat, album or
            # kind of request they came from.
            await tx.execute(
                "UPDATE usage SET chat_id = 0, album_id = NULL, kind = 'forgotten',"
                " by_modality = NULL WHERE chat_id = ?",
                (chat_id,),
            )
            orphans = await drop_orphan_blobs(tx, shas)
        return Forgotten(footprint, orphans)
