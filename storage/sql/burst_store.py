"""A chat's bursts and first-time hints as rows, timed by the database's clock.

Each method is one transaction that reads the clock once (`now_in`) and decides from the rows,
so replicas whose clocks disagree still agree on when a burst ended or an acknowledgement is
due. A chat's burst transactions run one at a time: SQLite's writes do anyway; on PostgreSQL a
transaction-scoped advisory lock per chat orders them (two replicas counting for one chat would
otherwise both start "the" current burst).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from storage.records import Burst, Failure, now_iso
from storage.sql.clock import now_in
from storage.sql.database import Database
from storage.sql.rows import Row
from storage.sql.tables import batches, bursts, hints

# A continuous burst is acknowledged at least every MAX_HOLD debounce intervals.
MAX_HOLD = 3
# Ended bursts wait until their last change is shown (or a late failure is named); a chat
# nobody acknowledges (a script driving the service directly) must not collect them forever.
MAX_ENDED_PER_CHAT = 8
HINT_RETENTION_SECONDS = 24 * 3600.0  # a hint older than any `quiet` is no use

COUNTERS = {
    "photo": "photos",
    "video": "videos",
    "audio": "voice_notes",
    "note": "notes",
    "repeat": "repeats",
}

_CHAT: BindParameter[int] = bindparam("chat")
_CURRENT = select(bursts).where(bursts.c.chat_id == _CHAT, bursts.c.ended == 0)
_ONE = select(bursts).where(bursts.c.chat_id == _CHAT, bursts.c.id == bindparam("burst"))
_UNSHOWN = (
    select(bursts)
    .where(bursts.c.chat_id == _CHAT, bursts.c.version > bursts.c.shown)
    .order_by(bursts.c.id)
)
_DUE = select(func.min(func.coalesce(bursts.c.quiet_until, 0.0))).where(
    bursts.c.chat_id == _CHAT, bursts.c.version > bursts.c.shown
)
_END = update(bursts).where(bursts.c.chat_id == _CHAT, bursts.c.ended == 0).values(ended=1)
_ENDED_BEYOND = (
    select(bursts.c.id)
    .where(bursts.c.chat_id == _CHAT, bursts.c.ended == 1)
    .order_by(bursts.c.id.desc())
    .offset(MAX_ENDED_PER_CHAT)
)
_DROP = delete(bursts).where(bursts.c.id.in_(bindparam("ids", expanding=True)))
_INSERT = insert(bursts).returning(bursts.c.id)
_SET = update(bursts).where(bursts.c.id == bindparam("burst_id"))
_END_BATCH = delete(bursts).where(bursts.c.chat_id == _CHAT, bursts.c.batch_id == bindparam("b"))
_FORGET = delete(bursts).where(bursts.c.chat_id == _CHAT)
_FORGET_HINTS = delete(hints).where(hints.c.chat_id == _CHAT)
_NEW_BATCH = insert(batches).returning(batches.c.id)
_TOLD = select(hints.c.told_at).where(hints.c.chat_id == _CHAT, hints.c.topic == bindparam("t"))
_OLD_HINTS = delete(hints).where(hints.c.chat_id == _CHAT, hints.c.told_at < bindparam("before"))
_PG_LOCK_CLASS = 0x6275  # "bu": the advisory locks of chats' bursts


class SqlBurstStore:
    """Bursts and hints in the `bursts` and `hints` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db
        told = db.insert(hints)
        self._tell = told.on_conflict_do_update(
            index_elements=[hints.c.chat_id, hints.c.topic],
            set_={"told_at": told.excluded.told_at},
        )

    async def batch(self, chat_id: int, album_id: int, gap: float) -> int:
        """The batch a new item or note of the album joins (opening one, and a burst, if the
        last is over); the burst's gap counts from now."""
        return await self.db.write(_batch, chat_id, album_id, gap)

    async def count(
        self,
        chat_id: int,
        album_id: int,
        batch_id: int | None,
        kind: str,
        *,
        debounce: float,
        gap: float,
        language: str | None = None,
    ) -> Burst:
        """Count a stored item, note or repeat in the chat's burst; the burst after it."""
        if kind not in COUNTERS:
            raise ValueError(f"unknown kind {kind!r}")
        return await self.db.write(
            _count, chat_id, album_id, batch_id, kind, debounce, gap, language
        )

    async def fail(
        self, chat_id: int, burst_id: int, name: str, reason: str, key: str | None = None
    ) -> bool:
        """Note a file of the burst that could not be added (once per `key`); False when the
        burst is gone."""
        return await self.db.write(_fail, chat_id, burst_id, name, reason, key)

    async def of_batch(self, chat_id: int, batch_id: int) -> int | None:
        """The latest burst of the chat that filled `batch_id`."""
        return await self.db.read(_of_batch, chat_id, batch_id)

    async def end(self, chat_id: int) -> None:
        """End the chat's burst (what it has not shown yet is still acknowledged)."""
        await self.db.write(_end, chat_id)

    async def end_batch(self, chat_id: int, batch_id: int) -> None:
        """Drop the burst of a batch taken back: it is never announced."""
        await self.db.write(_run, _END_BATCH, {"chat": chat_id, "b": batch_id})

    async def forget(self, chat_id: int) -> None:
        """Drop the chat's bursts and hints."""
        await self.db.write(_forget, chat_id)

    async def unshown(self, chat_id: int) -> list[Burst]:
        """The chat's bursts whose acknowledgement is behind, oldest first."""
        return await self.db.read(_unshown, chat_id)

    async def shown(
        self, chat_id: int, burst_id: int, version: int, message_id: int | None
    ) -> None:
        """Record that the acknowledgement of `version` went out as `message_id`."""
        await self.db.write(_shown, chat_id, burst_id, version, message_id)

    async def due(self, chat_id: int) -> float | None:
        """Seconds until the chat's acknowledgement is due; None when none is behind."""
        return await self.db.read(_due, chat_id)

    async def first_time(self, chat_id: int, topic: str, quiet: float) -> bool:
        """Whether the chat has not heard of `topic` for `quiet` seconds; it hears of it now."""
        return await self.db.write(self._first_time, chat_id, topic, quiet)

    def _first_time(self, conn: Connection, chat_id: int, topic: str, quiet: float) -> bool:
        now = _lock_now(conn, chat_id)
        last = conn.execute(_TOLD, {"chat": chat_id, "t": topic}).scalar()
        conn.execute(self._tell, {"chat_id": chat_id, "topic": topic, "told_at": now})
        conn.execute(_OLD_HINTS, {"chat": chat_id, "before": now - HINT_RETENTION_SECONDS})
        return last is None or now - float(last) >= quiet


