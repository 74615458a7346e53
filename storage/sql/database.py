"""Where statements run: one SQLite file on a thread of its own, or a PostgreSQL pool.

Stores are written once, as plain functions of a SQLAlchemy `Connection`; a `Database` runs
such a function as one transaction and hands back its result:

- SQLite: one connection, opened at start-up on a thread of its own, and every function runs
  there whole, so a change of several statements is a single trip to that thread and no other
  change can land inside it (the thread takes one function at a time). Writes begin with
  `BEGIN IMMEDIATE`: the write lock is taken up front, never half-way through.
- PostgreSQL: psycopg 3 through SQLAlchemy's asyncio engine, a small pool; the same functions
  run through `AsyncConnection.run_sync`. Row locks (`with_for_update`, or an UPDATE first)
  make concurrent changes of one album wait for each other.

The engines' few differences in SQL are here too (`Database.insert`), so the stores never ask
which engine they are on.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypeVar

from sqlalchemy import Connection, Table, create_engine, event, exc
from sqlalchemy.dialects import sqlite
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from storage.jobs import Attempt, current_attempt

if TYPE_CHECKING:  # PostgreSQL's modules (dialect, asyncio, psycopg) load only when used
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.ext.asyncio import AsyncEngine

P = ParamSpec("P")
T = TypeVar("T")
Work = Callable[Concatenate[Connection, P], T]
Engine = Literal["sqlite", "postgresql"]

# WAL + synchronous=NORMAL: a committed row survives a killed process (only a power cut can lose
# the last transactions), and readers never block the writer.
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


class Rollback(Exception):
    """Raised by a store function to undo its transaction and still return `value`."""

    def __init__(self, value: Any = None) -> None:
        super().__init__()
        self.value = value


class Database(ABC):
    """Runs store functions, each as one transaction, on one engine."""

    engine: Engine

    @abstractmethod
    async def open(self) -> None:
        """Connect."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect; safe to call twice."""

    @abstractmethod
    async def read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `work`, which only reads: on SQLite in one transaction; on PostgreSQL each
        statement on its own, which under READ COMMITTED sees what it would inside one."""

    @abstractmethod
    async def write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `work` as one atomic change: committed if it returns, rolled back if it raises."""

    def insert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """An INSERT with this engine's ON CONFLICT clauses (`on_conflict_do_nothing`, ...)."""
        if self.engine == "sqlite":
            return sqlite.insert(table)
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)


@dataclass
class _Call:
    """A function for the SQLite thread, and where its result goes."""

    work: Callable[..., Any]
    args: tuple[Any, ...]
    writes: bool | None  # None: no transaction (connecting, closing), run alone
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]

    @property
    def alone(self) -> bool:
        return self.writes is None


