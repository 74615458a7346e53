"""Albums and each chat's current album, in SQLite."""

from __future__ import annotations

import sqlite3

from storage.records import Album, AlbumSummary, now_iso
from storage.sqlite.db import Database, Tx
from storage.sqlite.rows import record

DEFAULT_ALBUM_NAME = "My trip"

_CURRENT_SQL = (
    "SELECT a.* FROM chats c JOIN albums a ON a.id = c.current_album_id "
    "WHERE c.chat_id = ? AND a.chat_id = ?"
)
_SUMMARY_SQL = """
    SELECT a.*,
        (SELECT COUNT(*) FROM items i WHERE i.album_id = a.id AND i.kind = 'photo') AS photos,
        (SELECT COUNT(*) FROM items i WHERE i.album_id = a.id AND i.kind = 'video') AS videos,
        (SELECT COUNT(*) FROM items i WHERE i.album_id = a.id AND i.kind = 'audio') AS audio,
        (SELECT COUNT(*) FROM notes n WHERE n.album_id = a.id) AS notes,
        (SELECT COUNT(*) FROM exchanges e WHERE e.album_id = a.id) AS exchanges
    FROM albums a
"""


class SqliteAlbumStore:
    """Chats' albums. Every lookup takes the chat id, so one chat can never reach another's."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def current(self, chat_id: int) -> Album:
        """The chat's current album, created on first use."""
        row = await self.db.fetchone(_CURRENT_SQL, (chat_id, chat_id))
        if row is not None:
            return record(Album, row)
        async with self.db.transaction() as tx:  # looked again inside: another task may have won
            return await self._current_in(tx, chat_id)

    async def _current_in(self, tx: Tx, chat_id: int) -> Album:
        """`current` inside an open transaction."""
        row = await tx.fetchone(_CURRENT_SQL, (chat_id, chat_id))
        if row is not None:
            return record(Album, row)
        return await self._create(tx, chat_id, DEFAULT_ALBUM_NAME)

    async def create(self, chat_id: int, name: str) -> Album:
        """Start a new album and make it the chat's current one."""
        async with self.db.transaction() as tx:
            return await self._create(tx, chat_id, name)

    async def _create(self, tx: Tx, chat_id: int, name: str) -> Album:
        stamp = now_iso()
        album_id = await tx.execute(
            "INSERT INTO albums (chat_id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
            (chat_id, name, stamp, stamp),
        )
        await tx.execute(
            "INSERT INTO chats (chat_id, current_album_id, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (chat_id) DO UPDATE SET current_album_id = excluded.current_album_id",
            (chat_id, album_id, stamp),
        )
        return Album(album_id, chat_id, name, stamp, stamp)

    async def switch(self, chat_id: int, album_id: int) -> Album | None:
        """Make one of the chat's albums current; None if the chat has no such album."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                "SELECT * FROM albums WHERE id = ? AND chat_id = ?", (album_id, chat_id)
            )
            if row is None:
                return None
            await tx.execute(
                "INSERT INTO chats (chat_id, current_album_id, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (chat_id) DO UPDATE SET current_album_id = excluded.current_album_id",
                (chat_id, album_id, now_iso()),
            )
            return record(Album, row)

    async def rename(self, chat_id: int, album_id: int, name: str) -> bool:
        """Rename one of the chat's albums."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE albums SET name = ?, updated_at = ? WHERE id = ? AND chat_id = ?",
                (name, now_iso(), album_id, chat_id),
            )
        return changed > 0

    async def get(self, chat_id: int, album_id: int) -> Album | None:
        """One of the chat's albums by id."""
        row = await self.db.fetchone(
            "SELECT * FROM albums WHERE id = ? AND chat_id = ?", (album_id, chat_id)
        )
        return record(Album, row) if row else None

    async def summaries(self, chat_id: int) -> list[AlbumSummary]:
        """The chat's albums with their counts, newest first."""
        rows = await self.db.fetchall(
            _SUMMARY_SQL + " WHERE a.chat_id = ? ORDER BY a.id DESC", (chat_id,)
        )
        return [_summary(row) for row in rows]

    async def summary(self, chat_id: int, album_id: int) -> AlbumSummary | None:
        """One album with its counts."""
        row = await self.db.fetchone(
            _SUMMARY_SQL + " WHERE a.id = ? AND a.chat_id = ?", (album_id, chat_id)
        )
        return _summary(row) if row else None


def _summary(row: sqlite3.Row) -> AlbumSummary:
    return AlbumSummary(
        album=record(Album, row),
        photos=row["photos"],
        videos=row["videos"],
        notes=row["notes"],
        exchanges=row["exchanges"],
        voice_notes=row["audio"],
    )
