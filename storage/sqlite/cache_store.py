"""Each album's context cache at the model service (cachedContents), in SQLite."""

from __future__ import annotations

from storage.records import CachedContext, now_iso
from storage.sqlite.db import Database


class SqliteContextCacheStore:
    """One cache per album; its row goes with the album (ON DELETE CASCADE)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, album_id: int) -> CachedContext | None:
        """The album's recorded cache, if any."""
        row = await self.db.fetchone(
            "SELECT name, key, expires_at, tokens FROM context_caches WHERE album_id = ?",
            (album_id,),
        )
        return CachedContext(row[0], row[1], row[2], row[3]) if row else None

    async def put(self, album_id: int, cache: CachedContext) -> None:
        """Record (or replace) the album's cache."""
        await self.db.execute(
            "INSERT INTO context_caches (album_id, name, key, expires_at, tokens, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (album_id) DO UPDATE SET"
            " name = excluded.name, key = excluded.key, expires_at = excluded.expires_at,"
            " tokens = excluded.tokens, created_at = excluded.created_at",
            (album_id, cache.name, cache.key, cache.expires_at, cache.tokens, now_iso()),
        )

    async def drop(self, album_id: int) -> None:
        """Forget the album's cache."""
        await self.db.execute("DELETE FROM context_caches WHERE album_id = ?", (album_id,))

    async def for_chat(self, chat_id: int) -> list[CachedContext]:
        """The caches of all the chat's albums."""
        rows = await self.db.fetchall(
            "SELECT c.name, c.key, c.expires_at, c.tokens FROM context_caches c"
            " JOIN albums a ON a.id = c.album_id WHERE a.chat_id = ? ORDER BY c.album_id",
            (chat_id,),
        )
        return [CachedContext(r[0], r[1], r[2], r[3]) for r in rows]
