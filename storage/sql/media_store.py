"""Media items, the blobs behind them, the traveller's notes and their batches."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BindParameter,
    Connection,
    Executable,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    select,
    union,
    update,
)

from storage.records import AddOutcome, AddStatus, Item, JobResult, Media, Note, Removed, now_iso
from storage.sql.database import Database, Rollback
from storage.sql.result_store import record_in
from storage.sql.rows import (
    ITEM_COLUMNS,
    Params,
    blob_rows,
    drop_orphan_blobs,
    every,
    item,
    item_values,
    one,
    record,
    run,
    uses,
)
from storage.sql.tables import albums, arrivals, batches, blobs, items, notes

_ALBUM: BindParameter[int] = bindparam("album")
_ITEM: BindParameter[int] = bindparam("item")

# For a file about to be downloaded: the item already made from it, and the album's count.
_ARRIVAL = (
    select(items, select(func.count()).where(items.c.album_id == _ALBUM)
           .scalar_subquery().label("album_items"))
    .select_from(select(literal(1)).subquery())
    .outerjoin(items, (items.c.album_id == _ALBUM) & (items.c.file_unique_id == bindparam("uniq")))
    .limit(1)
)  # fmt: skip
# Taking the album's row first orders concurrent adds to one album (a row lock on PostgreSQL;
# SQLite's BEGIN IMMEDIATE has already ordered them); rolled back with the rest if nothing is added.
_TOUCH_ALBUM = update(albums).where(albums.c.id == _ALBUM).values(updated_at=bindparam("stamp"))
_ITEMS = select(items).where(items.c.album_id == _ALBUM).order_by(items.c.position)
_BY_SOURCE = select(items).where(
    items.c.album_id == _ALBUM, items.c.source_sha256 == bindparam("sha")
)
_BY_MESSAGE = (
    select(items)
    .join(albums, albums.c.id == items.c.album_id)
    .where(albums.c.chat_id == bindparam("chat"), items.c.chat_message_id == bindparam("message"))
    .order_by(items.c.id.desc())
    .limit(1)
)
_GET = select(items).where(items.c.album_id == _ALBUM, items.c.id == _ITEM)
_SET_CAPTION = update(items).where(items.c.id == _ITEM).values(caption=bindparam("caption"))
_PENDING = (
    select(items)
    .where(items.c.model_ready == 0, items.c.model_failed.is_(None))
    .order_by(items.c.id)
)
_PENDING_OF_CHAT = _PENDING.where(
    items.c.album_id.in_(select(albums.c.id).where(albums.c.chat_id == bindparam("chat")))
)
_ITEM_EXISTS = select(items.c.id).where(items.c.id == _ITEM).with_for_update()
_SET_MODEL = (
    update(items)
    .where(items.c.id == _ITEM)
    .values(model_sha256=bindparam("sha"), model_size=bindparam("size"),
            model_mime_type=bindparam("mime"), model_ready=1)
)  # fmt: skip
_USED = union(select(items.c.source_sha256), select(items.c.model_sha256))
_IS_USED = select(uses(bindparam("sha")))
_MARK_FAILED = update(items).where(items.c.id == _ITEM).values(model_failed=bindparam("reason"))
_INSERT_NOTE = notes.insert().returning(notes.c.id)
_NOTES = select(notes).where(notes.c.album_id == _ALBUM).order_by(notes.c.id)
_INSERT_BATCH = batches.insert().returning(batches.c.id)
_BATCH_ALBUM = (
    select(batches.c.album_id)
    .join(albums, albums.c.id == batches.c.album_id)
    .where(batches.c.id == bindparam("batch"), albums.c.chat_id == bindparam("chat"))
)
_LATEST_BATCH = (
    select(batches.c.id, batches.c.created_at)
    .where(
        batches.c.album_id == _ALBUM,
        exists().where(items.c.batch_id == batches.c.id)
        | exists().where(notes.c.batch_id == batches.c.id),
    )
    .order_by(batches.c.id.desc())
    .limit(1)
)
_IN_BATCH = (items.c.album_id == _ALBUM) & (items.c.batch_id == bindparam("batch"))
_NOTE_IN_BATCH = (notes.c.album_id == _ALBUM) & (notes.c.batch_id == bindparam("batch"))
_BATCH_ITEMS = select(items).where(_IN_BATCH).order_by(items.c.position)
_BATCH_NOTES = select(notes).where(_NOTE_IN_BATCH).order_by(notes.c.id)
_DELETE_BATCH_ITEMS = delete(items).where(_IN_BATCH)
_DELETE_BATCH_NOTES = delete(notes).where(_NOTE_IN_BATCH)
_DELETE_BATCH_ARRIVALS = delete(arrivals).where(
    arrivals.c.album_id == _ALBUM, arrivals.c.batch_id == bindparam("batch")
)


class SqlMediaStore:
    """Items of albums. Callers pass the album id they got for their own chat."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._insert_blob = db.insert(blobs).on_conflict_do_nothing(index_elements=[blobs.c.sha256])
        # Numbered after the album's last item, unless the album is full or already holds
        # these bytes (then no row comes back): one statement, whoever else is adding.
        # After the album's files received and still waiting too (they hold their numbers).
        waiting_top = func.coalesce(
            select(func.max(arrivals.c.position))
            .where(arrivals.c.album_id == _ALBUM)
            .scalar_subquery(),
            0,
        )
        item_top = func.coalesce(func.max(items.c.position), 0)
        counts = (
            select(func.count().label("n"),
                   case((item_top > waiting_top, item_top), else_=waiting_top).label("top"))
            .where(items.c.album_id == _ALBUM)
            .subquery()
        )  # fmt: skip
        given = ["album_id", "batch_id", *ITEM_COLUMNS, "created_at"]
        source = select(
            *(bindparam(name, type_=items.c[name].type) for name in given), counts.c.top + 1
        ).where(counts.c.n < bindparam("max_items"))
        self._insert_item = (
            db.insert(items)
            .from_select([*given, "position"], source)
            .on_conflict_do_nothing(index_elements=[items.c.album_id, items.c.source_sha256])
            .returning(*items.c)
        )

    async def arrival(self, album_id: int, file_unique_id: str | None) -> tuple[Item | None, int]:
        """For a file about to be downloaded: the album's item already made from it (by
        Telegram's file_unique_id), and how many items the album holds. One query."""
        return await self.db.read(_arrival, album_id, file_unique_id)

    async def add(
        self, album_id: int, batch_id: int | None, media: Media, max_items: int
    ) -> AddOutcome:
        """Store an item and its blobs in one transaction; a repeat of a stored file is a no-op."""
        return await self.db.write(self._add, album_id, batch_id, media, max_items)

    def _add(
        self, conn: Connection, album_id: int, batch_id: int | None, media: Media, max_items: int
    ) -> AddOutcome:
        stamp = now_iso()
        conn.execute(_TOUCH_ALBUM, {"album": album_id, "stamp": stamp})
        conn.execute(self._insert_blob, blob_rows(media, stamp))
        params = {"album": album_id, "album_id": album_id, "batch_id": batch_id,
                  "created_at": stamp, "max_items": max_items, **item_values(media)}  # fmt: skip
        added = conn.execute(self._insert_item, params).mappings().first()
        if added is not None:
            return AddOutcome(AddStatus.ADDED, item(added))
        existing = one(conn, _BY_SOURCE, {"album": album_id, "sha": media.source.sha256})
        # Rolls the album's time and the blob rows back.
        if existing is not None:
            raise Rollback(AddOutcome(AddStatus.DUPLICATE, item(existing)))
        raise Rollback(AddOutcome(AddStatus.FULL, None))

    async def items(self, album_id: int) -> list[Item]:
        """The album's items in the order they were added."""
        return await self.db.read(_items_of, _ITEMS, {"album": album_id})

    async def by_message(self, chat_id: int, message_id: int) -> Item | None:
        """The item a chat message carried (for replies to a photo), in any of the chat's albums."""
        return await self.db.read(_item_of, _BY_MESSAGE, {"chat": chat_id, "message": message_id})

    async def get(self, album_id: int, item_id: int) -> Item | None:
        """One item of the album."""
        return await self.db.read(_item_of, _GET, {"album": album_id, "item": item_id})

    async def set_caption(self, item_id: int, caption: str | None) -> None:
        """Replace an item's caption."""
        await self.db.write(run, _SET_CAPTION, {"item": item_id, "caption": caption})

    async def pending_copies(self, chat_id: int | None = None) -> list[Item]:
        """Photos whose model copy has not been made yet (left by a restart, or by a replica
        that held the chat before), oldest first; of one chat's albums when given."""
        if chat_id is None:
            return await self.db.read(_items_of, _PENDING, {})
        return await self.db.read(_items_of, _PENDING_OF_CHAT, {"chat": chat_id})

    async def set_model_copy(self, item_id: int, sha256: str, size: int, mime_type: str) -> bool:
        """Point an item at its model copy; False if the item is gone (taken back meanwhile)."""
        return await self.db.write(self._set_model_copy, item_id, sha256, size, mime_type)

    def _set_model_copy(
        self, conn: Connection, item_id: int, sha256: str, size: int, mime_type: str
    ) -> bool:
        if conn.execute(_ITEM_EXISTS, {"item": item_id}).first() is None:
            return False
        blob = {"sha256": sha256, "size": size, "mime_type": mime_type, "created_at": now_iso()}
        conn.execute(self._insert_blob, blob)
        conn.execute(_SET_MODEL, {"item": item_id, "sha": sha256, "size": size, "mime": mime_type})
        return True

    async def used_blobs(self) -> set[str]:
        """Every blob some item refers to."""
        return await self.db.read(_used)

    async def is_blob_used(self, sha256: str) -> bool:
        """Whether any item still refers to a blob."""
        return await self.db.read(_is_used, sha256)

    async def mark_model_failed(self, item_id: int, reason: str) -> None:
        """Remember that the model service could not process this item."""
        await self.db.write(run, _MARK_FAILED, {"item": item_id, "reason": reason})

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
        values = {
            "album_id": album_id, "batch_id": batch_id, "text": text, "sender_id": sender_id,
            "sender_name": sender_name, "created_at": stamp,
        }  # fmt: skip
        note_id = await self.db.write(_add_note, values)
        return Note(note_id, album_id, batch_id, text, sender_id, sender_name, stamp)

    async def notes(self, album_id: int) -> list[Note]:
        """The album's notes, oldest first."""
        return await self.db.read(_notes, album_id)

    # Batches -----------------------------------------------------------------------------

    async def new_batch(self, album_id: int) -> int:
        """Open a batch: the media and notes one acknowledgement message will cover."""
        return await self.db.write(_new_batch, album_id)

    async def batch_album(self, chat_id: int, batch_id: int) -> int | None:
        """The album id of one of the chat's batches, None if the chat has no such batch."""
        return await self.db.read(_batch_album, chat_id, batch_id)

    async def latest_batch(self, album_id: int) -> tuple[int, str] | None:
        """The album's most recent batch that still holds something: (id, created_at)."""
        return await self.db.read(_latest_batch, album_id)

    async def remove_batch(
        self,
        album_id: int,
        batch_id: int,
        result: Callable[[Removed], JobResult | None] | None = None,
    ) -> Removed:
        """Delete a batch's items and notes; return them and the blobs nothing uses any more.
        `result`: what to keep of it under the job's id, in the same transaction (None:
        nothing)."""
        return await self.db.write(_remove_batch, album_id, batch_id, result)


