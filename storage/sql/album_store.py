"""Albums and each chat's current album."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    ScalarSelect,
    Table,
    bindparam,
    func,
    select,
    update,
)

from storage.records import Album, AlbumSummary, JobResult, now_iso
from storage.sql.database import Database
from storage.sql.result_store import record_in
from storage.sql.rows import Row, every, one, record
from storage.sql.tables import albums, arrivals, chats, exchanges, items, notes

DEFAULT_ALBUM_NAME = "My trip"
# The name a chat's first album gets, asked when it is made (the bot's says it in the chat's
# language).
NameFor = Callable[[], str]

_CHAT: BindParameter[int] = bindparam("chat")
_ALBUM: BindParameter[int] = bindparam("album")
_CURRENT = (
    select(albums)
    .join(chats, albums.c.id == chats.c.current_album_id)
    .where(chats.c.chat_id == _CHAT, albums.c.chat_id == _CHAT)
)
_LANGUAGE = select(chats.c.language).where(chats.c.chat_id == _CHAT)
_GET = select(albums).where(albums.c.id == _ALBUM, albums.c.chat_id == _CHAT)


def _count(table: Table, *where: ColumnElement[bool]) -> ScalarSelect[int]:
    return select(func.count()).where(table.c.album_id == albums.c.id, *where).scalar_subquery()


def _received(kind: str) -> ColumnElement[int]:
    """Items of a kind, counting the files received and numbered that wait for their download
    (received means kept: the acknowledgement and /albums count them at once)."""
    return _count(items, items.c.kind == kind) + _count(arrivals, arrivals.c.kind == kind)


_SUMMARY = select(
    albums,
    _received("photo").label("photos"),
    _received("video").label("videos"),
    _received("audio").label("audio"),
    _count(notes).label("notes"),
    _count(exchanges).label("exchanges"),
)
_SUMMARIES = _SUMMARY.where(albums.c.chat_id == _CHAT).order_by(albums.c.id.desc())
_ONE_SUMMARY = _SUMMARY.where(albums.c.id == _ALBUM, albums.c.chat_id == _CHAT)
_INSERT_ALBUM = albums.insert().returning(albums.c.id)
_RENAME = (
    update(albums)
    .where(albums.c.id == _ALBUM, albums.c.chat_id == _CHAT)
    .values(name=bindparam("name"), updated_at=bindparam("stamp"))
)


class SqlAlbumStore:
    """Chats' albums. Every lookup takes the chat id, so one chat can never reach another's."""

    def __init__(self, db: Database, new_album_name: NameFor = lambda: DEFAULT_ALBUM_NAME) -> None:
        self.db = db
        self.new_album_name = new_album_name
        # Sets a chat's current album; on PostgreSQL the row it leaves is locked until commit.
        upsert = db.insert(chats).values(
            chat_id=_CHAT, current_album_id=_ALBUM, created_at=bindparam("stamp")
        )
        self._set_current = upsert.on_conflict_do_update(
            index_elements=[chats.c.chat_id],
            set_={"current_album_id": upsert.excluded.current_album_id},
        )
        # Makes the chat's row exist (and, on PostgreSQL, locks it: one creator at a time).
        self._claim_chat = (
            db.insert(chats)
            .values(chat_id=_CHAT, current_album_id=None, created_at=bindparam("stamp"))
            .on_conflict_do_nothing(index_elements=[chats.c.chat_id])
        )
        self._lock_chat = select(chats.c.chat_id).where(chats.c.chat_id == _CHAT).with_for_update()
        language = db.insert(chats).values(
            chat_id=_CHAT, current_album_id=None, created_at=bindparam("stamp"),
            language=bindparam("language"),
        )  # fmt: skip
        self._set_language = language.on_conflict_do_update(
            index_elements=[chats.c.chat_id], set_={"language": language.excluded.language}
        )

    async def current(self, chat_id: int) -> Album:
        """The chat's current album, created on first use."""
        found = await self.db.read(_current, chat_id)
        if found is not None:
            return found
        # Named here, in the caller's task: the write may run in another thread.
        return await self.db.write(self._current_or_new, chat_id, self.new_album_name())

    def current_or_new_in(self, conn: Connection, chat_id: int, name: str) -> Album:
        """`current` inside the caller's transaction (another store's write)."""
        return self._current_or_new(conn, chat_id, name)

    def _current_or_new(self, conn: Connection, chat_id: int, name: str) -> Album:
        # Looked again, with the chat's row locked: another task or process may have won.
        stamp = now_iso()
        conn.execute(self._claim_chat, {"chat": chat_id, "stamp": stamp})
        conn.execute(self._lock_chat, {"chat": chat_id})
        return _current(conn, chat_id) or self._create(conn, chat_id, name)

    async def create(
        self, chat_id: int, name: str, result: Callable[[Album], JobResult] | None = None
    ) -> Album:
        """Start a new album and make it the chat's current one. `result`: what to keep of it
        under the job's id, in the same transaction."""
        return await self.db.write(self._create, chat_id, name, result)

    def _create(
        self,
        conn: Connection,
        chat_id: int,
        name: str,
        result: Callable[[Album], JobResult] | None = None,
    ) -> Album:
        stamp = now_iso()
        album_id: int = conn.execute(
            _INSERT_ALBUM, {"chat_id": chat_id, "name": name, "created_at": stamp,
                            "updated_at": stamp},
        ).scalar_one()  # fmt: skip
        conn.execute(self._set_current, {"chat": chat_id, "album": album_id, "stamp": stamp})
        album = Album(album_id, chat_id, name, stamp, stamp)
        if result is not None:
            record_in(conn, result(album))
        return album

    async def switch(self, chat_id: int, album_id: int) -> Album | None:
        """Make one of the chat's albums current; None if the chat has no such album."""
        return await self.db.write(self._switch, chat_id, album_id)

    def _switch(self, conn: Connection, chat_id: int, album_id: int) -> Album | None:
        row = one(conn, _GET, {"chat": chat_id, "album": album_id})
        if row is None:
            return None
        conn.execute(self._set_current, {"chat": chat_id, "album": album_id, "stamp": now_iso()})
        return record(Album, row)

    async def rename(self, chat_id: int, album_id: int, name: str) -> bool:
        """Rename one of the chat's albums."""
        return await self.db.write(_rename, chat_id, album_id, name)

    async def get(self, chat_id: int, album_id: int) -> Album | None:
        """One of the chat's albums by id."""
        return await self.db.read(_get, chat_id, album_id)

    async def summaries(self, chat_id: int) -> list[AlbumSummary]:
        """The chat's albums with their counts, newest first."""
        return await self.db.read(_summaries, chat_id)

    async def summary(self, chat_id: int, album_id: int) -> AlbumSummary | None:
        """One album with its counts."""
        return await self.db.read(_summary_of, chat_id, album_id)

    async def language(self, chat_id: int) -> str | None:
        """The language the chat chose (/language), or None when it chose none."""
        return await self.db.read(_language, chat_id)

    async def set_language(self, chat_id: int, language: str | None) -> None:
        """Keep the chat's language; None goes back to following the writer's."""
        params = {"chat": chat_id, "language": language, "stamp": now_iso()}
        await self.db.write(lambda conn: conn.execute(self._set_language, params))