class SqliteDatabase(Database):
    """One SQLite connection on its own thread, for the life of the process.

    Calls that queue up while the thread is busy run together, as one transaction (a group
    commit): each in a savepoint of its own, so one that fails or rolls back undoes only its
    own changes, and every result is handed back once that transaction committed. Under a
    burst this is one commit and one trip to and from the thread for a dozen changes instead
    of a dozen; alone, a call runs as before.
    """

    engine: Engine = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread: threading.Thread | None = None
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._conn: Connection | None = None
        self._begin = "BEGIN"
        self._sa = create_engine(f"sqlite:///{path}", poolclass=NullPool)
        event.listen(self._sa, "connect", _sqlite_connected)
        # pysqlite's own transaction handling is off (isolation_level=None, above): SQLAlchemy's
        # begin says BEGIN, or BEGIN IMMEDIATE for a write, itself.
        event.listen(self._sa, "begin", self._began)

    def _began(self, conn: Connection) -> None:
        # Straight to sqlite3, as SQLAlchemy's own recipe does through exec_driver_sql: it is
        # said before every call of the bot, and the shortcut saves a tenth of a call's CPU.
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.execute(self._begin).close()

    async def open(self) -> None:
        """Create the file if needed and connect, on the connection's thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._calls = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._serve, name=f"sqlite-{self.path.name}", daemon=True
        )
        self._thread.start()
        self._conn = await self._submit(_connect, (self._sa,), None)

    async def close(self) -> None:
        """Close the connection and stop its thread; safe to call twice."""
        thread, conn = self._thread, self._conn
        if thread is None:
            return
        if conn is not None:
            await self._submit(_disconnect, (conn,), None)
        self._thread, self._conn = None, None
        self._calls.put(None)
        await asyncio.to_thread(thread.join)
        self._sa.dispose()

    async def read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `work` in a transaction: one consistent view (no write lock unless it shares
        its transaction with writes, see the class)."""
        return await self._submit(functools.partial(work, **kwargs), args, False)

    async def write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `work` between BEGIN IMMEDIATE and COMMIT."""
        call = functools.partial(_fenced, current_attempt(), work, **kwargs)
        return await self._submit(call, args, True)

    async def _submit(
        self, work: Callable[..., T], args: tuple[Any, ...], writes: bool | None
    ) -> T:
        # writes None: not a transaction (connecting, closing), run alone.
        if self._thread is None:
            raise RuntimeError("The database is not open.")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put(_Call(work, args, writes, loop, future))
        return await future

    def _serve(self) -> None:
        """The connection's thread: take what is queued, run it, hand the results back."""
        calls = self._calls
        held: list[_Call | None] = []  # taken off the queue, for the next turn
        while True:
            first = held.pop() if held else calls.get()
            if first is None:
                return  # closed
            batch = [first]
            while not first.alone and len(batch) < GROUP_LIMIT:
                try:
                    more = calls.get_nowait()
                except queue.Empty:
                    break
                if more is None or more.alone:  # the end, or a call that runs alone: next
                    held.append(more)
                    break
                batch.append(more)
            try:
                outcomes = self._run_batch(batch)
            except BaseException as failed:  # the thread must live on: its callers wait
                outcomes = [(None, failed) for _ in batch]
            _deliver(batch, outcomes)

    def _run_batch(self, batch: list[_Call]) -> list[tuple[Any, BaseException | None]]:
        if batch[0].alone:
            return [_outcome(batch[0].work, *batch[0].args)]
        conn = self._conn
        if conn is None:
            return [(None, RuntimeError("The database is not open.")) for _ in batch]
        # Read by _began: this thread runs one transaction at a time.
        self._begin = "BEGIN IMMEDIATE" if any(call.writes for call in batch) else "BEGIN"
        if len(batch) == 1:
            return [_outcome(_transaction, conn, batch[0])]
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            with conn.begin():
                for call in batch:
                    outcomes.append(_outcome(_transaction, conn, call, True))
        except Exception as failed:  # the commit itself: nothing of the batch is kept
            return [(None, failed) for _ in batch]
        return outcomes


GROUP_LIMIT = 64  # calls at most in one transaction


