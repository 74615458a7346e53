"""Pins: blobs stored whose row is not committed yet, which no deletion may take.

A file is stored first and its row committed after, so for a moment a blob is on its way into
an album while no row refers to it. A deletion (of a file /undo, /forget or the sweep found
unused) asks the pins first and checks again that no row refers to the blob while it holds the
right to delete it (`deleting`): a blob pinned in that time is kept.

In one process the pins are counted in memory. Replicas on one PostgreSQL also hold each pin as
a shared advisory lock, and a deletion takes the exclusive lock of the same key, so a replica
never deletes a blob another replica is recording, whichever of them stored the bytes first.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

# The advisory-lock namespace of blob pins (the first of the two int4 keys): "pin1".
LOCK_SPACE = 0x70696E31
RETRY_SECONDS = 0.02  # while another replica deletes the blob, try again this often
CHUNK = 1024 * 1024  # bytes hashed at a time


class Pins:
    """Counted pins of this process; `SharedPins` adds the other replicas'."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        # Blobs a deletion is looking at -> whether a pin was taken since it began.
        self._watched: dict[str, bool] = {}
        # Pinned blobs -> set once the first pin holds (a second pin of the same bytes waits
        # for it: it must not go on while another replica may still be deleting them).
        self._held: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def pin(self, sha256: str) -> None:
        """Keep the blob until `release`. Blocking (waits while another replica deletes it)."""
        with self._lock:
            self._counts[sha256] += 1
            held = self._held.get(sha256)
            first = held is None
            if held is None:
                held = self._held[sha256] = threading.Event()
            if sha256 in self._watched:
                self._watched[sha256] = True
        if not first:
            held.wait()
            return
        try:
            self._hold(sha256)
        except BaseException:
            self.release(sha256)
            raise
        finally:
            held.set()

    def release(self, *shas: str) -> None:
        """The pinned blobs are recorded (or given up): a deletion may take them again."""
        for sha in shas:
            with self._lock:
                self._counts[sha] -= 1
                last = self._counts[sha] <= 0
                if last:
                    del self._counts[sha]
                    self._held.pop(sha, None)
            if last:
                self._let_go(sha)

    def pinned(self, sha256: str) -> bool:
        """Whether the blob is pinned in this process."""
        return self._counts.get(sha256, 0) > 0

    def may_delete(self, sha256: str) -> bool:
        """Whether a deletion begun with `begin` may still remove the blob: not pinned, and no
        pin taken since it began."""
        with self._lock:
            return not self.pinned(sha256) and not self._watched.get(sha256, False)

    def begin(self, sha256: str) -> bool:
        """Start deleting: False when the blob is pinned here or by another replica."""
        with self._lock:
            if self.pinned(sha256) or sha256 in self._watched:
                return False
            self._watched[sha256] = False
        if not self._take_exclusive(sha256):
            with self._lock:
                self._watched.pop(sha256, None)
            return False
        return True

    def end(self, sha256: str) -> None:
        """The deletion begun with `begin` is over."""
        self._drop_exclusive(sha256)
        with self._lock:
            self._watched.pop(sha256, None)

    # What replicas add ----------------------------------------------------------------------

    def _hold(self, sha256: str) -> None:
        """The first pin of a blob in this process."""

    def _let_go(self, sha256: str) -> None:
        """The last pin of a blob in this process is gone."""

    def _take_exclusive(self, sha256: str) -> bool:
        return True

    def _drop_exclusive(self, sha256: str) -> None:
        """The exclusive right `_take_exclusive` gave is handed back."""

    def close(self) -> None:
        """Let go of what holds the pins (the database connection of `SharedPins`)."""


