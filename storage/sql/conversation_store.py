"""The conversation about an album: each question stored with its complete answer."""

from __future__ import annotations

from sqlalchemy import BindParameter, Connection, bindparam, delete, select

from storage.records import Exchange, JobResult, NewExchange, now_iso
from storage.sql.database import Database
from storage.sql.media_store import _TOUCH_ALBUM
from storage.sql.result_store import record_in
from storage.sql.rows import every, one, record, run
from storage.sql.tables import exchanges

_ALBUM: BindParameter[int] = bindparam("album")
_ALL = select(exchanges).where(exchanges.c.album_id == _ALBUM).order_by(exchanges.c.id)
_LATEST = (
    select(exchanges).where(exchanges.c.album_id == _ALBUM).order_by(exchanges.c.id.desc()).limit(1)
)
_OF_JOB = (
    select(exchanges)
    .where(exchanges.c.job_id == bindparam("job"), exchanges.c.kind == bindparam("kind"))
    .order_by(exchanges.c.id.desc())
    .limit(1)
)
_INSERT = exchanges.insert().returning(exchanges.c.id)
_CLEAR = delete(exchanges).where(exchanges.c.album_id == _ALBUM)
_REMOVE = delete(exchanges).where(
    exchanges.c.album_id == _ALBUM, exchanges.c.id == bindparam("exchange")
)


class SqlConversationStore:
    """Exchanges of an album, in order."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def exchanges(self, album_id: int) -> list[Exchange]:
        """The album's conversation so far, oldest first."""
        return await self.db.read(_exchanges, album_id)

    async def add(self, new: NewExchange) -> Exchange:
        """Append a finished exchange (one transaction: question and answer land together)."""
        stamp = now_iso()
        exchange_id = await self.db.write(_add, new, stamp)
        return Exchange(
            exchange_id, new.album_id, new.kind, new.prompt, new.user_text, new.focus_item_id,
            new.answer_text, new.answer_content, new.sender_id, stamp, new.job_id,
        )  # fmt: skip

    async def clear(self, album_id: int) -> int:
        """Forget the album's conversation (the media stay); return how many exchanges went."""
        return await self.db.write(run, _CLEAR, {"album": album_id})

    async def latest(self, album_id: int) -> Exchange | None:
        """The album's most recent exchange."""
        return await self.db.read(_latest, album_id)

    async def answered(self, job_id: int, kind: str) -> Exchange | None:
        """The exchange of this kind a job recorded (its rerun reads the answer back)."""
        return await self.db.read(_answered, job_id, kind)

    async def remove(
        self, album_id: int, exchange_id: int, result: JobResult | None = None
    ) -> bool:
        """Delete one exchange of the album (and keep `result` in the same transaction)."""
        params = {"album": album_id, "exchange": exchange_id}
        return await self.db.write(_remove, params, result)


def _remove(conn: Connection, params: dict[str, int], result: JobResult | None) -> bool:
    removed = run(conn, _REMOVE, params) > 0
    if result is not None:
        record_in(conn, result)
    return removed


def _exchanges(conn: Connection, album_id: int) -> list[Exchange]:
    return [record(Exchange, row) for row in every(conn, _ALL, {"album": album_id})]


def _latest(conn: Connection, album_id: int) -> Exchange | None:
    row = one(conn, _LATEST, {"album": album_id})
    return record(Exchange, row) if row else None


def _answered(conn: Connection, job_id: int, kind: str) -> Exchange | None:
    row = one(conn, _OF_JOB, {"job": job_id, "kind": kind})
    return record(Exchange, row) if row else None


def _add(conn: Connection, new: NewExchange, stamp: str) -> int:
    values = {
        "album_id": new.album_id, "kind": new.kind, "prompt": new.prompt,
        "user_text": new.user_text, "focus_item_id": new.focus_item_id,
        "answer_text": new.answer_text, "answer_content": new.answer_content,
        "sender_id": new.sender_id, "created_at": stamp, "job_id": new.job_id,
    }  # fmt: skip
    exchange_id: int = conn.execute(_INSERT, values).scalar_one()
    conn.execute(_TOUCH_ALBUM, {"album": new.album_id, "stamp": stamp})
    return int(exchange_id)