_LOCK = text("SELECT pg_advisory_xact_lock(:cls, :key)")
# The lock, then the clock once it is held: one trip (the CTE's row exists only once the lock
# is taken, and the clock is read for that row).
_LOCK_NOW = text(
    "WITH held AS MATERIALIZED (SELECT pg_advisory_xact_lock(:cls, :key))"
    " SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION) FROM held"
)


def _lock(conn: Connection, chat_id: int) -> None:
    """One burst transaction of a chat at a time (SQLite's BEGIN IMMEDIATE does it already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK, _lock_key(chat_id))


def _lock_now(conn: Connection, chat_id: int) -> float:
    """`_lock`, then the database's time now (in the same trip on PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return float(conn.execute(_LOCK_NOW, _lock_key(chat_id)).scalar_one())
    return now_in(conn)


# For a store whose transaction takes the chat's burst lock before its own rows' locks.
lock_now_in = _lock_now


def _lock_key(chat_id: int) -> dict[str, int]:
    return {"cls": _PG_LOCK_CLASS, "key": chat_id % 2**31}  # two chats may share: no harm


@dataclass(frozen=True)
class Joined:
    """The burst a received item joins, in the transaction that counts it (`count_joined`)."""

    batch_id: int
    row: dict[str, Any]  # the burst's row as it will be, but for the count
    now: float
    written: bool  # a burst just started: its row says so already


