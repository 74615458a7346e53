"""The storage engines the contract suite runs against: one entry per engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from storage.protocols import Storage
from storage.sql import open_postgres, open_sqlite
from tests import pg_server


@asynccontextmanager
async def sqlite_storage(root: Path) -> AsyncIterator[Storage]:
    """The embedded engine: a SQLite file and a media folder under `root`."""
    storage = await open_sqlite(root / "photostory.sqlite3", root)
    try:
        yield storage
    finally:
        await storage.close()


@asynccontextmanager
async def postgres_storage(root: Path) -> AsyncIterator[Storage]:
    """A fresh database on the session's PostgreSQL server; media under `root`."""
    storage = await open_postgres(pg_server.shared().new_database(), root)
    try:
        yield storage
    finally:
        await storage.close()


BACKENDS: dict[str, Callable[[Path], AbstractAsyncContextManager[Storage]]] = {
    "sqlite": sqlite_storage,
    "postgres": postgres_storage,
}