def passing(error: BaseException) -> bool:
    """Whether a failure of the database passes: SQLite busy (another connection held the write
    lock past the busy timeout), a PostgreSQL connection lost, a serialization failure or
    deadlock, the pool exhausted. The same work tried again later can succeed; a mistake in a
    statement cannot, and is not one."""
    if isinstance(error, exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig if error.orig is not None else error
    if isinstance(error, sqlite3.OperationalError):
        return any(word in str(error).lower() for word in ("locked", "busy"))
    if type(error).__module__.startswith("psycopg"):
        import psycopg  # only PostgreSQL's errors come from it

        # Connections lost, serialization failures and deadlocks (TransactionRollback).
        return isinstance(error, psycopg.OperationalError)
    return False


def _connect(engine: Any) -> Connection:
    return engine.connect()  # type: ignore[no-any-return]


def _disconnect(conn: Connection) -> None:
    conn.close()


def _transaction(conn: Connection, call: _Call, nested: bool = False) -> Any:
    """Run a call in a transaction, or in a savepoint of the one under way (`nested`)."""
    try:
        with conn.begin_nested() if nested else conn.begin():
            return call.work(conn, *call.args)
    except Rollback as undone:
        return undone.value


def _outcome(fn: Callable[..., Any], *args: Any) -> tuple[Any, BaseException | None]:
    try:
        return fn(*args), None
    except Exception as failed:
        return None, failed


def _deliver(batch: list[_Call], outcomes: list[tuple[Any, BaseException | None]]) -> None:
    """Hand the results back on each caller's event loop, one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Call, Any, BaseException | None]]] = {}
    for call, (value, error) in zip(batch, outcomes, strict=True):
        by_loop.setdefault(call.loop, []).append((call, value, error))
    for loop, results in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, results)
        except RuntimeError:  # that loop is closed: nobody waits any more
            pass


def _settle(results: list[tuple[_Call, Any, BaseException | None]]) -> None:
    for call, value, error in results:
        if call.future.done():  # the caller gave up waiting (cancelled)
            continue
        if error is not None:
            call.future.set_exception(error)
        else:
            call.future.set_result(value)


def _sqlite_connected(dbapi_conn: sqlite3.Connection, _: ConnectionPoolEntry) -> None:
    dbapi_conn.isolation_level = None  # no implicit BEGIN: the begin event says it
    for pragma in _SQLITE_PRAGMAS:
        dbapi_conn.execute(pragma).close()


# Connections per process. The webhook's journal writes wait for one behind the chats' jobs:
# with five, under a burst of fifty albums a POST waited 88 ms (p50) for its 200, with ten 30.
POOL_SIZE = 10
# A pooled connection unused this long is pinged before it is handed out (a restarted server or
# a dropped connection is then replaced unseen). One used more recently is taken as alive: a
# ping on every checkout was a sixth of a photo's trips to the database under a burst. When
# one is dead all the same, the statement fails once and the whole pool is replaced.
PING_AFTER_IDLE = 5.0


class PostgresDatabase(Database):
    """A pool of PostgreSQL connections (psycopg 3, asyncio)."""

    engine: Engine = "postgresql"

    def __init__(
        self, url: str, pool_size: int = POOL_SIZE, ping_after_idle: float = PING_AFTER_IDLE
    ) -> None:
        self.url = url
        self.pool_size = pool_size
        self.ping_after_idle = ping_after_idle
        self._sa: AsyncEngine | None = None
        self._reader: AsyncEngine | None = None

    async def open(self) -> None:
        """Make the pool (connections are opened as they are first needed)."""
        from sqlalchemy.ext.asyncio import create_async_engine  # only PostgreSQL needs it

        self._sa = create_async_engine(
            self.url,
            pool_size=self.pool_size,
            max_overflow=0,
            pool_recycle=1800,
        )
        _ping_when_idle(self._sa.sync_engine, self.ping_after_idle)
        # Reads run without BEGIN and ROLLBACK, two trips fewer: under READ COMMITTED each
        # statement sees its own snapshot inside a transaction too, so nothing changes. (So
        # does a write of one statement, `once`.)
        self._reader = self._sa.execution_options(isolation_level="AUTOCOMMIT")

    async def close(self) -> None:
        """Close every pooled connection; safe to call twice."""
        engine, self._sa, self._reader = self._sa, None, None
        if engine is not None:
            await engine.dispose()

    @property
    def _engine(self) -> AsyncEngine:
        if self._sa is None:
            raise RuntimeError("The database is not open.")
        return self._sa

    async def read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `work` on a pooled connection, each statement on its own (autocommit)."""
        if self._reader is None:
            raise RuntimeError("The database is not open.")
        async with self._reader.connect() as conn:
            return await conn.run_sync(functools.partial(work, **kwargs), *args)

    async def once(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `work`, which makes one statement, without a transaction around it: a
        statement is atomic on its own, and BEGIN and COMMIT would be two more trips. Not
        fenced (the statement fences itself if it must). The same autocommit path as `read`."""
        return await self.read(work, *args, **kwargs)

    async def write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `work` in one transaction on a pooled connection."""
        try:
            async with self._engine.begin() as conn:
                return await conn.run_sync(
                    functools.partial(_fenced, current_attempt(), work, **kwargs), *args
                )
        except Rollback as undone:
            return undone.value  # type: ignore[no-any-return]


def _ping_when_idle(engine: Any, idle: float) -> None:
    """Ping a pooled connection at checkout when it was unused `idle` seconds or more (the
    pool's `pre_ping` pings at every checkout); a dead one is replaced before it is used."""

    @event.listens_for(engine, "checkin")
    def returned(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["returned"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def taken(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        returned = record.info.get("returned")
        if returned is None or time.monotonic() - returned < idle:
            return  # just opened, or used a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if not engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise
            alive = False
        if not alive:
            raise exc.DisconnectionError("a pooled connection was dropped")  # the pool retries


def _fenced(
    attempt: Attempt | None, work: Callable[..., T], conn: Any, *args: Any, **kwargs: Any
) -> T:
    """Run a write; first, when it runs for a job, make sure that job is still this attempt's
    (a stalled attempt whose job another worker took over must not change anything). The
    attempt is passed in: the SQLite thread does not see the caller's context variables."""
    if attempt is not None:
        attempt.fence(conn)
    return work(conn, *args, **kwargs)


def postgres_url(url: str) -> str:
    """A postgresql:// or postgres:// address as SQLAlchemy names the psycopg 3 driver."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise ValueError("A PostgreSQL address starts with postgresql:// or postgres://.")
    return f"postgresql+psycopg://{rest}"