def _arrival(conn: Connection, album_id: int, unique: str | None) -> tuple[Item | None, int]:
    row = one(conn, _ARRIVAL, {"album": album_id, "uniq": unique})
    assert row is not None  # the outer join always gives one row
    return (item(row) if row["id"] is not None else None), int(row["album_items"])


def _items_of(conn: Connection, query: Executable, params: Params) -> list[Item]:
    return [item(row) for row in every(conn, query, params)]


def _item_of(conn: Connection, query: Executable, params: Params) -> Item | None:
    row = one(conn, query, params)
    return item(row) if row else None


def _used(conn: Connection) -> set[str]:
    return {str(sha) for sha in conn.scalars(_USED)}


def _is_used(conn: Connection, sha256: str) -> bool:
    return bool(conn.scalar(_IS_USED, {"sha": sha256}))


def _add_note(conn: Connection, values: Params) -> int:
    note_id: int = conn.execute(_INSERT_NOTE, values).scalar_one()
    conn.execute(_TOUCH_ALBUM, {"album": values["album_id"], "stamp": values["created_at"]})
    return int(note_id)


def _notes(conn: Connection, album_id: int) -> list[Note]:
    return [record(Note, row) for row in every(conn, _NOTES, {"album": album_id})]


def _new_batch(conn: Connection, album_id: int) -> int:
    return int(conn.execute(_INSERT_BATCH, {"album_id": album_id, "created_at": now_iso()})
               .scalar_one())  # fmt: skip


