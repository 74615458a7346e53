"""/undo takes back once per job, and /new makes one album per job (bot/service/albums.py).

Its removal commits before its job ends. A job run again after a crash or a stall in between
(another worker takes it over) must tell what the first attempt took back, and take back
nothing more: without that, a second batch of the traveller's photos would go. What it took
back is kept under the job's id in the removal's own transaction (storage.results). Both
engines.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from bot.config import Settings
from bot.errors import NothingToDo
from bot.service.albums import AlbumService, Undone
from storage.jobs import Ending, reset, running
from storage.protocols import Storage
from storage.records import NewExchange
from tests.storage_backends import BACKENDS

CHAT = 7


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    async with BACKENDS[request.param](tmp_path) as storage:
        yield storage


@dataclass
class Attempt:
    """One run of the /undo update's job (its writes are the store's own, unfenced here)."""

    job_id: int
    number: int = 0
    task: str = "update"
    last: bool = False
    shared: bool = False
    endings: list[Ending] = field(default_factory=list)

    def fence(self, conn: Connection) -> None:
        pass

    def at_end(self, work: Ending) -> None:
        self.endings.append(work)


@contextmanager
def attempt(job_id: int, number: int = 0) -> Iterator[None]:
    token = running(Attempt(job_id, number))
    try:
        yield
    finally:
        reset(token)


class Model:
    async def forget(self, **_: Any) -> None:
        pass


def albums(store: Storage) -> AlbumService:
    settings = Settings.from_env({"GEMINI_API_KEY": "k"}, require_telegram=False)
    return AlbumService(settings, store, Model(), None)  # type: ignore[arg-type]


async def notes(store: Storage) -> list[str]:
    album = await store.albums.current(CHAT)
    return [note.text for note in await store.media.notes(album.id)]


async def two_batches(service: AlbumService) -> None:
    await service.add_note(CHAT, "We took the night train.", 1, "Ana")
    await service.end_burst(CHAT)  # the bot said something: the next note is a new batch
    await service.add_note(CHAT, "Then the ferry to the island.", 1, "Ana")


async def test_undo_run_again_by_its_job_tells_the_same_and_takes_back_nothing_more(
    store: Storage,
) -> None:
    service = albums(store)
    await two_batches(service)
    with attempt(41):
        first = await service.undo(CHAT)
    assert await notes(store) == ["We took the night train."]
    with attempt(41, number=1):  # the same job again: its end had not committed
        again = await service.undo(CHAT)
    assert again == first and first.notes == 1 and first.batch_id is not None
    assert await notes(store) == ["We took the night train."]  # the older batch is kept
    with attempt(42):  # another /undo: the next batch goes
        await service.undo(CHAT)
    assert await notes(store) == []


async def test_the_undo_button_run_again_by_its_job_tells_the_same(store: Storage) -> None:
    service = albums(store)
    await two_batches(service)
    album = await store.albums.current(CHAT)
    newer = await store.media.latest_batch(album.id)
    assert newer is not None
    with attempt(43):
        first = await service.undo_batch(CHAT, newer[0])
    with attempt(43, number=1):
        assert await service.undo_batch(CHAT, newer[0]) == first  # not "already taken back"
    for number in (0, 1):  # a second press, another job: already taken back, run again too
        with pytest.raises(NothingToDo), attempt(44, number):
            await service.undo_batch(CHAT, newer[0])


async def test_an_undone_exchange_is_told_again_by_its_job(store: Storage) -> None:
    service = albums(store)
    await service.add_note(CHAT, "We took the night train.", 1, "Ana")
    album = await store.albums.current(CHAT)
    for question in ("Where was this?", "And the ferry?"):
        await store.conversation.add(
            NewExchange(album.id, "question", question, "An answer.", user_text=question)
        )
    with attempt(45):
        first = await service.undo(CHAT)
    assert first == Undone(album.name, question="And the ferry?")
    assert Undone.from_json(first.to_json()) == first
    with attempt(45, number=1):
        assert await service.undo(CHAT) == first
    left = [e.user_text for e in await store.conversation.exchanges(album.id)]
    assert left == ["Where was this?"] and await notes(store) == ["We took the night train."]


async def test_new_run_again_by_its_job_gives_back_the_album_it_made(store: Storage) -> None:
    service = albums(store)
    await service.add_note(CHAT, "We took the night train.", 1, "Ana")
    with attempt(46):
        made = await service.new_album(CHAT, "Lisbon")
    with attempt(46, number=1):  # the same job again: one album made, not two
        assert await service.new_album(CHAT, "Lisbon") == made
    names = [summary.album.name for summary in await store.albums.summaries(CHAT)]
    assert sorted(names).count("Lisbon") == 1 and len(names) == 2
    assert (await store.albums.current(CHAT)).id == made.id
