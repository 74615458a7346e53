"""Rows to records and back, and the statements several stores share."""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from typing import Any, TypeVar

from storage.records import Blob, Item, Media, MediaFacts, Origin, from_iso, iso
from storage.sqlite.db import Tx

T = TypeVar("T")

# The items table's columns for one Media, in insert order.
ITEM_COLUMNS = (
    "kind", "source_sha256", "source_size", "source_mime", "model_sha256", "model_size",
    "model_mime_type", "model_ready", "file_id", "file_unique_id", "file_name", "mime_type",
    "caption", "chat_message_id", "media_group_id", "sender_id", "sender_name", "message_date",
    "telegram_type", "taken_at", "time_source", "latitude", "longitude", "altitude", "camera",
    "width", "height", "duration", "place",
)  # fmt: skip
_ORIGIN = [f.name for f in fields(Origin) if f.name != "message_date"]
_FACTS = [f.name for f in fields(MediaFacts) if f.name != "taken_at"]


def record(cls: type[T], row: sqlite3.Row) -> T:
    """A flat record from a row with the same column names."""
    keys = set(row.keys())
    return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in keys})  # type: ignore[arg-type]


def item(row: sqlite3.Row) -> Item:
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


def item_values(media: Media) -> list[Any]:
    """The values of ITEM_COLUMNS for one media file."""
    o, f = media.origin, media.facts
    return [
        media.kind, media.source.sha256, media.source.size, media.source.mime_type,
        media.model.sha256, media.model.size, media.model.mime_type, int(media.model_ready),
        o.file_id, o.file_unique_id, o.file_name, o.mime_type, o.caption, o.chat_message_id,
        o.media_group_id, o.sender_id, o.sender_name, iso(o.message_date), o.telegram_type,
        iso(f.taken_at), f.time_source, f.latitude, f.longitude, f.altitude, f.camera,
        f.width, f.height, f.duration, f.place,
    ]  # fmt: skip


async def drop_orphan_blobs(tx: Tx, candidates: set[str]) -> list[str]:
    """Delete the blob rows among `candidates` that no item refers to any more; their hashes."""
    orphans = []
    for sha in sorted(candidates):
        used = await tx.fetchone(
            "SELECT 1 FROM items WHERE source_sha256 = ? OR model_sha256 = ? LIMIT 1", (sha, sha)
        )
        if used is None:
            await tx.execute("DELETE FROM blobs WHERE sha256 = ?", (sha,))
            orphans.append(sha)
    return orphans
