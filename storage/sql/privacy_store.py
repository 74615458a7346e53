"""Deleting everything a chat left behind, in one transaction."""

from __future__ import annotations

from sqlalchemy import (
    BindParameter,
    Connection,
    ScalarSelect,
    Table,
    bindparam,
    delete,
    func,
    select,
    update,
)

from storage.records import ChatFootprint, Forgotten
from storage.sql.database import Database
from storage.sql.rows import drop_orphan_blobs
from storage.sql.tables import albums, bursts, chats, exchanges, hints, items, notes, usage

_CHAT: BindParameter[int] = bindparam("chat")


def _in_chat(table: Table) -> ScalarSelect[int]:
    return (
        select(func.count())
        .select_from(table.join(albums, albums.c.id == table.c.album_id))
        .where(albums.c.chat_id == _CHAT)
        .scalar_subquery()
    )


_FOOTPRINT = select(
    select(func.count()).where(albums.c.chat_id == _CHAT).scalar_subquery(),
    _in_chat(items),
    _in_chat(notes),
    _in_chat(exchanges),
    select(func.count()).where(usage.c.chat_id == _CHAT).scalar_subquery(),
)
_CHAT_BLOBS = (
    select(items.c.source_sha256, items.c.model_sha256)
    .join(albums, albums.c.id == items.c.album_id)
    .where(albums.c.chat_id == _CHAT)
)
# Items, notes, batches and exchanges go with their albums (ON DELETE CASCADE).
_DELETE_ALBUMS = delete(albums).where(albums.c.chat_id == _CHAT)
_DELETE_CHAT = delete(chats).where(chats.c.chat_id == _CHAT)
# Bursts name failed files; neither they nor hints are worth keeping for a forgotten chat.
_DELETE_BURSTS = delete(bursts).where(bursts.c.chat_id == _CHAT)
_DELETE_HINTS = delete(hints).where(hints.c.chat_id == _CHAT)
# Token counts stay for budgets and totals, but no longer say which chat, album or kind of
# request they came from.
_ANONYMISE = (
    update(usage)
    .where(usage.c.chat_id == _CHAT)
    .values(chat_id=0, album_id=None, kind="forgotten", by_modality=None)
)


class SqlPrivacyStore:
    """A chat's footprint, and wiping it."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def footprint(self, chat_id: int) -> ChatFootprint:
        """Counts of what the bot holds for the chat."""
        return await self.db.read(_footprint, chat_id)

    async def forget(self, chat_id: int) -> Forgotten:
        """Delete the chat's albums, items, notes, conversation and usage detail."""
        return await self.db.write(_forget, chat_id)


def _footprint(conn: Connection, chat_id: int) -> ChatFootprint:
    row = conn.execute(_FOOTPRINT, {"chat": chat_id}).one()
    return ChatFootprint(*(int(n) for n in row))


def _forget(conn: Connection, chat_id: int) -> Forgotten:
    footprint = _footprint(conn, chat_id)
    params = {"chat": chat_id}
    shas = {sha for row in conn.execute(_CHAT_BLOBS, params) for sha in row}
    conn.execute(_DELETE_ALBUMS, params)
    conn.execute(_DELETE_CHAT, params)
    conn.execute(_DELETE_BURSTS, params)
    conn.execute(_DELETE_HINTS, params)
    conn.execute(_ANONYMISE, params)
    return Forgotten(footprint, drop_orphan_blobs(conn, shas))
