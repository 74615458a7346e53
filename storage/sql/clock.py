"""The database's clock: one time for every replica, whatever their own clocks say."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Double, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class db_now(FunctionElement[float]):  # an SQL function, named like one
    """Now on the database's clock, in seconds since the epoch."""

    type = Double()
    inherit_cache = True
    name = "db_now"


@compiles(db_now, "sqlite")
def _now_sqlite(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(db_now, "postgresql")
def _now_postgres(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


_NOW = select(db_now())


def now_in(conn: Connection) -> float:
    """The database's time now, read inside the caller's transaction."""
    return float(conn.execute(_NOW).scalar_one())
