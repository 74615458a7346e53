"""Token usage of every model call, per user and chat."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import BigInteger, Connection, Row, bindparam, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from storage.records import UsageRecord, UsageTotals, now_iso
from storage.sql.database import Database
from storage.sql.rows import run
from storage.sql.tables import usage as usage_rows


class _AudioTokens(FunctionElement[int]):
    """Prompt tokens the API counted as AUDIO, read from the per-call JSON object by modality."""

    type = BigInteger()
    inherit_cache = True
    name = "audio_tokens"


@compiles(_AudioTokens, "sqlite")
def _audio_sqlite(element: _AudioTokens, compiler: SQLCompiler, **kw: Any) -> str:
    return "json_extract(usage.by_modality, '$.AUDIO')"


@compiles(_AudioTokens, "postgresql")
def _audio_postgres(element: _AudioTokens, compiler: SQLCompiler, **kw: Any) -> str:
    return "CAST(CAST(usage.by_modality AS json) ->> 'AUDIO' AS BIGINT)"


_SINCE = usage_rows.c.created_at >= bindparam("since")
_SUMS = (
    func.count().label("calls"),
    func.coalesce(func.sum(usage_rows.c.prompt_tokens), 0).label("p"),
    func.coalesce(func.sum(usage_rows.c.output_tokens + usage_rows.c.thinking_tokens), 0).label(
        "o"
    ),
    func.coalesce(func.sum(usage_rows.c.total_tokens), 0).label("t"),
    func.coalesce(func.sum(_AudioTokens()), 0).label("a"),
    func.coalesce(func.sum(usage_rows.c.cached_tokens), 0).label("c"),
)
_USER_TOTALS = select(*_SUMS).where(usage_rows.c.user_id == bindparam("user"), _SINCE)
_PER_USER = (
    select(usage_rows.c.user_id, *_SUMS)
    .where(_SINCE)
    .group_by(usage_rows.c.user_id)
    .order_by(_SUMS[3].desc())
)
_INSERT = usage_rows.insert()


class SqlUsageStore:
    """Appends usage rows and sums them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, usage: UsageRecord) -> None:
        """Store one call's usage."""
        t = usage.tokens
        values = {
            "user_id": usage.user_id, "chat_id": usage.chat_id, "album_id": usage.album_id,
            "kind": usage.kind, "model": usage.model, "prompt_tokens": t.prompt,
            "output_tokens": t.output, "thinking_tokens": t.thinking, "cached_tokens": t.cached,
            "total_tokens": t.total, "by_modality": json.dumps(t.by_modality),
            "created_at": now_iso(),
        }  # fmt: skip
        await self.db.write(run, _INSERT, values)

    async def user_totals(self, user_id: int, since_iso: str) -> UsageTotals:
        """One user's usage since a UTC time."""
        return await self.db.read(_user_totals, user_id, since_iso)

    async def per_user(self, since_iso: str) -> list[tuple[int | None, UsageTotals]]:
        """Every user's usage since a UTC time, biggest first."""
        return await self.db.read(_per_user, since_iso)


def _totals(row: Row[Any]) -> UsageTotals:
    calls, p, o, t, a, c = tuple(row)[-6:]
    # PostgreSQL sums 64-bit columns as numeric: whole numbers either way.
    return UsageTotals(
        int(calls), int(p), int(o), int(t), audio_tokens=int(a), cached_tokens=int(c)
    )


def _user_totals(conn: Connection, user_id: int, since_iso: str) -> UsageTotals:
    return _totals(conn.execute(_USER_TOTALS, {"user": user_id, "since": since_iso}).one())


def _per_user(conn: Connection, since_iso: str) -> list[tuple[int | None, UsageTotals]]:
    rows = conn.execute(_PER_USER, {"since": since_iso})
    return [(row[0], _totals(row)) for row in rows]