def join_in(
    conn: Connection, chat_id: int, album_id: int, gap: float, now: float | None = None
) -> Joined:
    """The batch a new item of the album joins (opening one, and a burst, if the last is
    over), left for `count_joined` to write in the same transaction; `now` when the caller
    took the chat's lock already (`lock_now_in`)."""
    if now is None:
        now = _lock_now(conn, chat_id)
    current = conn.execute(_CURRENT, {"chat": chat_id}).mappings().first()
    if current is not None and current["album_id"] == album_id and now - current["last"] < gap:
        batch_id = current["batch_id"]
        if batch_id is None:  # it held only repeats: the first new item opens its batch
            batch_id = _new_batch(conn, album_id)
        last = max(now, float(current["last"]))  # (an item received before the last counted)
        return Joined(int(batch_id), {**current, "batch_id": batch_id, "last": last}, now, False)
    batch_id = _new_batch(conn, album_id)
    return Joined(batch_id, _start(conn, chat_id, album_id, batch_id, now), now, True)


def count_joined(
    conn: Connection,
    joined: Joined,
    kind: str | None,
    debounce: float,
    language: str | None,
) -> float | None:
    """Write the joined burst, counting `kind` (an item, or "repeat") unless None (a full
    album, or a message counted before): one statement. When its acknowledgement is due
    (None: nothing is behind)."""
    values: dict[str, Any] = {}
    if not joined.written:
        values.update(batch_id=joined.batch_id, last=joined.row["last"])
    if kind is not None:
        values.update(_counted(joined.row, kind, joined.now, debounce, language))
    if values:
        conn.execute(_SET, {"burst_id": joined.row["id"], **values})
    due = values.get("quiet_until", joined.row.get("quiet_until"))
    return float(due) if due is not None else None


def _batch(conn: Connection, chat_id: int, album_id: int, gap: float) -> int:
    joined = join_in(conn, chat_id, album_id, gap)
    count_joined(conn, joined, None, 0.0, None)
    return joined.batch_id


def _count(
    conn: Connection,
    chat_id: int,
    album_id: int,
    batch_id: int | None,
    kind: str,
    debounce: float,
    gap: float,
    language: str | None,
) -> Burst:
    now = _lock_now(conn, chat_id)
    row: dict[str, Any] | None = None
    found = conn.execute(_CURRENT, {"chat": chat_id}).mappings().first()
    if found is not None and _joins(found, album_id, batch_id, now, gap):
        row = dict(found)
    else:
        row = _start(conn, chat_id, album_id, batch_id, now)
    values = _counted(row, kind, now, debounce, language)
    if batch_id is not None:
        values["batch_id"] = batch_id
    conn.execute(_SET, {"burst_id": row["id"], **values})
    return _burst({**row, **values})


def _counted(
    row: Row | dict[str, Any], kind: str, now: float, debounce: float, language: str | None
) -> dict[str, Any]:
    """The burst's changed values once `kind` is counted in it."""
    counter = COUNTERS[kind]
    pending_since = row["pending_since"] if row["pending_since"] is not None else now
    return {
        counter: row[counter] + 1,
        "version": row["version"] + 1,
        "language": language,
        "pending_since": pending_since,
        # Due a quiet `debounce` from now, but news is never held back longer than a few.
        "quiet_until": min(now + debounce, pending_since + MAX_HOLD * debounce),
    }


def _joins(row: Row, album_id: int, batch_id: int | None, now: float, gap: float) -> bool:
    """Whether what was stored in `batch_id` counts in the burst under way."""
    if row["album_id"] != album_id:
        return False
    if batch_id is None:  # a repeat, which opens no batch: the burst if it is not over
        return bool(now - row["last"] < gap)
    return row["batch_id"] in (None, batch_id)  # `batch` chose it


def _fail(
    conn: Connection, chat_id: int, burst_id: int, name: str, reason: str, key: str | None
) -> bool:
    now = _lock_now(conn, chat_id)
    row = conn.execute(_ONE, {"chat": chat_id, "burst": burst_id}).mappings().first()
    if row is None:
        return False
    noted = json.loads(row["failures"])
    if key is not None and any(f.get("key") == key for f in noted):
        return True  # named already (the job that named it runs again)
    version = row["version"] + 1
    failure = {"name": name, "reason": reason, "v": version}
    if key is not None:
        failure["key"] = key
    failures = [*noted, failure]
    behind = row["version"] > row["shown"] and row["quiet_until"] is not None
    conn.execute(
        _SET,
        {
            "burst_id": burst_id,
            "version": version,
            "failures": json.dumps(failures, ensure_ascii=False),
            "pending_since": row["pending_since"] if row["pending_since"] is not None else now,
            "quiet_until": row["quiet_until"] if behind else now,  # news already due waits on
        },
    )
    return True