def _language(conn: Connection, chat_id: int) -> str | None:
    row = one(conn, _LANGUAGE, {"chat": chat_id})
    return row["language"] if row else None


def _current(conn: Connection, chat_id: int) -> Album | None:
    row = one(conn, _CURRENT, {"chat": chat_id})
    return record(Album, row) if row else None


def _get(conn: Connection, chat_id: int, album_id: int) -> Album | None:
    row = one(conn, _GET, {"chat": chat_id, "album": album_id})
    return record(Album, row) if row else None


def _rename(conn: Connection, chat_id: int, album_id: int, name: str) -> bool:
    params = {"chat": chat_id, "album": album_id, "name": name, "stamp": now_iso()}
    return conn.execute(_RENAME, params).rowcount > 0


def _summaries(conn: Connection, chat_id: int) -> list[AlbumSummary]:
    return [_summary(row) for row in every(conn, _SUMMARIES, {"chat": chat_id})]


def _summary_of(conn: Connection, chat_id: int, album_id: int) -> AlbumSummary | None:
    row = one(conn, _ONE_SUMMARY, {"chat": chat_id, "album": album_id})
    return _summary(row) if row else None


def _summary(row: Row) -> AlbumSummary:
    return AlbumSummary(
        album=record(Album, row),
        photos=row["photos"],
        videos=row["videos"],
        notes=row["notes"],
        exchanges=row["exchanges"],
        voice_notes=row["audio"],
    )
