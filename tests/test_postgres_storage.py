"""What only the PostgreSQL engine does: its migrations, and two processes starting at once.

The behaviour every engine shares is in test_storage_contract.py; this file also checks that
both engines' migrations leave exactly the columns `storage.sql.tables` describes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Column, Text, text

from storage.sql import open_postgres, open_sqlite, tables
from storage.sql.database import PostgresDatabase
from storage.sql.database import postgres_url as postgres_url_for
from storage.sql.migrations import MIGRATIONS, Migrator


def _pg(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        cursor = conn.execute(sql)  # type: ignore[arg-type]
        return list(cursor) if cursor.description else []


def _pg_columns(url: str) -> dict[str, set[str]]:
    # procrastinate's tables (m012) are its own, described by its frozen schema, not tables.py.
    found: dict[str, set[str]] = {}
    for table, column in _pg(
        url,
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name NOT LIKE 'procrastinate%'",
    ):
        found.setdefault(str(table), set()).add(str(column))
    return found


def _sqlite_columns(path: Path) -> dict[str, set[str]]:
    with sqlite3.connect(path) as conn:
        # sqlite_sequence is SQLite's own (the AUTOINCREMENT counters), not a table of ours.
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            if not r[0].startswith("sqlite_")
        ]
        return {n: {r[1] for r in conn.execute(f"PRAGMA table_info({n})")} for n in names}


def _described() -> dict[str, set[str]]:
    return {t.name: {c.name for c in t.columns} for t in tables.metadata.tables.values()}


async def test_two_processes_starting_at_once_migrate_once(
    postgres_url: str, tmp_path: Path
) -> None:
    first, second = await asyncio.gather(
        open_postgres(postgres_url, tmp_path / "a"), open_postgres(postgres_url, tmp_path / "b")
    )
    await first.close()
    await second.close()
    again = await open_postgres(postgres_url, tmp_path / "a")
    await again.close()
    await again.close()  # safe twice
    names = [r[0] for r in _pg(postgres_url, "SELECT name FROM _migrations ORDER BY name")]
    assert names == sorted(name for name, _ in MIGRATIONS)


async def test_both_engines_migrate_to_the_columns_the_queries_use(
    postgres_url: str, tmp_path: Path
) -> None:
    await (await open_postgres(postgres_url, tmp_path)).close()
    await (await open_sqlite(tmp_path / "db.sqlite3", tmp_path)).close()
    assert _pg_columns(postgres_url) == _described()
    assert _sqlite_columns(tmp_path / "db.sqlite3") == _described()


async def test_postgresql_admits_voice_notes_and_refuses_other_kinds(postgres_url: str,
                                                                     tmp_path: Path) -> None:  # fmt: skip
    await (await open_postgres(postgres_url, tmp_path)).close()
    _pg(
        postgres_url,
        "INSERT INTO albums (chat_id, name, created_at, updated_at) VALUES (1, 'a', 'x', 'x');"
        "INSERT INTO blobs VALUES ('s', 1, 'audio/ogg', 'x')",
    )
    insert = (
        "INSERT INTO items (album_id, position, kind, source_sha256, model_sha256,"
        " model_mime_type, created_at) VALUES (1, {n}, '{kind}', 's', 's', 'audio/ogg', 'x')"
    )
    _pg(postgres_url, insert.format(n=1, kind="audio"))
    with pytest.raises(psycopg.errors.CheckViolation):
        _pg(postgres_url, insert.format(n=2, kind="sticker"))


async def test_a_migration_appended_later_runs_on_both_engines(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await (await open_postgres(postgres_url, tmp_path)).close()
    await (await open_sqlite(tmp_path / "db.sqlite3", tmp_path)).close()

    def m999_item_mood(m: Migrator) -> None:
        m.add_column("items", Column("mood", Text, nullable=False, server_default="calm"))

    monkeypatch.setattr(
        "storage.sql.migrations.MIGRATIONS", [*MIGRATIONS, ("m999", m999_item_mood)]
    )
    await (await open_postgres(postgres_url, tmp_path)).close()
    await (await open_sqlite(tmp_path / "db.sqlite3", tmp_path)).close()
    assert "mood" in _pg_columns(postgres_url)["items"]
    assert "mood" in _sqlite_columns(tmp_path / "db.sqlite3")["items"]
    assert ("m999",) in _pg(postgres_url, "SELECT name FROM _migrations")
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        assert conn.execute("SELECT 1 FROM _migrations WHERE name = 'm999'").fetchone()


async def test_a_pooled_connection_dropped_while_idle_is_replaced_before_it_is_used(
    postgres_url: str,
) -> None:
    # A restarted server or a dropped connection: the next checkout after a quiet moment pings
    # and takes a new connection, and the caller never sees the dead one.
    db = PostgresDatabase(postgres_url_for(postgres_url), ping_after_idle=0.0)
    await db.open()
    try:
        first = await db.read(lambda conn: conn.execute(text("SELECT pg_backend_pid()")).scalar())
        _pg(postgres_url, f"SELECT pg_terminate_backend({first})")
        second = await db.read(lambda conn: conn.execute(text("SELECT pg_backend_pid()")).scalar())
        assert second != first
    finally:
        await db.close()


async def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(
    postgres_url: str,
) -> None:
    # Under a burst a ping at every checkout was one trip in six of a photo's.
    pings: list[object] = []
    for idle, expected in ((60.0, 0), (0.0, 3)):
        db = PostgresDatabase(postgres_url_for(postgres_url), ping_after_idle=idle)
        await db.open()
        try:
            dialect = db._engine.sync_engine.dialect
            ping = dialect.do_ping
            dialect.do_ping = lambda conn, ping=ping: pings.append(conn) or ping(conn)  # type: ignore[method-assign]
            pings.clear()
            for _ in range(4):  # one connection, taken four times: three after its first use
                await db.read(lambda conn: conn.execute(text("SELECT 1")).scalar())
            assert len(pings) == expected, idle
        finally:
            await db.close()
