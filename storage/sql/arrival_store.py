"""Media files received and numbered, waiting for their download: the album's next items."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    Exists,
    Table,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)

from storage.jobs import Job, JobQueue
from storage.records import (
    AddOutcome,
    AddStatus,
    Album,
    Arrival,
    BurstCounting,
    CurrentAlbum,
    Media,
    MediaKind,
    Origin,
    Reservation,
    Reserved,
    from_iso,
    iso,
    now_iso,
)
from storage.sql import burst_store
from storage.sql.album_store import SqlAlbumStore
from storage.sql.database import Database
from storage.sql.rows import blob_rows, item, item_values, one, record
from storage.sql.tables import albums, arrivals, blobs, chats, items

_ALBUM: BindParameter[int] = bindparam("album")
_CHAT: BindParameter[int] = bindparam("chat")
_ARRIVAL: BindParameter[int] = bindparam("arrival")

# Taking the album's row first orders concurrent changes to one album (a row lock on
# PostgreSQL; SQLite's BEGIN IMMEDIATE has ordered them already).
_TOUCH_ALBUM = update(albums).where(albums.c.id == _ALBUM).values(updated_at=bindparam("stamp"))


def _seen(table: Table, message: bool) -> Exists:
    """Whether the album has the file (by Telegram's file_unique_id), from this message."""
    where = [table.c.album_id == _ALBUM, table.c.file_unique_id == bindparam("uniq")]
    if message:
        where.append(table.c.chat_message_id == bindparam("message"))
    return exists().where(*where)


# What numbering a file needs to know, in one trip: whether the album has it (and from this
# very message), how full the album is, and its last number.
_COUNTS = select(
    or_(_seen(items, False), _seen(arrivals, False)).label("known"),
    or_(_seen(items, True), _seen(arrivals, True)).label("again"),
    select(func.count()).where(items.c.album_id == _ALBUM).scalar_subquery().label("items"),
    select(func.count()).where(arrivals.c.album_id == _ALBUM).scalar_subquery().label("waiting"),
    func.coalesce(
        select(func.max(items.c.position)).where(items.c.album_id == _ALBUM).scalar_subquery(), 0
    ).label("top_item"),
    func.coalesce(
        select(func.max(arrivals.c.position))
        .where(arrivals.c.album_id == _ALBUM)
        .scalar_subquery(),
        0,
    ).label("top_arrival"),
)
# The chat's current album, touched (and locked) like _TOUCH_ALBUM: one statement.
_TOUCH_CURRENT = (
    update(albums)
    .where(
        albums.c.id
        == select(chats.c.current_album_id).where(chats.c.chat_id == _CHAT).scalar_subquery(),
        albums.c.chat_id == _CHAT,
    )
    .values(updated_at=bindparam("stamp"))
    .returning(*albums.c)
)
_INSERT = arrivals.insert().returning(arrivals.c.id)
_GET = select(arrivals).where(arrivals.c.id == _ARRIVAL)
_DROP = delete(arrivals).where(arrivals.c.id == _ARRIVAL).returning(*arrivals.c)
_BY_SOURCE = select(items).where(
    items.c.album_id == _ALBUM, items.c.source_sha256 == bindparam("sha")
)
_UNREADY = select(
    select(func.count()).where(arrivals.c.album_id == _ALBUM).scalar_subquery()
    + select(func.count())
    .where(items.c.album_id == _ALBUM, items.c.model_ready == 0, items.c.model_failed.is_(None))
    .scalar_subquery()
)


class SqlArrivalStore:
    """Numbers media files as they are received; their ingest jobs turn them into items."""

    def __init__(
        self, db: Database, jobs: JobQueue | None = None, albums: SqlAlbumStore | None = None
    ) -> None:
        self.db = db
        self.jobs = jobs
        self.albums = albums  # makes a chat's first album (`CurrentAlbum`)
        self._insert_blob = db.insert(blobs).on_conflict_do_nothing(index_elements=[blobs.c.sha256])
        self._insert_item = (
            db.insert(items)
            .on_conflict_do_nothing(index_elements=[items.c.album_id, items.c.source_sha256])
            .returning(*items.c)
        )

    async def reserve(
        self,
        album: int | CurrentAlbum,
        batch_id: int | None,
        kind: MediaKind,
        origin: Origin,
        file_size: int | None,
        max_items: int,
        then: Callable[[Arrival], Job] | None = None,
        burst: BurstCounting | None = None,
    ) -> Reserved:
        """Number a received file after the album's last item or arrival, and defer `then`'s
        job for it in the same transaction (received and numbered means its job exists); a
        file the album has (by Telegram's file_unique_id) or a full album gets no number.
        With `burst`, the same transaction opens or joins the chat's batch (`batch_id` is
        then the one it chose), counts the file or the repeat, and defers the burst's job.
        With a `CurrentAlbum`, the chat's current album is looked up (or made) in the same
        transaction, and returned with the outcome."""
        return await self.db.write(
            self._receive, album, batch_id, kind, origin, file_size, max_items, then, burst
        )

    def _receive(
        self,
        conn: Connection,
        album: int | CurrentAlbum,
        batch_id: int | None,
        kind: MediaKind,
        origin: Origin,
        file_size: int | None,
        max_items: int,
        then: Callable[[Arrival], Job] | None,
        burst: BurstCounting | None,
    ) -> Reserved:
        # The chat's burst lock first, then the album's row: every transaction that takes
        # both takes them in this order.
        now = at = 0.0
        if burst is not None:
            now = at = burst_store.lock_now_in(conn, burst.chat_id)
            # The burst is timed by when the file was received (it may be numbered later,
            # behind a backlog of updates), never by a time still to come.
            if burst.received_at is not None:
                at = min(now, burst.received_at)
        chosen: Album | None = None
        touched = False
        if isinstance(album, CurrentAlbum):
            chosen, touched = self._current(conn, album)
            album_id = chosen.id
        else:
            album_id = album
        if burst is None:
            reserved = self._reserve(
                conn, album_id, batch_id, kind, origin, file_size, max_items, then, touched
            )
            return replace(reserved, album=chosen)
        joined = burst_store.join_in(conn, burst.chat_id, album_id, burst.gap, at)
        reserved = self._reserve(
            conn, album_id, joined.batch_id, kind, origin, file_size, max_items, then, touched
        )
        reserved = replace(reserved, album=chosen)
        # Counted unless the album is full, or this very message was counted before (AGAIN).
        counted = {Reservation.RESERVED: kind, Reservation.REPEAT: "repeat"}.get(reserved.status)
        due = burst_store.count_joined(conn, joined, counted, burst.debounce, burst.language)
        if reserved.status is Reservation.FULL:
            return reserved
        if burst.then is not None:
            assert self.jobs is not None, "a job to defer needs the job queue"
            # When the acknowledgement is due: at once when the file waited that long already;
            # while more of the chat's updates wait, a debounce from now at the soonest (the
            # last of them brings it forward), not a run to find them waiting.
            ack = burst.then if due is None else replace(burst.then, delay=max(0.0, due - now))
            if ack.queueing_lock is None:
                self.jobs.defer_in(conn, ack)
            else:
                self.jobs.schedule_in(conn, ack, burst.updates_lock, hold=burst.debounce)
        return reserved

    def _reserve(
        self,
        conn: Connection,
        album_id: int,
        batch_id: int | None,
        kind: MediaKind,
        origin: Origin,
        file_size: int | None,
        max_items: int,
        then: Callable[[Arrival], Job] | None,
        touched: bool = False,
    ) -> Reserved:
        stamp = now_iso()
        if not touched:
            conn.execute(_TOUCH_ALBUM, {"album": album_id, "stamp": stamp})
        counts = one(
            conn,
            _COUNTS,
            {"album": album_id, "uniq": origin.file_unique_id, "message": origin.chat_message_id},
        )
        assert counts is not None
        if counts["known"]:
            return Reserved(Reservation.AGAIN if counts["again"] else Reservation.REPEAT)
        if counts["items"] + counts["waiting"] >= max_items:
            return Reserved(Reservation.FULL)
        position = max(int(counts["top_item"]), int(counts["top_arrival"])) + 1
        arrival_id: int = conn.execute(
            _INSERT,
            {
                "album_id": album_id,
                "batch_id": batch_id,
                "position": position,
                "kind": kind,
                "origin": _origin_json(origin),
                "file_unique_id": origin.file_unique_id,
                "chat_message_id": origin.chat_message_id,
                "file_size": file_size,
                "created_at": stamp,
            },
        ).scalar_one()
        arrival = Arrival(arrival_id, album_id, batch_id, position, kind, origin, file_size)
        if then is not None:
            assert self.jobs is not None, "a job to defer needs the job queue"
            self.jobs.defer_in(conn, then(arrival))
        return Reserved(Reservation.RESERVED, arrival)

    def _current(self, conn: Connection, wanted: CurrentAlbum) -> tuple[Album, bool]:
        """The chat's current album and whether its row was touched (locked) on the way."""
        row = one(conn, _TOUCH_CURRENT, {"chat": wanted.chat_id, "stamp": now_iso()})
        if row is not None:
            return record(Album, row), True
        assert self.albums is not None, "a chat's first album needs the album store"
        return self.albums.current_or_new_in(conn, wanted.chat_id, wanted.new_name), False

    async def get(self, arrival_id: int) -> Arrival | None:
        """A file still waiting for its download; None once settled or dropped."""
        return await self.db.read(_get, arrival_id)

    async def settle(self, arrival_id: int, media: Media) -> AddOutcome | None:
        """Make the downloaded file the album's item at its number, in one transaction with
        its blobs; DUPLICATE when the album holds these bytes already (the arrival goes);
        None when the arrival is gone (taken back, forgotten, or settled before)."""
        return await self.db.write(self._settle, arrival_id, media)

    def _settle(self, conn: Connection, arrival_id: int, media: Media) -> AddOutcome | None:
        row = one(conn, _DROP, {"arrival": arrival_id})
        if row is None:
            return None
        album_id = row["album_id"]
        stamp = now_iso()
        conn.execute(_TOUCH_ALBUM, {"album": album_id, "stamp": stamp})
        conn.execute(self._insert_blob, blob_rows(media, stamp))
        values = {
            "album_id": album_id,
            "batch_id": row["batch_id"],
            "position": row["position"],
            "created_at": stamp,
            **item_values(media),
        }
        added = conn.execute(self._insert_item, values).mappings().first()
        if added is not None:
            return AddOutcome(AddStatus.ADDED, item(added))
        existing = one(conn, _BY_SOURCE, {"album": album_id, "sha": media.source.sha256})
        assert existing is not None
        return AddOutcome(AddStatus.DUPLICATE, item(existing))

    async def drop(self, arrival_id: int) -> Arrival | None:
        """Give up a file that cannot be added (its number stays unused); None if gone."""
        return await self.db.write(_drop, arrival_id)

    async def unready(self, album_id: int) -> int:
        """How many of the album's files the model cannot see yet: waiting for their download,
        or for their model copy."""
        return await self.db.read(_unready, album_id)


def _origin_json(origin: Origin) -> str:
    values: dict[str, Any] = asdict(origin)
    values["message_date"] = iso(origin.message_date)
    return json.dumps(values)


def _arrival(row: Any) -> Arrival:
    values = json.loads(row["origin"])
    values["message_date"] = from_iso(values.get("message_date"))
    return Arrival(
        id=row["id"],
        album_id=row["album_id"],
        batch_id=row["batch_id"],
        position=row["position"],
        kind=row["kind"],
        origin=Origin(**values),
        file_size=row["file_size"],
    )


def _get(conn: Connection, arrival_id: int) -> Arrival | None:
    row = one(conn, _GET, {"arrival": arrival_id})
    return _arrival(row) if row else None


def _drop(conn: Connection, arrival_id: int) -> Arrival | None:
    row = one(conn, _DROP, {"arrival": arrival_id})
    return _arrival(row) if row else None


def _unready(conn: Connection, album_id: int) -> int:
    return int(conn.scalar(_UNREADY, {"album": album_id}) or 0)
