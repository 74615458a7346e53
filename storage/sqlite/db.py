"""The one SQLite connection: opened at start-up, closed at shutdown, one transaction per change."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from storage.sqlite.migrations import apply_migrations

Params = Iterable[Any] | Mapping[str, Any]


def _bind(params: Params) -> tuple[Any, ...] | Mapping[str, Any]:
    return params if isinstance(params, Mapping) else tuple(params)


class Database:
    """A single aiosqlite connection shared by the whole process.

    aiosqlite runs one connection on one thread, but tasks interleave at every await: without the
    lock, a statement of task B could land inside task A's open transaction. Every access goes
    through the lock, so each change is one transaction nobody else can see half-done.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Open the file (creating it), switch to WAL and run pending migrations."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        # WAL + synchronous=NORMAL: a committed row survives a killed process (only a power cut
        # can lose the last transactions), and readers never block the writer.
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=5000")
        self._conn = conn
        async with self.transaction() as tx:
            await apply_migrations(tx)

    async def close(self) -> None:
        """Close the connection; safe to call twice."""
        if self._conn is not None:
            async with self._lock:
                await self._conn.close()
                self._conn = None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("The database is not open.")
        return self._conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """One atomic change: BEGIN IMMEDIATE ... COMMIT, rolled back if the block raises."""
        async with self._lock:
            conn = self.conn
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(conn)
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            else:
                await conn.execute("COMMIT")

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One change made by a single statement, atomic on its own (no BEGIN/COMMIT trips)."""
        async with self._lock:
            cur = await self.conn.execute(sql, _bind(params))
            return int(cur.rowcount)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Run a read query and return every row."""
        async with self._lock:
            return await _fetchall(self.conn, sql, _bind(params))

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """Run a read query and return its first row, if any."""
        async with self._lock:
            rows = await _fetchall(self.conn, sql, _bind(params))
            return rows[0] if rows else None


class Tx:
    """The statements of one open transaction."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run a statement; return lastrowid (for INSERT) or the number of changed rows."""
        # One trip to the connection's thread: a statement that returns no rows is complete once
        # executed, so its cursor needs no closing trip of its own.
        cur = await self._conn.execute(sql, tuple(params))
        if sql.lstrip().upper().startswith("INSERT"):
            return int(cur.lastrowid or 0)
        return int(cur.rowcount)

    async def executescript(self, sql: str) -> None:
        """Run several statements (migrations only); stays inside the transaction."""
        for statement in _split_statements(sql):
            await self._conn.execute(statement)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Read inside the transaction."""
        return await _fetchall(self._conn, sql, tuple(params))

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        """Read one row inside the transaction."""
        rows = await _fetchall(self._conn, sql, tuple(params))
        return rows[0] if rows else None


async def _fetchall(
    conn: aiosqlite.Connection, sql: str, params: tuple[Any, ...] | Mapping[str, Any]
) -> list[sqlite3.Row]:
    """Execute and fetch in one trip to the connection's thread (not three: execute, fetch,
    close). Under load every trip waits for a turn of the event loop while the lock is held."""
    rows = await conn.execute_fetchall(sql, params)
    return list(rows)  # sqlite3.Row, by the row_factory


def _split_statements(script: str) -> list[str]:
    """Split a migration script into statements (sqlite3.complete_statement knows about quotes)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