def _batch_album(conn: Connection, chat_id: int, batch_id: int) -> int | None:
    found = conn.scalar(_BATCH_ALBUM, {"chat": chat_id, "batch": batch_id})
    return int(found) if found is not None else None


def _latest_batch(conn: Connection, album_id: int) -> tuple[int, str] | None:
    row = one(conn, _LATEST_BATCH, {"album": album_id})
    return (int(row["id"]), str(row["created_at"])) if row else None


def _remove_batch(
    conn: Connection,
    album_id: int,
    batch_id: int,
    result: Callable[[Removed], JobResult | None] | None,
) -> Removed:
    params = {"album": album_id, "batch": batch_id}
    removed = [item(row) for row in every(conn, _BATCH_ITEMS, params)]
    gone_notes = [record(Note, row) for row in every(conn, _BATCH_NOTES, params)]
    conn.execute(_DELETE_BATCH_ITEMS, params)
    conn.execute(_DELETE_BATCH_NOTES, params)
    conn.execute(_DELETE_BATCH_ARRIVALS, params)  # their ingest jobs then find nothing to do
    shas = {i.media.source.sha256 for i in removed} | {i.media.model.sha256 for i in removed}
    gone = Removed(removed, gone_notes, drop_orphan_blobs(conn, shas))
    kept = result(gone) if result is not None else None
    if kept is not None:
        record_in(conn, kept)
    return gone
