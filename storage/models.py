"""Plain records read from the database."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Self


def now_iso() -> str:
    """The current UTC time as stored in the database."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Row:
    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Self:
        keys = set(row.keys())
        values: dict[str, Any] = {f.name: row[f.name] for f in fields(cls) if f.name in keys}  # type: ignore[arg-type]
        return cls(**values)


@dataclass(frozen=True)
class Album(_Row):
    id: int
    chat_id: int
    name: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class AlbumSummary:
    """An album with its counts, for lists and acknowledgements."""

    album: Album
    photos: int
    videos: int
    notes: int
    exchanges: int

    @property
    def items(self) -> int:
        return self.photos + self.videos


@dataclass(frozen=True)
class Item(_Row):
    id: int
    album_id: int
    batch_id: int | None
    position: int
    kind: str
    source_sha256: str
    model_sha256: str
    model_mime_type: str
    file_unique_id: str | None
    file_id: str | None
    file_name: str | None
    mime_type: str | None
    caption: str | None
    chat_message_id: int | None
    media_group_id: str | None
    sender_id: int | None
    sender_name: str | None
    width: int | None
    height: int | None
    duration: float | None
    taken_at: str | None
    time_source: str | None
    latitude: float | None
    longitude: float | None
    altitude: float | None
    place: str | None
    camera: str | None
    message_date: str | None
    model_failed: str | None
    created_at: str
    telegram_type: str | None = None
    model_ready: int = 1

    @property
    def label(self) -> str:
        """How the item is named to the user and the model: 'photo 3', 'video 12'."""
        return f"{self.kind} {self.position}"


@dataclass(frozen=True)
class Note(_Row):
    id: int
    album_id: int
    batch_id: int | None
    text: str
    sender_id: int | None
    sender_name: str | None
    created_at: str


@dataclass(frozen=True)
class Exchange(_Row):
    id: int
    album_id: int
    kind: str
    prompt: str
    user_text: str | None
    focus_item_id: int | None
    answer_text: str
    answer_content: str | None
    sender_id: int | None
    created_at: str


@dataclass(frozen=True)
class Upload(_Row):
    sha256: str
    name: str
    uri: str
    mime_type: str
    expires_at: str
    created_at: str
