"""Media items, the blobs behind them, the traveller's notes and their batches, in SQLite."""

from __future__ import annotations

from storage.records import AddOutcome, AddStatus, Item, Media, Note, Removed, now_iso
from storage.sqlite.db import Database
from storage.sqlite.rows import ITEM_COLUMNS, drop_orphan_blobs, item, item_values, record


class _NotAdded(Exception):
    """Raised inside `add`'s transaction to roll it back."""


class SqliteMediaStore:
    """Items of albums. Callers pass the album id they got for their own chat."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def arrival(self, album_id: int, file_unique_id: str | None) -> tuple[Item | None, int]:
        """For a file about to be downloaded: the album's item already made from it (by
        Telegram's file_unique_id), and how many items the album holds. One query."""
        row = await self.db.fetchone(
            "SELECT i.*, (SELECT COUNT(*) FROM items WHERE album_id = :album) AS album_items"
            " FROM (SELECT 1) LEFT JOIN items i"
            " ON i.album_id = :album AND i.file_unique_id = :unique LIMIT 1",
            {"album": album_id, "unique": file_unique_id},
        )
        assert row is not None  # the LEFT JOIN always gives one row
        known = item(row) if row["id"] is not None else None
        return known, int(row["album_items"])

    async def add(
        self, album_id: int, batch_id: int | None, media: Media, max_items: int
    ) -> AddOutcome:
        """Store an item and its blobs in one transaction; a repeat of a stored file is a no-op.

        Written as few statements as it can be: under load every statement is a trip to
        SQLite's thread while every other change of the bot waits for the lock.
        """
        stamp = now_iso()
        columns = ["album_id", "batch_id", *ITEM_COLUMNS, "position", "created_at"]
        source, model = media.source, media.model
        outcome = AddOutcome(AddStatus.FULL, None)
        try:
            async with self.db.transaction() as tx:
                await tx.execute(
                    "INSERT OR IGNORE INTO blobs (sha256, size, mime_type, created_at) "
                    "VALUES (?, ?, ?, ?), (?, ?, ?, ?)",
                    (
                        source.sha256, source.size, source.mime_type, stamp,
                        model.sha256, model.size, model.mime_type, stamp,
                    ),
                )  # fmt: skip
                # Numbered after the album's last item, unless the album is full or already
                # holds these bytes (then no row comes back).
                rows = await tx.fetchall(
                    f"INSERT INTO items ({', '.join(columns)}) "
                    f"SELECT ?, ?, {', '.join('?' for _ in ITEM_COLUMNS)}, top + 1, ? FROM ("
                    " SELECT COUNT(*) AS n, COALESCE(MAX(position), 0) AS top"
                    " FROM items WHERE album_id = ?) WHERE n < ?"
                    " ON CONFLICT (album_id, source_sha256) DO NOTHING RETURNING *",
                    [album_id, batch_id, *item_values(media), stamp, album_id, max_items],
                )
                if rows:
                    await tx.execute(
                        "UPDATE albums SET updated_at = ? WHERE id = ?", (stamp, album_id)
                    )
                    return AddOutcome(AddStatus.ADDED, item(rows[0]))
                existing = await tx.fetchone(
                    "SELECT * FROM items WHERE album_id = ? AND source_sha256 = ?",
                    (album_id, source.sha256),
                )
                if existing is not None:
                    outcome = AddOutcome(AddStatus.DUPLICATE, item(existing))
                raise _NotAdded  # rolls the blob rows back
        except _NotAdded:
            return outcome

    async def items(self, album_id: int) -> list[Item]:
        """The album's items in the order they were added."""
        rows = await self.db.fetchall(
            "SELECT * FROM items WHERE album_id = ? ORDER BY position", (album_id,)
        )
        return [item(r) for r in rows]

    async def by_message(self, chat_id: int, message_id: int) -> Item | None:
        """The item a chat message carried (for replies to a photo), in any of the chat's albums."""
        row = await self.db.fetchone(
            "SELECT i.* FROM items i JOIN albums a ON a.id = i.album_id "
            "WHERE a.chat_id = ? AND i.chat_message_id = ? ORDER BY i.id DESC LIMIT 1",
            (chat_id, message_id),
        )
        return item(row) if row else None

    async def get(self, album_id: int, item_id: int) -> Item | None:
        """One item of the album."""
        row = await self.db.fetchone(
            "SELECT * FROM items WHERE album_id = ? AND id = ?", (album_id, item_id)
        )
        return item(row) if row else None

    async def set_caption(self, item_id: int, caption: str | None) -> None:
        """Replace an item's caption."""
        await self.db.execute("UPDATE items SET caption = ? WHERE id = ?", (caption, item_id))

    async def pending_copies(self) -> list[Item]:
        """Photos whose model copy has not been made yet (left by a restart), oldest first."""
        rows = await self.db.fetchall(
            "SELECT * FROM items WHERE model_ready = 0 AND model_failed IS NULL ORDER BY id"
        )
        return [item(r) for r in rows]

    async def set_model_copy(self, item_id: int, sha256: str, size: int, mime_type: str) -> bool:
        """Point an item at its model copy; False if the item is gone (taken back meanwhile)."""
        async with self.db.transaction() as tx:
            if await tx.fetchone("SELECT 1 FROM items WHERE id = ?", (item_id,)) is None:
                return False
            await tx.execute(
                "INSERT OR IGNORE INTO blobs (sha256, size, mime_type, created_at)"
                " VALUES (?, ?, ?, ?)",
                (sha256, size, mime_type, now_iso()),
            )
            await tx.execute(
                "UPDATE items SET model_sha256 = ?, model_size = ?, model_mime_type = ?,"
                " model_ready = 1 WHERE id = ?",
                (sha256, size, mime_type, item_id),
            )
        return True

    async def used_blobs(self) -> set[str]:
        """Every blob some item refers to."""
        rows = await self.db.fetchall(
            "SELECT source_sha256 AS sha FROM items UNION SELECT model_sha256 FROM items"
        )
        return {str(row["sha"]) for row in rows}

    async def is_blob_used(self, sha256: str) -> bool:
        """Whether any item still refers to a blob."""
        row = await self.db.fetchone(
            "SELECT 1 FROM items WHERE source_sha256 = ? OR model_sha256 = ? LIMIT 1",
            (sha256, sha256),
        )
        return row is not None

    async def mark_model_failed(self, item_id: int, reason: str) -> None:
        """Remember that the model service could not process this item."""
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE items SET model_failed = ? WHERE id = ?", (reason, item_id))

    # Notes -------------------------------------------------------------------------------

    async def add_note(
        self,
        album_id: int,
        text: str,
        batch_id: int | None,
        sender_id: int | None,
        sender_name: str | None,
    ) -> Note:
        """Store something the traveller told about the trip."""
        stamp = now_iso()
        async with self.db.transaction() as tx:
            note_id = await tx.execute(
                "INSERT INTO notes (album_id, batch_id, text, sender_id, sender_name, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (album_id, batch_id, text, sender_id, sender_name, stamp),
            )
            await tx.execute("UPDATE albums SET updated_at = ? WHERE id = ?", (stamp, album_id))
        return Note(note_id, album_id, batch_id, text, sender_id, sender_name, stamp)

    async def notes(self, album_id: int) -> list[Note]:
        """The album's notes, oldest first."""
        rows = await self.db.fetchall(
            "SELECT * FROM notes WHERE album_id = ? ORDER BY id", (album_id,)
        )
        return [record(Note, r) for r in rows]

    # Batches -----------------------------------------------------------------------------

    async def new_batch(self, album_id: int) -> int:
        """Open a batch: the media and notes one acknowledgement message will cover."""
        async with self.db.transaction() as tx:
            return await tx.execute(
                "INSERT INTO batches (album_id, created_at) VALUES (?, ?)", (album_id, now_iso())
            )

    async def batch_album(self, chat_id: int, batch_id: int) -> int | None:
        """The album id of one of the chat's batches, None if the chat has no such batch."""
        row = await self.db.fetchone(
            "SELECT b.album_id FROM batches b JOIN albums a ON a.id = b.album_id "
            "WHERE b.id = ? AND a.chat_id = ?",
            (batch_id, chat_id),
        )
        return int(row["album_id"]) if row else None

    async def latest_batch(self, album_id: int) -> tuple[int, str] | None:
        """The album's most recent batch that still holds something: (id, created_at)."""
        row = await self.db.fetchone(
            "SELECT b.id, b.created_at FROM batches b WHERE b.album_id = ? AND ("
            " EXISTS (SELECT 1 FROM items i WHERE i.batch_id = b.id) OR"
            " EXISTS (SELECT 1 FROM notes n WHERE n.batch_id = b.id)) "
            "ORDER BY b.id DESC LIMIT 1",
            (album_id,),
        )
        return (int(row["id"]), str(row["created_at"])) if row else None

    async def remove_batch(self, album_id: int, batch_id: int) -> Removed:
        """Delete a batch's items and notes; return them and the blobs nothing uses any more."""
        async with self.db.transaction() as tx:
            items = [
                item(r)
                for r in await tx.fetchall(
                    "SELECT * FROM items WHERE album_id = ? AND batch_id = ? ORDER BY position",
                    (album_id, batch_id),
                )
            ]
            notes = [
                record(Note, r)
                for r in await tx.fetchall(
                    "SELECT * FROM notes WHERE album_id = ? AND batch_id = ? ORDER BY id",
                    (album_id, batch_id),
                )
            ]
            await tx.execute(
                "DELETE FROM items WHERE album_id = ? AND batch_id = ?", (album_id, batch_id)
            )
            await tx.execute(
                "DELETE FROM notes WHERE album_id = ? AND batch_id = ?", (album_id, batch_id)
            )
            candidates = {i.media.source.sha256 for i in items} | {
                i.media.model.sha256 for i in items
            }
            orphans = await drop_orphan_blobs(tx, candidates)
        return Removed(items, notes, orphans)
