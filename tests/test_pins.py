"""Pins: a blob on its way into a row is never deleted, in one process and across replicas.

The shared cases run two `SharedPins` on one real PostgreSQL database, as two replicas would,
and two blob stores on one media folder: what one replica is recording the other's deletion
leaves alone, and it deletes the blob once nothing pins it and no row refers to it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from storage.local_blobs import LocalBlobStore
from storage.pins import Pins, SharedPins, delete_unused

SHA = hashlib.sha256(b"tram 28").hexdigest()


class Rows:
    """The media store's one question: does any row refer to the blob?"""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.asked: list[str] = []

    async def is_blob_used(self, sha256: str) -> bool:
        self.asked.append(sha256)
        return sha256 in self.used


def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[tuple[SharedPins, SharedPins]]:
    a, b = SharedPins(postgres_url), SharedPins(postgres_url)
    yield a, b
    a.close()
    b.close()


# One process --------------------------------------------------------------------------------


def test_a_pinned_blob_cannot_be_deleted_until_released() -> None:
    pins = Pins()
    pins.pin(SHA)
    pins.pin(SHA)
    assert not pins.begin(SHA)
    pins.release(SHA)
    assert pins.pinned(SHA) and not pins.begin(SHA)
    pins.release(SHA)
    assert not pins.pinned(SHA)
    assert pins.begin(SHA) and pins.may_delete(SHA)
    pins.end(SHA)


def test_a_pin_taken_during_a_deletion_stops_it_even_once_released() -> None:
    # The row was committed after the deletion looked at the rows: the blob must stay.
    pins = Pins()
    assert pins.begin(SHA)
    pins.pin(SHA)
    pins.release(SHA)
    assert not pins.may_delete(SHA)
    pins.end(SHA)
    assert pins.begin(SHA) and pins.may_delete(SHA)
    pins.end(SHA)


async def test_delete_unused_keeps_pinned_and_used_blobs(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.prepare()
    pinned, _ = store.put_bytes(b"pinned")
    used, _ = store.put_bytes(b"used")
    unused, _ = store.put_bytes(b"unused")
    store.release(used, unused)
    rows = Rows()
    rows.used.add(used)
    deleted = await delete_unused(rows, store, [pinned, used, unused])
    assert deleted == [unused]
    assert store.exists(pinned) and store.exists(used) and not store.exists(unused)
    assert pinned not in rows.asked  # a pinned blob is not even looked up


# Replicas on one PostgreSQL ------------------------------------------------------------------


def test_a_pin_on_one_replica_stops_a_deletion_on_another(
    replicas: tuple[SharedPins, SharedPins],
) -> None:
    a, b = replicas
    a.pin(SHA)
    assert not b.begin(SHA)
    a.release(SHA)
    until(lambda: _try_begin(b))  # the unlock runs in the pins' own thread
    assert b.may_delete(SHA)
    b.end(SHA)


def test_a_pin_waits_while_another_replica_deletes(
    replicas: tuple[SharedPins, SharedPins],
) -> None:
    a, b = replicas
    assert b.begin(SHA)
    pinned = threading.Event()

    def pin() -> None:
        a.pin(SHA)
        pinned.set()

    worker = threading.Thread(target=pin)
    worker.start()
    worker.join(0.3)
    assert not pinned.is_set(), "pinned while the other replica was deleting the blob"
    b.end(SHA)
    assert pinned.wait(10)
    worker.join()
    assert not b.begin(SHA)  # and now it is A's
    a.release(SHA)


def test_two_pins_of_the_same_bytes_both_wait_for_the_deletion(
    replicas: tuple[SharedPins, SharedPins],
) -> None:
    a, b = replicas
    assert b.begin(SHA)
    done: list[str] = []

    def pin(name: str) -> None:
        a.pin(SHA)
        done.append(name)

    threads = [threading.Thread(target=pin, args=(name,)) for name in ("1", "2")]
    for thread in threads:
        thread.start()
    threads[0].join(0.3)
    assert done == []
    b.end(SHA)
    for thread in threads:
        thread.join(10)
    assert sorted(done) == ["1", "2"]
    a.release(SHA, SHA)
    until(lambda: _try_begin(b))
    b.end(SHA)


async def test_a_blob_one_replica_records_survives_another_replicas_cleanup(
    replicas: tuple[SharedPins, SharedPins], tmp_path: Path
) -> None:
    # Two replicas' stores on one media folder (as on one bucket): A has stored the photo and
    # not yet committed its row; B's /undo of the same bytes finds no row and deletes.
    a_pins, b_pins = replicas
    a = LocalBlobStore(tmp_path, a_pins)
    b = LocalBlobStore(tmp_path, b_pins)
    a.prepare()
    sha, _ = a.put_bytes(b"tram 28 at dusk")
    rows = Rows()
    assert await delete_unused(rows, b, [sha]) == []
    assert a.exists(sha)
    rows.used.add(sha)  # A commits its row, then lets go of the pin
    a.release(sha)
    until(lambda: _try_begin(b_pins, sha))
    b_pins.end(sha)
    assert await delete_unused(rows, b, [sha]) == []  # a row refers to it
    rows.used.clear()  # the album is forgotten: now it goes
    assert await delete_unused(rows, b, [sha]) == [sha]
    assert not a.exists(sha)


def test_pins_come_back_when_the_connection_breaks(
    replicas: tuple[SharedPins, SharedPins], postgres_url: str
) -> None:
    import psycopg

    a, b = replicas
    a.pin(SHA)
    assert not b.begin(SHA)
    # The database ends A's session (a restart, a proxy dropping it): its locks go with it.
    with psycopg.connect(b.url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks"
            " WHERE locktype = 'advisory' AND mode = 'ShareLock'"
        )
    until(lambda: _try_begin(b))
    b.end(SHA)
    # A's next use of the connection opens a new one and takes its pins again.
    other = hashlib.sha256(b"other").hexdigest()
    a.pin(other)
    assert not b.begin(SHA)
    a.release(SHA, other)


def _try_begin(pins: Pins, sha: str = SHA) -> bool:
    return pins.begin(sha)
