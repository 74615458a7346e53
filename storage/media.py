"""Media items, the blobs behind them, the traveller's notes, and the batches they arrived in."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum

from storage.db import Database, Tx
from storage.models import Item, Note, now_iso


@dataclass(frozen=True)
class NewItem:
    """Everything known about a media item when it is stored."""

    album_id: int
    batch_id: int | None
    kind: str
    source_sha256: str
    source_size: int
    source_mime: str
    model_sha256: str
    model_size: int
    model_mime_type: str
    file_unique_id: str | None = None
    file_id: str | None = None
    file_name: str | None = None
    mime_type: str | None = None
    caption: str | None = None
    chat_message_id: int | None = None
    media_group_id: str | None = None
    sender_id: int | None = None
    sender_name: str | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    taken_at: str | None = None
    time_source: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    place: str | None = None
    camera: str | None = None
    message_date: str | None = None
    telegram_type: str | None = None
    model_ready: bool = True


class AddStatus(Enum):
    ADDED = "added"
    DUPLICATE = "duplicate"
    FULL = "full"


@dataclass(frozen=True)
class AddOutcome:
    status: AddStatus
    item: Item | None


class _NotAdded(Exception):
    """Raised inside `add`'s transaction to roll it back."""


@dataclass(frozen=True)
class Removed:
    """What taking back a batch removed."""

    items: list[Item]
    notes: list[Note]
    orphan_blobs: list[str]


_ITEM_COLUMNS = [
    "album_id", "batch_id", "kind", "source_sha256", "model_sha256", "model_mime_type",
    "file_unique_id", "file_id", "file_name", "mime_type", "caption", "chat_message_id",
    "media_group_id", "sender_id", "sender_name", "width", "height", "duration", "taken_at",
    "time_source", "latitude", "longitude", "altitude", "place", "camera", "message_date",
    "telegram_type", "model_ready",
]  # fmt: skip


class MediaStore:
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
        known = Item.from_row(row) if row["id"] is not None else None
        return known, int(row["album_items"])

    async def add(self, new: NewItem, max_items: int) -> AddOutcome:
        """Store an item and its blobs in one transaction; a repeat of a stored file is a no-op.

        Written as few statements as it can be: under load every statement is a trip to
        SQLite's thread while every other change of the bot waits for the lock.
        """
        stamp = now_iso()
        values = asdict(new)
        columns = [*_ITEM_COLUMNS, "position", "created_at"]
        outcome = AddOutcome(AddStatus.FULL, None)
        try:
            async with self.db.transaction() as tx:
                await tx.execute(
                    "INSERT OR IGNORE INTO blobs (sha256, size, mime_type, created_at) "
                    "VALUES (?, ?, ?, ?), (?, ?, ?, ?)",
                    (
                        new.source_sha256, new.source_size, new.source_mime, stamp,
                        new.model_sha256, new.model_size, new.model_mime_type, stamp,
                    ),
                )  # fmt: skip
                # Numbered after the album's last item, unless the album is full or already
                # holds these bytes (then no row comes back).
                rows = await tx.fetchall(
                    f"INSERT INTO items ({', '.join(columns)}) "
                    f"SELECT {', '.join('?' for _ in _ITEM_COLUMNS)}, top + 1, ? FROM ("
                    " SELECT COUNT(*) AS n, COALESCE(MAX(position), 0) AS top"
                    " FROM items WHERE album_id = ?) WHERE n < ?"
                    " ON CONFLICT (album_id, source_sha256) DO NOTHING RETURNING *",
                    [values[c] for c in _ITEM_COLUMNS] + [stamp, new.album_id, max_items],
                )
                if rows:
                    await tx.execute(
                        "UPDATE albums SET updated_at = ? WHERE id = ?", (stamp, new.album_id)
                    )
                    return AddOutcome(AddStatus.ADDED, Item.from_row(rows[0]))
                existing = await tx.fetchone(
                    "SELECT * FROM items WHERE album_id = ? AND source_sha256 = ?",
                    (new.album_id, new.source_sha256),
                )
                if existing is not None:
                    outcome = AddOutcome(AddStatus.DUPLICATE, Item.from_row(existing))
                raise _NotAdded  # rolls the blob rows back
        except _NotAdded:
            return outcome

    async def items(self, album_id: int) -> list[Item]:
        """The album's items in the order they were added."""
        rows = await self.db.fetchall(
            "SELECT * FROM items WHERE album_id = ? ORDER BY position", (album_id,)
        )
        return [Item.from_row(r) for r in rows]

    async def by_message(self, chat_id: int, message_id: int) -> Item | None:
        """The item a chat message carried (for replies to a photo), in any of the chat's albums."""
        row = await self.db.fetchone(
            "SELECT i.* FROM items i JOIN albums a ON a.id = i.album_id "
            "WHERE a.chat_id = ? AND i.chat_message_id = ? ORDER BY i.id DESC LIMIT 1",
            (chat_id, message_id),
        )
        return Item.from_row(row) if row else None

    async def get(self, album_id: int, item_id: int) -> Item | None:
        """One item of the album."""
        row = await self.db.fetchone(
            "SELECT * FROM items WHERE album_id = ? AND id = ?", (album_id, item_id)
        )
        return Item.from_row(row) if row else None

    async def set_caption(self, item_id: int, caption: str | None) -> None:
        """Replace an item's caption."""
        await self.db.execute("UPDATE items SET caption = ? WHERE id = ?", (caption, item_id))

    async def pending_copies(self) -> list[Item]:
        """Photos whose model copy has not been made yet (left by a restart), oldest first."""
        rows = await self.db.fetchall(
            "SELECT * FROM items WHERE model_ready = 0 AND model_failed IS NULL ORDER BY id"
        )
        return [Item.from_row(r) for r in rows]

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
                "UPDATE items SET model_sha256 = ?, model_mime_type = ?, model_ready = 1"
                " WHERE id = ?",
                (sha256, mime_type, item_id),
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
        return [Note.from_row(r) for r in rows]

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
                Item.from_row(r)
                for r in await tx.fetchall(
                    "SELECT * FROM items WHERE album_id = ? AND batch_id = ? ORDER BY position",
                    (album_id, batch_id),
                )
            ]
            notes = [
                Note.from_row(r)
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
            candidates = {i.source_sha256 for i in items} | {i.model_sha256 for i in items}
            orphans = await self._drop_orphan_blobs(tx, candidates)
        return Removed(items, notes, orphans)

    async def _drop_orphan_blobs(self, tx: Tx, candidates: set[str]) -> list[str]:
        """Delete blob rows no item references any more; return their hashes."""
        orphans = []
        for sha in sorted(candidates):
            used = await tx.fetchone(
                "SELECT 1 FROM items WHERE source_sha256 = ? OR model_sha256 = ? LIMIT 1",
                (sha, sha),
            )
            if used is None:
                await tx.execute("DELETE FROM blobs WHERE sha256 = ?", (sha,))
                orphans.append(sha)
        return orphans