_OF_BATCH = (
    select(bursts.c.id)
    .where(bursts.c.chat_id == _CHAT, bursts.c.batch_id == bindparam("b"))
    .order_by(bursts.c.id.desc())
    .limit(1)
)


def _of_batch(conn: Connection, chat_id: int, batch_id: int) -> int | None:
    found = conn.execute(_OF_BATCH, {"chat": chat_id, "b": batch_id}).scalar()
    return int(found) if found is not None else None


def _end(conn: Connection, chat_id: int) -> None:
    conn.execute(_END, {"chat": chat_id})
    beyond: list[int] = list(conn.execute(_ENDED_BEYOND, {"chat": chat_id}).scalars())
    if beyond:
        conn.execute(_DROP, {"ids": beyond})


def _start(
    conn: Connection, chat_id: int, album_id: int, batch_id: int | None, now: float
) -> dict[str, Any]:
    """End the chat's burst, if any, and start one: its row."""
    _end(conn, chat_id)
    values: dict[str, Any] = {
        "chat_id": chat_id,
        "album_id": album_id,
        "batch_id": batch_id,
        **dict.fromkeys(COUNTERS.values(), 0),
        "failures": "[]",
        "version": 0,
        "shown": 0,
        "started": now,
        "last": now,
        "ended": 0,
    }
    burst_id = int(conn.execute(_INSERT, values).scalar_one())
    return {**values, "id": burst_id, "message_id": None, "language": None,
            "pending_since": None, "quiet_until": None}  # fmt: skip


def _new_batch(conn: Connection, album_id: int) -> int:
    return int(
        conn.execute(_NEW_BATCH, {"album_id": album_id, "created_at": now_iso()}).scalar_one()
    )


def _run(conn: Connection, statement: Any, params: dict[str, Any]) -> None:
    conn.execute(statement, params)


def _forget(conn: Connection, chat_id: int) -> None:
    conn.execute(_FORGET, {"chat": chat_id})
    conn.execute(_FORGET_HINTS, {"chat": chat_id})


def _unshown(conn: Connection, chat_id: int) -> list[Burst]:
    return [_burst(row) for row in conn.execute(_UNSHOWN, {"chat": chat_id}).mappings()]


def _shown(
    conn: Connection, chat_id: int, burst_id: int, version: int, message_id: int | None
) -> None:
    _lock(conn, chat_id)
    row = conn.execute(_ONE, {"chat": chat_id, "burst": burst_id}).mappings().first()
    if row is None:
        return
    shown = max(row["shown"], version)
    caught_up = shown >= row["version"]
    failures = [f for f in json.loads(row["failures"]) if f["v"] > version]
    values: dict[str, Any] = {
        "burst_id": burst_id,
        "message_id": message_id,
        "shown": shown,
        "failures": json.dumps(failures, ensure_ascii=False),
    }
    if caught_up:
        values.update(pending_since=None, quiet_until=None)
    conn.execute(_SET, values)


def _due(conn: Connection, chat_id: int) -> float | None:
    due = conn.execute(_DUE, {"chat": chat_id}).scalar()
    if due is None:
        return None
    return max(0.0, float(due) - now_in(conn))


def _burst(row: Row | dict[str, Any]) -> Burst:
    return Burst(
        id=int(row["id"]),
        album_id=int(row["album_id"]),
        batch_id=row["batch_id"],
        last=float(row["last"]),
        photos=row["photos"],
        videos=row["videos"],
        voice_notes=row["voice_notes"],
        notes=row["notes"],
        repeats=row["repeats"],
        message_id=row["message_id"],
        version=row["version"],
        shown=row["shown"],
        failures=tuple(
            Failure(f["name"], f["reason"], f["v"]) for f in json.loads(row["failures"])
        ),
        language=row["language"],
        chat_id=int(row["chat_id"]),
        started=float(row["started"]),
        quiet_until=row["quiet_until"],
        pending_since=row["pending_since"],
        ended=bool(row["ended"]),
    )