class SharedPins(Pins):
    """Pins that every replica on one PostgreSQL sees: advisory locks on one connection.

    Session-level locks live as long as the connection: a killed replica's pins go with it.
    Waiting for a lock is done by trying again (`RETRY_SECONDS`), never by blocking inside the
    connection, so no replica waits on the connection another thread of it needs.
    """

    def __init__(self, url: str) -> None:
        super().__init__()
        scheme, _, rest = url.partition("://")
        self.url = f"postgresql://{rest}" if scheme.startswith("postgres") else url
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._conn_lock = threading.Lock()
        # Letting go is asked for on the event loop (a row was committed): done in this thread.
        self._unlocks = ThreadPoolExecutor(1, thread_name_prefix="pins")

    def _query(self, sql: str, sha256: str) -> bool:
        import psycopg

        key = _key(sha256)
        with self._conn_lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = psycopg.connect(self.url, autocommit=True)
                        self._relock()
                    row = self._conn.execute(sql, (LOCK_SPACE, key)).fetchone()
                    return bool(row[0]) if row else False
                except psycopg.OperationalError:
                    # The connection broke (its locks went with it): open a new one once.
                    log.warning("The pin connection to PostgreSQL broke; opening a new one")
                    self._conn = None
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def _relock(self) -> None:
        """A new connection holds again the pins the broken one held."""
        assert self._conn is not None
        for sha in [sha for sha, held in list(self._held.items()) if held.is_set()]:
            self._conn.execute("SELECT pg_advisory_lock_shared(%s, %s)", (LOCK_SPACE, _key(sha)))

    def _hold(self, sha256: str) -> None:
        while not self._query("SELECT pg_try_advisory_lock_shared(%s, %s)", sha256):
            time.sleep(RETRY_SECONDS)  # another replica is deleting it: then store it anew

    def _let_go(self, sha256: str) -> None:
        # PostgreSQL counts a session's locks of one key: a pin taken again before this runs
        # holds one of its own.
        self._unlocks.submit(self._unlock_shared, sha256)

    def _unlock_shared(self, sha256: str) -> None:
        try:
            self._query("SELECT pg_advisory_unlock_shared(%s, %s)", sha256)
        except Exception:
            log.exception("Could not let go of a pin (other replicas wait for its connection)")

    def _take_exclusive(self, sha256: str) -> bool:
        return self._query("SELECT pg_try_advisory_lock(%s, %s)", sha256)

    def _drop_exclusive(self, sha256: str) -> None:
        self._query("SELECT pg_advisory_unlock(%s, %s)", sha256)

    def close(self) -> None:
        self._unlocks.shutdown(wait=True)
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class PinnedBlobs(ABC):
    """What both blob stores share: `adopt` pins what it stores, `delete` leaves pinned blobs
    alone, and one lock keeps the two apart. A store says how it keeps and removes bytes.

    The lock is held by `delete` from its look at the pins to the removal; `adopt` passes
    through it once its pin is taken, so it never finds a blob that is being removed, and it
    never holds it while the bytes move (an upload would stop every other chat's deletions).
    """

    def __init__(self, scratch: Path, pins: Pins | None = None) -> None:
        self.scratch = scratch
        self.pins = pins if pins is not None else Pins()
        self._lock = threading.Lock()

    def new_temp_path(self, suffix: str = "") -> Path:
        """A fresh local scratch path to download or write into."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        return self.scratch / f"{uuid.uuid4().hex}{suffix}"

    def _clear_scratch(self) -> None:
        """Remove the scratch files a crash left (none is on its way anywhere at start-up)."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        for leftover in self.scratch.iterdir():
            if leftover.is_file():
                leftover.unlink(missing_ok=True)

    @abstractmethod
    def _keep(self, temp: Path, sha256: str, size: int) -> None:
        """Move the hashed scratch file into the store (unless the store has the bytes)."""

    @abstractmethod
    def _remove(self, sha256: str) -> None:
        """Remove the blob's bytes; an absent blob is fine."""

    def _hash(self, temp: Path) -> tuple[str, int]:
        """The scratch file's sha256 and size (a store that must make it durable says so)."""
        return hash_file(temp)

    def adopt(self, temp: Path) -> tuple[str, int]:
        """Hash a scratch file, move it into the store and return (sha256, size); pinned until
        `release`. Blocking: call it in a thread."""
        sha, size = self._hash(temp)
        self.pins.pin(sha)
        with self._lock:
            pass  # a delete that looked at the pins before this one was taken is over
        try:
            self._keep(temp, sha, size)
        except BaseException:
            self.release(sha)
            raise
        return sha, size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store bytes (small derived files such as the model's JPEG), pinned. Blocking."""
        temp = self.new_temp_path()
        temp.write_bytes(data)
        try:
            return self.adopt(temp)
        finally:
            temp.unlink(missing_ok=True)

    def release(self, *shas: str) -> None:
        """The blobs `adopt` gave are recorded (or given up): `delete` may remove them again."""
        self.pins.release(*shas)

    def delete(self, sha256: str) -> None:
        """Remove a blob unless it is on its way into some row (see `delete_unused`, which also
        keeps it from other replicas); a missing one is fine."""
        with self._lock:
            if self.pins.may_delete(sha256):
                self._remove(sha256)


def hash_file(path: Path, *, durable: bool = False) -> tuple[str, int]:
    """A file's sha256 and size, read in chunks; `durable` also flushes it to the disk."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
        if durable:
            os.fsync(f.fileno())
    return digest.hexdigest(), size


def _key(sha256: str) -> int:
    """The second int4 key of a blob's lock: 32 bits of its hash."""
    value = int(sha256[:8], 16)
    return value - (1 << 32) if value >= 1 << 31 else value


class _Blobs(Protocol):
    pins: Pins

    def delete(self, sha256: str) -> None: ...


class _Usage(Protocol):
    async def is_blob_used(self, sha256: str) -> bool: ...


async def delete_unused(media: _Usage, blobs: _Blobs, shas: Iterable[str]) -> list[str]:
    """Delete the blobs no row refers to and nobody pins; return the ones deleted.

    Each is checked again while this process holds the right to delete it: a row committed
    since the caller last looked keeps its blob."""
    deleted = []
    for sha in shas:
        if not await asyncio.to_thread(blobs.pins.begin, sha):
            continue
        try:
            if not await media.is_blob_used(sha):
                await asyncio.to_thread(blobs.delete, sha)
                deleted.append(sha)
        finally:
            await asyncio.to_thread(blobs.pins.end, sha)
    return deleted
