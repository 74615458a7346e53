"""Burst processed: when every photo of a chat's album has its model copy stored.

The bot says nothing when a copy is stored, so the wire cannot time it: the benchmark reads the
bot's own database instead, read-only, from a thread of its own process (the event loop there
runs the fakes and would delay the reads). Every 50 ms one grouped query counts, per chat still
waited for, its items and those whose copy is stored (`model_ready = 1`) or given up on
(`model_failed` set). A chat is processed at the first poll that finds all its photos as items
and every one of them done; the time is `time.monotonic()` when that answer came back, the same
clock as the travellers', so the figure is late by at most one poll and one query.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from sqlalchemy import BigInteger, Engine, create_engine, func, or_, select, type_coerce
from sqlalchemy.exc import SQLAlchemyError

from storage.sql.database import postgres_url
from storage.sql.tables import albums, items

POLL_EVERY = 0.05  # seconds between two looks at the database
_DONE = or_(items.c.model_ready == 1, items.c.model_failed.is_not(None))


def sqlite_url(path: Path) -> str:
    """A read-only SQLAlchemy address of the bot's SQLite file (WAL: it never blocks the bot)."""
    return f"sqlite:///file:{path}?mode=ro&uri=true"


class Processed:
    """Watches chats until each has `expected[chat_id]` items, all with their model copy done.

    Use as a context manager around the burst: `done` maps each processed chat to when it was
    seen processed; `finished` waits for the rest.
    """

    def __init__(self, url: str, expected: Mapping[int, int]) -> None:
        # storage/sql's own driver names: pysqlite, or psycopg 3 for a postgresql:// address.
        self.url = url if url.startswith("sqlite") else postgres_url(url)
        self.expected = dict(expected)
        self.done: dict[int, float] = {}
        self.polls = 0
        self.error: str | None = None  # the last failed read (a locked or missing table)
        self._stop = threading.Event()
        self._complete = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-processed", daemon=True)

    def __enter__(self) -> Processed:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    async def finished(self, timeout: float) -> dict[int, float]:
        """Wait until every chat was seen processed (or `timeout` passed); the times so far."""
        await asyncio.to_thread(self._complete.wait, timeout)
        return dict(self.done)

    def since(self, sent_at: Mapping[int, float]) -> tuple[list[float], int]:
        """Seconds from each chat's last photo to its processing, and how many never were."""
        seconds = [self.done[chat] - at for chat, at in sent_at.items() if chat in self.done]
        return seconds, len(sent_at) - len(seconds)

    def _run(self) -> None:
        engine = self._engine()
        try:
            while not self._stop.is_set():
                pending = [chat for chat in self.expected if chat not in self.done]
                if not pending:
                    self._complete.set()
                    return
                try:
                    self._poll(engine, pending)
                except SQLAlchemyError as e:
                    self.error = f"{type(e).__name__}: {e}"[:200]
                self._stop.wait(POLL_EVERY)
        finally:
            engine.dispose()

    def _engine(self) -> Engine:
        if self.url.startswith("sqlite"):
            return create_engine(self.url)
        # A transaction that may only read: the benchmark must never change what it measures.
        return create_engine(
            self.url,
            connect_args={"options": "-c default_transaction_read_only=on"},
            isolation_level="AUTOCOMMIT",
        )

    def _poll(self, engine: Engine, pending: list[int]) -> None:
        chat = type_coerce(albums.c.chat_id, BigInteger)  # typed: the Table's columns are not
        query = (
            select(chat, func.count(), func.count().filter(_DONE))
            .select_from(items.join(albums, items.c.album_id == albums.c.id))
            .where(albums.c.chat_id.in_(pending))
            .group_by(albums.c.chat_id)
        )
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        seen_at = time.monotonic()
        self.polls += 1
        for chat_id, count, ready in rows:
            if count >= self.expected[chat_id] and ready == count:
                self.done[chat_id] = seen_at
