"""A received file that cannot be added is named, then dropped (bot/service/albums.py,
`_give_up`), by its ingest job or by the telling of that job given up. In that order: a job
run again after a crash between the two names the file again (the burst keeps one name per
file, tests/test_bursts.py), where the other order would drop the file unnamed. Both engines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import Settings
from bot.service.albums import AlbumService
from bot.service.copies import ModelCopies
from bot.service.downloads import Fetch
from bot.service.intake import PhotoLimits
from storage.protocols import Storage
from storage.records import Arrival, Origin, Reservation
from tests.storage_backends import BACKENDS

CHAT = 7


class Crash(Exception):
    """The process stopped here."""


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    async with BACKENDS[request.param](tmp_path) as storage:
        yield storage


def albums(store: Storage) -> AlbumService:
    settings = Settings.from_env({"GEMINI_API_KEY": "k"}, require_telegram=False)
    limits = PhotoLimits(1024, 150_000, 10**8)
    return AlbumService(settings, store, None, ModelCopies(store, limits, workers=1))  # type: ignore[arg-type]


async def received(store: Storage) -> Arrival:
    album = await store.albums.current(CHAT)
    origin = Origin(file_id="file-1", file_unique_id="unique-1", chat_message_id=1)
    reserved = await store.arrivals.reserve(album.id, None, "photo", origin, 10, max_items=50)
    assert reserved.status is Reservation.RESERVED and reserved.arrival is not None
    return reserved.arrival


def not_a_photo(file_id: str) -> Fetch:
    async def fetch(path: Path) -> None:
        await asyncio.to_thread(path.write_bytes, b"%PDF-1.7 not a photo")

    return fetch


async def test_a_file_that_cannot_be_added_is_named_before_it_is_dropped(store: Storage) -> None:
    service = albums(store)
    arrival = await received(store)
    named: list[tuple[int, str]] = []

    async def crash_after_naming(file: Arrival, reason: str) -> None:
        named.append((file.position, reason))
        raise Crash

    with pytest.raises(Crash):
        await service.ingest(
            arrival.id, not_a_photo, True, arrival.album_id, arrival.position, crash_after_naming
        )
    assert await store.arrivals.get(arrival.id) is not None  # left to the job's next try

    async def name(file: Arrival, reason: str) -> None:
        named.append((file.position, reason))

    await service.ingest(arrival.id, not_a_photo, True, arrival.album_id, arrival.position, name)
    assert named == [(1, "unsupported")] * 2  # named again: the burst keeps it once
    assert await store.arrivals.get(arrival.id) is None
    assert await store.arrivals.unready(arrival.album_id) == 0  # nothing waits for it
    await service.ingest(arrival.id, not_a_photo, True, arrival.album_id, arrival.position, name)
    assert len(named) == 2  # dropped: a later run has nothing to say


async def test_the_telling_of_an_ingest_given_up_names_before_it_drops(store: Storage) -> None:
    service = albums(store)
    arrival = await received(store)

    async def crash(file: Arrival, reason: str) -> None:
        raise Crash

    with pytest.raises(Crash):
        await service.give_up_file(arrival.id, "unreadable", crash)
    assert await store.arrivals.get(arrival.id) == arrival
    told: list[str] = []

    async def name(file: Arrival, reason: str) -> None:
        told.append(reason)

    await service.give_up_file(arrival.id, "unreadable", name)
    assert told == ["unreadable"] and await store.arrivals.get(arrival.id) is None
    await service.give_up_file(arrival.id, "unreadable", name)  # dropped: nothing more to say
    assert told == ["unreadable"]
