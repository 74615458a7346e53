"""Each album's context cache at the model service (cachedContents)."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, delete, select

from storage.records import CachedContext, now_iso
from storage.sql.database import Database
from storage.sql.rows import every, one, record, run
from storage.sql.tables import albums, context_caches

_COLUMNS = (
    context_caches.c.name,
    context_caches.c.key,
    context_caches.c.expires_at,
    context_caches.c.tokens,
)
_GET = select(*_COLUMNS).where(context_caches.c.album_id == bindparam("album"))
_FOR_CHAT = (
    select(*_COLUMNS)
    .join(albums, albums.c.id == context_caches.c.album_id)
    .where(albums.c.chat_id == bindparam("chat"))
    .order_by(context_caches.c.album_id)
)
_DROP = delete(context_caches).where(context_caches.c.album_id == bindparam("album"))


class SqlContextCacheStore:
    """One cache per album; its row goes with the album (ON DELETE CASCADE)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        put = db.insert(context_caches)
        self._put = put.on_conflict_do_update(
            index_elements=[context_caches.c.album_id],
            set_={name: put.excluded[name] for name in
                  ("name", "key", "expires_at", "tokens", "created_at")},
        )  # fmt: skip

    async def get(self, album_id: int) -> CachedContext | None:
        """The album's recorded cache, if any."""
        return await self.db.read(_get, album_id)

    async def put(self, album_id: int, cache: CachedContext) -> None:
        """Record (or replace) the album's cache."""
        values = {"album_id": album_id, "name": cache.name, "key": cache.key,
                  "expires_at": cache.expires_at, "tokens": cache.tokens,
                  "created_at": now_iso()}  # fmt: skip
        await self.db.write(run, self._put, values)

    async def drop(self, album_id: int) -> None:
        """Forget the album's cache."""
        await self.db.write(run, _DROP, {"album": album_id})

    async def for_chat(self, chat_id: int) -> list[CachedContext]:
        """The caches of all the chat's albums."""
        return await self.db.read(_for_chat, chat_id)


def _get(conn: Connection, album_id: int) -> CachedContext | None:
    row = one(conn, _GET, {"album": album_id})
    return record(CachedContext, row) if row else None


def _for_chat(conn: Connection, chat_id: int) -> list[CachedContext]:
    return [record(CachedContext, row) for row in every(conn, _FOR_CHAT, {"chat": chat_id})]
