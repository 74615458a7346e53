"""Rows to records and back, and the statements several stores share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import Connection, Executable, Exists, RowMapping, bindparam, delete, exists, or_

from storage.records import Blob, Item, Media, MediaFacts, Origin, from_iso, iso
from storage.sql.tables import blobs, items

T = TypeVar("T")
Row = RowMapping
Params = Mapping[str, Any]

# The items table's columns for one Media.
ITEM_COLUMNS = (
    "kind", "source_sha256", "source_size", "source_mime", "model_sha256", "model_size",
    "model_mime_type", "model_ready", "file_id", "file_unique_id", "file_name", "mime_type",
    "caption", "chat_message_id", "media_group_id", "sender_id", "sender_name", "message_date",
    "telegram_type", "taken_at", "time_source", "latitude", "longitude", "altitude", "camera",
    "width", "height", "duration", "place",
)  # fmt: skip
_ORIGIN = [f.name for f in fields(Origin) if f.name != "message_date"]
_FACTS = [f.name for f in fields(MediaFacts) if f.name != "taken_at"]


def record(cls: type[T], row: Row) -> T:
    """A flat record from a row with the same column names."""
    return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row})  # type: ignore[arg-type]


def item(row: Row) -> Item:
    """An item from its row in `items`."""
    media = Media(
        kind=row["kind"],
        source=Blob(row["source_sha256"], row["source_size"], row["source_mime"]),
        model=Blob(row["model_sha256"], row["model_size"], row["model_mime_type"]),
        origin=Origin(
            **{name: row[name] for name in _ORIGIN}, message_date=from_iso(row["message_date"])
        ),
        facts=MediaFacts(
            **{name: row[name] for name in _FACTS}, taken_at=from_iso(row["taken_at"])
        ),
        model_ready=bool(row["model_ready"]),
    )
    return Item(
        id=row["id"],
        album_id=row["album_id"],
        batch_id=row["batch_id"],
        position=row["position"],
        media=media,
        created_at=row["created_at"],
        model_failed=row["model_failed"],
    )


def item_values(media: Media) -> dict[str, Any]:
    """The values of ITEM_COLUMNS for one media file."""
    o, f = media.origin, media.facts
    values = (
        media.kind, media.source.sha256, media.source.size, media.source.mime_type,
        media.model.sha256, media.model.size, media.model.mime_type, int(media.model_ready),
        o.file_id, o.file_unique_id, o.file_name, o.mime_type, o.caption, o.chat_message_id,
        o.media_group_id, o.sender_id, o.sender_name, iso(o.message_date), o.telegram_type,
        iso(f.taken_at), f.time_source, f.latitude, f.longitude, f.altitude, f.camera,
        f.width, f.height, f.duration, f.place,
    )  # fmt: skip
    return dict(zip(ITEM_COLUMNS, values, strict=True))


def blob_rows(media: Media, stamp: str) -> list[dict[str, Any]]:
    """The `blobs` rows of a media file's original and model copy (one when they are the
    same), in hash order: two transactions that share blobs lock them in the same order."""
    unique = {b.sha256: b for b in (media.source, media.model)}.values()
    return [
        {"sha256": b.sha256, "size": b.size, "mime_type": b.mime_type, "created_at": stamp}
        for b in sorted(unique, key=lambda b: b.sha256)
    ]


def uses(sha: Any) -> Exists:
    """Whether an item refers to the blob `sha` (a column or a bound value)."""
    return exists().where(or_(items.c.source_sha256 == sha, items.c.model_sha256 == sha))


# The blob rows among some candidates that no item refers to any more: deleted, hashes back.
_DROP_ORPHANS = (
    delete(blobs)
    .where(blobs.c.sha256.in_(bindparam("shas", expanding=True)), ~uses(blobs.c.sha256))
    .returning(blobs.c.sha256)
)


def drop_orphan_blobs(conn: Connection, candidates: set[str]) -> list[str]:
    """Delete the blob rows among `candidates` that no item refers to; their hashes, sorted."""
    if not candidates:
        return []
    return sorted(conn.scalars(_DROP_ORPHANS, {"shas": sorted(candidates)}))


def one(conn: Connection, statement: Executable, params: Params | None = None) -> Row | None:
    """The first row of a query, as a mapping."""
    return conn.execute(statement, params).mappings().first()


def every(conn: Connection, statement: Executable, params: Params | None = None) -> list[Row]:
    """Every row of a query, as mappings."""
    return list(conn.execute(statement, params).mappings())


def run(conn: Connection, statement: Executable, params: Params | None = None) -> int:
    """Run a change; how many rows it changed."""
    return int(conn.execute(statement, params).rowcount)
