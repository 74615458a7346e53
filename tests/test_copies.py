"""Waiting for an album's files: what asks the model first waits until every file of the album
is downloaded, checked and has its model copy, judged from the database (any process may make
them), telling how many are left as that changes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.service import copies as copies_module
from bot.service.copies import ModelCopies
from bot.service.intake import PhotoLimits
from storage.protocols import Storage
from storage.records import Arrival, Blob, Media, MediaFacts, Origin, Reservation
from storage.sql import open_sqlite

WAIT = 20.0  # seconds: a limit far above any machine's, for waits that must succeed


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[Storage, Storage]]:
    """The bot's storage, and another on the same file: a second process making the files."""
    path = tmp_path / "photostory.sqlite3"
    mine = await open_sqlite(path, tmp_path)
    other = await open_sqlite(path, tmp_path)
    try:
        yield mine, other
    finally:
        await other.close()
        await mine.close()


def _photo(n: int, model_ready: bool = True) -> Media:
    source = Blob(f"{n:064x}", 10, "image/jpeg")
    model = Blob(f"{n + 1000:064x}", 5, "image/jpeg") if model_ready else source
    origin = Origin(file_id=f"file-{n}", file_unique_id=f"unique-{n}", chat_message_id=n)
    return Media("photo", source, model, origin, MediaFacts(), model_ready=model_ready)


async def _arrival(store: Storage, album_id: int, n: int) -> Arrival:
    """A photo received and numbered, its download still to come."""
    origin = Origin(file_id=f"file-{n}", file_unique_id=f"unique-{n}", chat_message_id=n)
    reserved = await store.arrivals.reserve(album_id, None, "photo", origin, 10, max_items=50)
    assert reserved.status is Reservation.RESERVED and reserved.arrival is not None
    return reserved.arrival


def _copies(store: Storage) -> ModelCopies:
    return ModelCopies(store, PhotoLimits(1024, 150_000, 10**8), workers=1)


class Progress:
    """What `ready` told: how many files were left, at each look."""

    def __init__(self) -> None:
        self.looks: list[int] = []
        self._changed = asyncio.Condition()

    async def __call__(self, left: int) -> None:
        self.looks.append(left)
        async with self._changed:
            self._changed.notify_all()

    def told(self) -> list[int]:
        """The counts told, each once (as "Reading your photos 1/4…" shows them)."""
        return [left for left, _ in itertools.groupby(self.looks)]

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until `condition` holds, looking after each look; fail after WAIT seconds."""
        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(condition)


async def test_ready_waits_for_every_file_of_the_album_and_tells_how_many_are_left(
    stores: tuple[Storage, Storage],
) -> None:
    mine, other = stores
    album = await mine.albums.current(1)
    elsewhere = await mine.albums.create(2, "Porto")
    batch = await mine.media.new_batch(album.id)
    unmade = (await mine.media.add(album.id, batch, _photo(4, model_ready=False), 10)).item
    assert unmade is not None  # stored, its copy still to be made
    first, second, third = [await _arrival(mine, album.id, n) for n in (1, 2, 3)]
    await _arrival(mine, elsewhere.id, 9)  # another album's file never comes: not waited for

    copies = _copies(mine)
    progress = Progress()
    waiting = asyncio.create_task(copies.ready(album.id, progress))
    try:
        await progress.until(lambda: progress.told() == [4])  # three to fetch, a copy to make
        # Another process downloads and stores the first file with its copy.
        await other.arrivals.settle(first.id, _photo(1))
        await progress.until(lambda: progress.told() == [4, 3])
        await other.arrivals.drop(second.id)  # its download failed: nothing to wait for
        await progress.until(lambda: progress.told() == [4, 3, 2])
        await other.media.mark_model_failed(unmade.id, "its copy could not be made")
        await progress.until(lambda: progress.told() == [4, 3, 2, 1])  # the story says why
        settled = await other.arrivals.settle(third.id, _photo(3, model_ready=False))
        assert settled is not None and settled.item is not None
        looks = len(progress.looks)
        await progress.until(lambda: len(progress.looks) >= looks + 2)  # looked again, twice
        assert not waiting.done() and progress.told() == [4, 3, 2, 1]  # its copy is not made
        model = _photo(3).model
        assert await other.media.set_model_copy(settled.item.id, model.sha256, 5, "image/jpeg")
        async with asyncio.timeout(WAIT):
            await waiting
        assert progress.told() == [4, 3, 2, 1]
    finally:
        waiting.cancel()
        await copies.close()


async def test_ready_of_an_album_with_every_file_ready_says_nothing(
    stores: tuple[Storage, Storage],
) -> None:
    mine, _ = stores
    album = await mine.albums.current(1)
    batch = await mine.media.new_batch(album.id)
    await mine.media.add(album.id, batch, _photo(1), 10)
    copies = _copies(mine)
    progress = Progress()
    try:
        async with asyncio.timeout(WAIT):
            await copies.ready(album.id, progress)
        assert progress.looks == []  # no "Reading your photos" for nothing
    finally:
        await copies.close()


async def test_a_wait_that_sees_no_file_get_ready_goes_on_with_what_is_there(
    stores: tuple[Storage, Storage], monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, _ = stores
    monkeypatch.setattr(copies_module, "STUCK_SECONDS", 0.5)
    album = await mine.albums.current(1)
    await _arrival(mine, album.id, 1)  # its job never comes (its worker died, say)
    copies = _copies(mine)
    try:
        async with asyncio.timeout(WAIT):
            await copies.ready(album.id)
        assert await mine.arrivals.unready(album.id) == 1  # went on without it
    finally:
        await copies.close()
