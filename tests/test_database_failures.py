"""Which failures of the database pass (`storage.sql.database.passing`): the update's job runs
such an update again instead of apologising; a mistake in a statement is not one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import exc, text

from storage.sql.database import SqliteDatabase, passing


def test_busy_lost_and_exhausted_pass_and_mistakes_do_not() -> None:
    locked = sqlite3.OperationalError("database is locked")
    assert passing(locked)
    assert passing(exc.OperationalError("BEGIN IMMEDIATE", {}, locked))
    assert passing(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert passing(psycopg.errors.SerializationFailure("could not serialize access"))
    assert passing(exc.TimeoutError("QueuePool limit of size 10 overflow 0 reached"))
    assert not passing(sqlite3.OperationalError("no such table: items"))
    assert not passing(psycopg.errors.UndefinedTable('relation "items" does not exist'))
    assert not passing(exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE")))
    assert not passing(ValueError("a bug"))


async def test_a_write_another_connection_holds_the_lock_against_passes(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "busy.sqlite3")
    await db.open()
    locker = sqlite3.connect(tmp_path / "busy.sqlite3", isolation_level=None)
    try:
        locker.execute("PRAGMA busy_timeout = 0")
        await db.write(lambda conn: conn.execute(text("CREATE TABLE t (n INTEGER)")))
        await db.write(lambda conn: conn.execute(text("PRAGMA busy_timeout = 50")))  # not 5 s
        locker.execute("BEGIN IMMEDIATE")
        with pytest.raises(Exception) as failed:
            await db.write(lambda conn: conn.execute(text("INSERT INTO t VALUES (1)")))
        assert passing(failed.value), repr(failed.value)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
        await db.close()
