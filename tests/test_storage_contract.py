"""What every storage engine must do, run against each one (`tests/storage_backends.py`).

Only the protocols of `storage.protocols` are used here, so a new engine is a new entry in
BACKENDS, not a copy of these tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from storage.jobs import CHAT, JSON, MEDIA, Attempt, Job, TakenOver, Task
from storage.protocols import RECEIVED_AT, Storage
from storage.records import (
    AddStatus,
    Blob,
    CachedContext,
    Media,
    MediaFacts,
    NewExchange,
    Origin,
    Sent,
    TokenCounts,
    Upload,
    UsageRecord,
)
from storage.sql.clock import now_in
from tests.attempts import HandAttempt, attempt
from tests.storage_backends import BACKENDS


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    async with BACKENDS[request.param](tmp_path) as storage:
        yield storage


def photo(sha: str, unique: str | None = None, **origin: object) -> Media:
    blob = Blob(sha, 10, "image/jpeg")
    return Media(
        "photo",
        blob,
        blob,
        Origin(file_id=f"id-{sha[:4]}", file_unique_id=unique or f"unique-{sha[:4]}", **origin),  # type: ignore[arg-type]
        MediaFacts(),
    )


A, B, C = "a" * 64, "b" * 64, "c" * 64
WAIT = 20.0  # seconds: a limit far above any machine's, for waits that must succeed


async def test_every_field_of_a_media_file_survives_the_round_trip(store: Storage) -> None:
    album = await store.albums.current(1)
    batch = await store.media.new_batch(album.id)
    media = Media(
        kind="video",
        source=Blob(A, 123_456, "video/quicktime"),
        model=Blob(B, 654, "video/mp4"),
        origin=Origin(
            file_id="file-1", file_unique_id="uniq-1", file_name="pier.mov",
            mime_type="video/quicktime", caption="The pier 🌊", chat_message_id=77,
            media_group_id="g1", sender_id=5, sender_name="Ana",
            message_date=datetime(2026, 5, 1, 9, 30, tzinfo=UTC), telegram_type="document",
        ),
        facts=MediaFacts(
            taken_at=datetime(2026, 4, 30, 18, 5, 7, tzinfo=timezone(timedelta(hours=1))),
            time_source="container", latitude=38.69, longitude=-9.21, altitude=12.5,
            camera="Apple iPhone 15", width=1920, height=1080, duration=12.25,
            place="Belém, Lisbon, Portugal",
        ),
        model_ready=False,
    )  # fmt: skip
    added = await store.media.add(album.id, batch, media, max_items=10)
    assert added.status is AddStatus.ADDED and added.item is not None
    assert added.item.media == media
    (read,) = await store.media.items(album.id)
    assert read == added.item
    assert (read.id, read.album_id, read.batch_id, read.position) == (
        added.item.id, album.id, batch, 1,
    )  # fmt: skip
    naive = replace(media.facts, taken_at=datetime(2019, 8, 21, 10, 0), time_source="exif")
    other = await store.media.add(album.id, batch, replace(media, source=Blob(C, 1, "x/y"),
                                  facts=naive), 10)  # fmt: skip
    assert other.item is not None and other.item.media.facts.taken_at == datetime(2019, 8, 21, 10)


async def test_same_content_is_stored_once_per_album_and_numbers_are_stable(store: Storage) -> None:
    media = store.media
    album = await store.albums.current(1)
    batch = await media.new_batch(album.id)
    first = await media.add(album.id, batch, photo(A), max_items=10)
    again = await media.add(album.id, batch, photo(A), max_items=10)
    second = await media.add(album.id, batch, photo(B), max_items=10)
    assert first.status is AddStatus.ADDED and again.status is AddStatus.DUPLICATE
    assert again.item == first.item
    assert second.item is not None and second.item.position == 2
    assert (await media.add(album.id, batch, photo(C), max_items=2)).status is AddStatus.FULL
    known, count = await media.arrival(album.id, "unique-aaaa")
    assert known == first.item and count == 2
    assert await media.arrival(album.id, "never-sent") == (None, 2)
    assert await media.arrival(album.id, None) == (None, 2)
    assert await media.used_blobs() == {A, B}  # the refused third left no blob behind


async def test_albums_are_per_chat_and_counted(store: Storage) -> None:
    albums = store.albums
    mine = await albums.create(1, "Lisbon")
    assert await albums.switch(2, mine.id) is None  # another chat cannot take it
    assert await albums.get(2, mine.id) is None
    assert not await albums.rename(2, mine.id, "Mine now")
    assert await albums.summary(2, mine.id) is None
    assert (await albums.current(1)).id == mine.id
    assert (await albums.current(2)).id != mine.id
    batch = await store.media.new_batch(mine.id)
    await store.media.add(mine.id, batch, photo(A), 10)
    await store.media.add(mine.id, batch, replace(photo(B), kind="video"), 10)
    await store.media.add_note(mine.id, "first week", batch, 5, "Ana")
    await store.conversation.add(NewExchange(mine.id, "question", "q", "a"))
    assert await albums.rename(1, mine.id, "Lisbon 2026")
    summary = await albums.summary(1, mine.id)
    assert summary is not None and summary.album.name == "Lisbon 2026"
    assert (summary.photos, summary.videos, summary.notes, summary.exchanges) == (1, 1, 1, 1)
    second = await albums.create(1, "Porto")
    assert [s.album.id for s in await albums.summaries(1)] == [second.id, mine.id]
    switched = await albums.switch(1, mine.id)
    assert switched is not None and (await albums.current(1)).id == mine.id


async def test_a_chats_language_is_kept_per_chat_and_can_be_cleared(store: Storage) -> None:
    albums = store.albums
    assert await albums.language(1) is None  # a chat never seen follows its writers
    await albums.set_language(1, "de")  # before the chat has an album
    assert await albums.language(1) == "de"
    assert await albums.language(2) is None
    first = await albums.current(1)  # the chat's row, made by the language, still gets its album
    await albums.set_language(1, "pt_BR")
    assert await albums.language(1) == "pt_BR"
    assert (await albums.current(1)).id == first.id  # choosing a language keeps the album
    await albums.current(2)
    await albums.set_language(2, "ar")
    await albums.set_language(1, None)
    assert (await albums.language(1), await albums.language(2)) == (None, "ar")


async def test_batches_notes_and_taking_back(store: Storage) -> None:
    media = store.media
    one, two = await store.albums.create(1, "One"), await store.albums.create(1, "Two")
    b1, b2 = await media.new_batch(one.id), await media.new_batch(two.id)
    await media.add(one.id, b1, photo(A), 10)
    await media.add(one.id, b1, photo(B), 10)
    note = await media.add_note(one.id, "missed the ferry", b1, 5, "Ana")
    await media.add(two.id, b2, photo(B), 10)  # shared with album Two
    assert await media.notes(one.id) == [note]
    assert await media.batch_album(1, b1) == one.id
    assert await media.batch_album(2, b1) is None  # not another chat's
    latest = await media.latest_batch(one.id)
    assert latest is not None and latest[0] == b1
    removed = await media.remove_batch(one.id, b1)
    assert [i.media.source.sha256 for i in removed.items] == [A, B]
    assert removed.notes == [note]
    assert removed.orphan_blobs == [A]
    assert await media.latest_batch(one.id) is None  # an emptied batch is not "latest"
    assert len(await media.items(two.id)) == 1
    assert await media.is_blob_used(B) and not await media.is_blob_used(A)


async def test_captions_messages_and_model_copies(store: Storage) -> None:
    media = store.media
    album = await store.albums.current(1)
    batch = await media.new_batch(album.id)
    pending = replace(photo(A, chat_message_id=40), model_ready=False)
    added = (await media.add(album.id, batch, pending, 10)).item
    assert added is not None
    assert await media.by_message(1, 40) == added
    assert await media.by_message(2, 40) is None
    await media.set_caption(added.id, "Tram 28")
    assert (await media.get(album.id, added.id)).media.origin.caption == "Tram 28"  # type: ignore[union-attr]
    assert [i.id for i in await media.pending_copies()] == [added.id]
    assert [i.id for i in await media.pending_copies(album.chat_id)] == [added.id]
    assert await media.pending_copies(album.chat_id + 1) == []
    assert await media.set_model_copy(added.id, C, 99, "image/jpeg")
    copied = await media.get(album.id, added.id)
    assert copied is not None and copied.media.model_ready
    assert copied.media.model == Blob(C, 99, "image/jpeg")
    assert await media.pending_copies() == []
    assert await media.used_blobs() == {A, C}
    await media.mark_model_failed(added.id, "too dark")
    assert (await media.get(album.id, added.id)).model_failed == "too dark"  # type: ignore[union-attr]
    assert not await media.set_model_copy(10_000, C, 99, "image/jpeg")  # gone: nothing to do


async def test_exchanges_round_trip_in_order(store: Storage) -> None:
    talk = store.conversation
    album = await store.albums.current(1)
    for n in range(3):
        await talk.add(NewExchange(album.id, "question", f"q{n}", f"a{n}", sender_id=5))
    exchanges = await talk.exchanges(album.id)
    assert [e.prompt for e in exchanges] == ["q0", "q1", "q2"]
    assert await talk.latest(album.id) == exchanges[-1]
    assert await talk.remove(album.id, exchanges[-1].id)
    assert not await talk.remove(album.id, exchanges[-1].id)
    assert await talk.clear(album.id) == 2
    assert await talk.exchanges(album.id) == [] and await talk.latest(album.id) is None


async def test_an_exchange_is_found_again_by_the_job_that_asked_for_it(store: Storage) -> None:
    talk = store.conversation
    album = await store.albums.current(1)
    await talk.add(NewExchange(album.id, "question", "q", "a", job_id=9))
    story = await talk.add(NewExchange(album.id, "story", "p", "the story", job_id=9))
    await talk.add(NewExchange(album.id, "story", "p", "another story", job_id=10))
    assert await talk.answered(9, "story") == story
    assert (await talk.exchanges(album.id))[1] == story
    assert await talk.answered(9, "landmarks") is None
    assert await talk.answered(11, "story") is None


async def test_a_jobs_message_is_recorded_and_handed_to_its_next_attempt(store: Storage) -> None:
    sent = store.sent
    assert await sent.intend(1, "sendMessage#0", 0) is None
    assert await sent.recorded(1, "sendMessage#0") == Sent(0, None)
    await sent.record(1, "sendMessage#0", {"message_id": 5, "text": "héllo"})
    again = Sent(0, {"message_id": 5, "text": "héllo"})
    assert await sent.intend(1, "sendMessage#0", 1) == again  # nothing to send
    assert await sent.recorded(1, "sendMessage#0") == again
    # Meant to be sent, its answer never recorded (a crash in between): sent again.
    assert await sent.intend(1, "sendMessage#1", 0) is None
    assert await sent.intend(1, "sendMessage#1", 1) is None
    assert await sent.recorded(1, "sendMessage#1") == Sent(1, None)
    assert await sent.intend(2, "sendMessage#0", 0) is None  # another job's
    await sent.record(2, "sendMessage#0", True)
    assert await sent.recorded(2, "sendMessage#0") == Sent(0, True)


async def test_an_attempt_that_lost_its_job_records_no_intent(store: Storage) -> None:
    with attempt(HandAttempt(job_id=3)) as current:
        await store.sent.fence()
        assert current.fences == 1
        current.taken_over = True
        with pytest.raises(TakenOver):
            await store.sent.intend(3, "sendMessage#0", 0)
        with pytest.raises(TakenOver):
            await store.sent.fence()
    assert await store.sent.recorded(3, "sendMessage#0") is None


async def test_sent_messages_are_kept_a_day_then_purged(store: Storage) -> None:
    for job in (1, 2):
        await store.sent.intend(job, "sendPhoto#0", 0)
        await store.sent.record(job, "sendPhoto#0", {"message_id": job})
    assert await store.sent.purge() == 0  # a day is not over
    assert await store.sent.purge(older_than=0.0) == 2
    assert await store.sent.recorded(1, "sendPhoto#0") is None


async def test_usage_is_summed_per_user_since_a_time(store: Storage) -> None:
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    for user, prompt in ((7, 100), (7, 50), (8, 10)):
        tokens = TokenCounts(prompt=prompt, output=5, thinking=1, total=prompt + 6)
        await store.usage.record(UsageRecord(1, user, None, "question", "m", tokens))
    totals = await store.usage.user_totals(7, since)
    assert (totals.calls, totals.prompt_tokens, totals.output_tokens) == (2, 150, 12)
    assert totals.total_tokens == 162
    assert [u for u, _ in await store.usage.per_user(since)] == [7, 8]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat(timespec="seconds")
    assert (await store.usage.user_totals(7, future)).calls == 0


async def test_uploads_are_remembered_replaced_and_dropped(store: Storage) -> None:
    uploads = store.uploads
    first = Upload(A, "files/1", "https://x/1", "image/jpeg", "2026-12-06T00:00:00+00:00")
    await uploads.put(first)
    await uploads.put(replace(first, name="files/2", uri="https://x/2"))
    got = await uploads.get(A)
    assert got is not None and (got.name, got.uri) == ("files/2", "https://x/2")
    await uploads.put(replace(first, sha256=B))
    assert set(await uploads.get_many([A, B, C])) == {A, B}
    await uploads.drop(A)
    assert await uploads.get(A) is None


async def test_an_albums_context_cache_is_kept_replaced_and_goes_with_the_chat(
    store: Storage,
) -> None:
    caches = store.caches
    mine, other = await store.albums.current(1), await store.albums.current(2)
    second = await store.albums.create(1, "Porto")
    first = CachedContext("cachedContents/1", "k1", "2026-12-06T00:00:00+00:00", 2048)
    await caches.put(mine.id, first)
    await caches.put(mine.id, replace(first, name="cachedContents/2", tokens=4096))
    await caches.put(second.id, replace(first, name="cachedContents/3"))
    await caches.put(other.id, replace(first, name="cachedContents/4"))
    assert await caches.get(mine.id) == replace(first, name="cachedContents/2", tokens=4096)
    assert [c.name for c in await caches.for_chat(1)] == ["cachedContents/2", "cachedContents/3"]
    await caches.drop(second.id)
    assert await caches.get(second.id) is None
    await store.privacy.forget(1)
    assert await caches.get(mine.id) is None and await caches.for_chat(1) == []
    assert await caches.get(other.id) is not None


async def test_cached_tokens_are_summed_beside_the_prompt(store: Storage) -> None:
    tokens = TokenCounts(prompt=100, output=5, cached=80, total=105)
    await store.usage.record(UsageRecord(1, 5, None, "question", "m", tokens))
    await store.usage.record(UsageRecord(1, 5, None, "question", "m", tokens))
    since = "2000-01-01T00:00:00+00:00"
    totals = await store.usage.user_totals(5, since)
    assert (totals.prompt_tokens, totals.cached_tokens) == (200, 160)
    [(user, per_user)] = await store.usage.per_user(since)
    assert (user, per_user.cached_tokens) == (5, 160)


async def test_a_received_updates_job_says_when_it_was_received_on_the_database_clock(
    store: Storage,
) -> None:
    # A burst is timed by when its files were received, not by when a backlog let their
    # updates be handled: the job carries the database's time of the update's journaling.
    db = store.inbox.db  # type: ignore[attr-defined]
    before = await db.read(now_in)
    await store.inbox.receive_many([(1, update_job(1, chat_id=7)), (2, update_job(2, chat_id=7))])
    assert await store.inbox.receive(3, update_job(3, chat_id=7))
    after = await db.read(now_in)
    seen: dict[int, float] = {}
    gate = asyncio.Event()

    async def run(attempt: Attempt, args: JSON) -> None:
        seen[int(args["update"]["update_id"])] = float(args[RECEIVED_AT])
        await gate.wait()

    store.jobs.register(Task("update", run))
    await store.jobs.start({CHAT: 4, MEDIA: 1})
    gate.set()
    assert await store.jobs.wait_idle(WAIT)
    assert sorted(seen) == [1, 2, 3]
    assert all(before <= at <= after for at in seen.values())
    assert seen[1] <= seen[2] <= seen[3]


class Updates:
    """Runs the jobs the inbox deferred (task "update", as the bot registers it) and records
    what they did: (update_id, attempt number) per start, update_ids that ended, given-up jobs."""

    def __init__(self, store: Storage) -> None:
        self.store = store
        self.started: list[tuple[int, int]] = []
        self.ended: list[int] = []
        self.given_up: list[tuple[str, dict[str, object]]] = []
        self.gates: dict[int, asyncio.Event] = {}  # an update's job waits for its gate
        self.failing: dict[int, int] = {}  # how many attempts of an update's job raise
        self._changed = asyncio.Condition()

    async def start(self) -> None:
        """Register the task and start the storage's job queue."""

        async def run(attempt: Attempt, args: JSON) -> None:
            update = int(args["update"]["update_id"])
            self.started.append((update, attempt.number))
            if update in self.gates:
                await self.gates[update].wait()
            if attempt.number < self.failing.get(update, 0):
                raise RuntimeError(f"update {update} fails attempt {attempt.number}")
            self.ended.append(update)
            async with self._changed:
                self._changed.notify_all()

        async def tell(task: str, args: JSON) -> None:
            self.given_up.append((task, dict(args)))

        self.store.jobs.register(Task("update", run, retry_wait=0.01))
        await self.store.jobs.start({CHAT: 4, MEDIA: 1}, tell)

    async def finish(self) -> None:
        """Wait until no job waits or runs."""
        assert await self.store.jobs.wait_idle(WAIT)

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until `condition` holds, looking after each job's end; fail after WAIT s."""
        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(condition)

    def tries(self, update: int) -> list[int]:
        return [n for u, n in self.started if u == update]

    def order(self, *updates: int) -> list[int]:
        """The first starts of `updates`, in order."""
        return [u for u, n in self.started if u in updates and n == 0]


def update_job(update_id: int, chat_id: int | None = None) -> Job:
    """The job of a received update, as bot/telegram/durable.py makes it."""
    lock = f"chat:{chat_id}" if chat_id is not None else None
    return Job("update", {"update": {"update_id": update_id}}, lock=lock, queue=CHAT)


async def test_an_update_is_received_with_its_job_in_one_transaction_and_run_once(
    store: Storage,
) -> None:
    inbox = store.inbox
    assert await inbox.receive(2, update_job(2, chat_id=7))
    assert await inbox.receive(1, update_job(1, chat_id=7))
    assert not await inbox.receive(1, update_job(1, chat_id=7))  # a second copy: no second job
    with pytest.raises(TypeError):  # its job cannot be deferred: the update is not kept either
        await inbox.receive(3, Job("update", {"update": object()}, lock="chat:7"))
    assert await inbox.receive(3, update_job(3, chat_id=7))  # so Telegram's resend is taken
    updates = Updates(store)
    await updates.start()
    await updates.finish()
    assert updates.started == [(2, 0), (1, 0), (3, 0)]  # each once, in the order received
    assert updates.given_up == []


async def test_updates_received_together_are_one_transaction_and_run_in_their_order(
    store: Storage,
) -> None:
    inbox = store.inbox
    assert await inbox.receive(4, update_job(4, chat_id=7))
    # A poll's worth: a copy of one received before, and one update twice in the same lot.
    fresh = await inbox.receive_many(
        [(u, update_job(u, chat_id=7)) for u in (6, 4, 5, 6, 8)]
        + [(9, update_job(9, chat_id=9)), (10, update_job(10))]
    )
    assert fresh == [True, False, True, False, True, True, True]
    with pytest.raises(TypeError):  # one job cannot be deferred: none of the lot is kept
        await inbox.receive_many(
            [(11, update_job(11, chat_id=7)), (12, Job("update", {"update": object()}))]
        )
    assert await inbox.receive_many([(11, update_job(11, chat_id=7))]) == [True]
    assert await inbox.receive_many([]) == []
    updates = Updates(store)
    await updates.start()
    await updates.finish()
    chat_7 = [u for u, n in updates.started if u in (4, 5, 6, 8, 11)]
    assert chat_7 == [4, 6, 5, 8, 11]  # each once, in the order received
    assert sorted(u for u, _ in updates.started) == [4, 5, 6, 8, 9, 10, 11]


async def test_the_inbox_knows_an_update_received_before_pending_or_handled(
    store: Storage,
) -> None:
    inbox = store.inbox
    assert await inbox.receive(1, update_job(1, chat_id=7))
    assert not await inbox.receive(1, update_job(1, chat_id=7))  # pending: a second copy
    assert not await inbox.handled(1)
    await inbox.done(1)
    assert await inbox.handled(1)
    assert not await inbox.receive(1, update_job(1, chat_id=7))  # handled: not run again
    await inbox.done(2)  # handled without being journaled (the database was away): noted too
    assert await inbox.handled(2)
    assert not await inbox.receive(2, update_job(2))
    updates = Updates(store)
    await updates.start()
    await updates.finish()
    assert updates.started == [(1, 0)]  # one job, deferred by the first copy only


async def test_an_update_whose_job_fails_every_try_is_handed_back_once_to_be_reported(
    store: Storage,
) -> None:
    inbox = store.inbox
    await inbox.receive(5, update_job(5, chat_id=7))
    await inbox.receive(6, update_job(6, chat_id=7))
    updates = Updates(store)
    updates.failing[5] = 99
    await updates.start()
    await updates.finish()
    assert updates.tries(5) == [0, 1, 2]  # Task.attempts: three tries in all
    [(task, args)] = updates.given_up  # reported once
    assert task == "update" and args["update"] == {"update_id": 5}
    assert updates.ended == [6]  # the chat goes on after it
    assert not await inbox.receive(5, update_job(5, chat_id=7))  # a resend is not run again


async def test_a_chats_updates_run_one_at_a_time_in_order_beside_other_chats(
    store: Storage,
) -> None:
    inbox = store.inbox
    await inbox.receive(10, update_job(10, chat_id=7))
    await inbox.receive(11, update_job(11, chat_id=8))
    await inbox.receive(12, update_job(12, chat_id=7))
    updates = Updates(store)
    updates.gates[10] = asyncio.Event()  # chat 7's first update takes its time
    await updates.start()
    await updates.until(lambda: 11 in updates.ended)  # chat 8 is not held up by chat 7
    assert updates.order(10, 12) == [10]  # chat 7's next waits for the one running
    updates.gates[10].set()
    await updates.finish()
    assert updates.order(10, 12) == [10, 12]
    assert sorted(updates.ended) == [10, 11, 12]


async def test_an_update_that_failed_is_tried_again_before_its_chats_next(
    store: Storage,
) -> None:
    inbox = store.inbox
    await inbox.receive(1, update_job(1, chat_id=1))
    await inbox.receive(3, update_job(3, chat_id=1))
    await inbox.receive(2, update_job(2, chat_id=2))
    updates = Updates(store)
    updates.failing[1] = 2  # its third try works
    await updates.start()
    await updates.finish()
    chat_1 = [(u, n) for u, n in updates.started if u in (1, 3)]
    assert chat_1 == [(1, 0), (1, 1), (1, 2), (3, 0)]
    assert sorted(updates.ended) == [1, 2, 3]
    assert updates.given_up == []


async def test_forgetting_a_chat_keeps_what_other_chats_use(store: Storage) -> None:
    mine, theirs = await store.albums.current(1), await store.albums.current(2)
    b1, b2 = await store.media.new_batch(mine.id), await store.media.new_batch(theirs.id)
    await store.media.add(mine.id, b1, photo(A), 10)
    await store.media.add(mine.id, b1, photo(B), 10)
    await store.media.add(theirs.id, b2, photo(B), 10)
    await store.media.add_note(mine.id, "note", b1, 5, "Ana")
    await store.conversation.add(NewExchange(mine.id, "story", "p", "a"))
    await store.usage.record(UsageRecord(1, 5, mine.id, "story", "m", TokenCounts(total=9)))
    footprint = await store.privacy.footprint(1)
    assert (footprint.albums, footprint.items, footprint.notes) == (1, 2, 1)
    assert (footprint.exchanges, footprint.usage_rows) == (1, 1)
    forgotten = await store.privacy.forget(1)
    assert forgotten.footprint == footprint and forgotten.orphan_blobs == [A]
    empty = await store.privacy.footprint(1)
    assert (empty.albums, empty.items, empty.notes, empty.exchanges, empty.usage_rows) == (
        0, 0, 0, 0, 0,
    )  # fmt: skip
    assert len(await store.media.items(theirs.id)) == 1
    since = "2000-01-01T00:00:00+00:00"
    assert (await store.usage.user_totals(5, since)).total_tokens == 9  # still counts


async def test_concurrent_adds_to_one_album_keep_numbers_unique_and_the_cap(
    store: Storage,
) -> None:
    album = await store.albums.current(1)
    batch = await store.media.new_batch(album.id)
    shas = [f"{n:064x}" for n in range(1, 13)]
    # Twelve files at once, two of them the same bytes twice, into an album that takes eight.
    outcomes = await asyncio.gather(
        *(store.media.add(album.id, batch, photo(sha), max_items=8) for sha in shas),
        store.media.add(album.id, batch, photo(shas[0]), max_items=8),
        store.media.add(album.id, batch, photo(shas[1]), max_items=8),
    )
    statuses = [o.status for o in outcomes]
    assert statuses.count(AddStatus.ADDED) == 8
    assert statuses.count(AddStatus.FULL) + statuses.count(AddStatus.DUPLICATE) == 6
    items = await store.media.items(album.id)
    assert [i.position for i in items] == list(range(1, 9))
    assert len({i.media.source.sha256 for i in items}) == 8
    assert await store.media.used_blobs() == {i.media.source.sha256 for i in items}


async def test_concurrent_first_use_of_a_chat_makes_one_current_album(store: Storage) -> None:
    albums = await asyncio.gather(*(store.albums.current(42) for _ in range(6)))
    assert len({a.id for a in albums}) == 1
    assert [s.album.id for s in await store.albums.summaries(42)] == [albums[0].id]


async def test_ids_grow_and_telegram_sized_numbers_survive(store: Storage) -> None:
    chat, user, message = -1_002_345_678_901, 7_812_345_678, 3_000_000_123  # past 32 bits
    first, second = await store.albums.create(chat, "A"), await store.albums.create(chat, "B")
    assert 0 < first.id < second.id
    batch = await store.media.new_batch(second.id)
    big = replace(photo(A, chat_message_id=message, sender_id=user),
                  source=Blob(A, 3_500_000_000, "video/mp4"))  # fmt: skip
    added = (await store.media.add(second.id, batch, big, 10)).item
    assert added is not None and added.media.source.size == 3_500_000_000
    assert await store.media.by_message(chat, message) == added
    assert (await store.albums.current(chat)).id == second.id
    note = await store.media.add_note(second.id, "n", batch, user, "Ana")
    assert note.sender_id == user and (await store.media.notes(second.id))[0].id == note.id
    await store.usage.record(UsageRecord(chat, user, second.id, "story", "m", TokenCounts(total=3)))
    assert (await store.usage.user_totals(user, "2000-01-01T00:00:00+00:00")).total_tokens == 3
    assert await store.inbox.receive(9_000_000_001, update_job(9_000_000_001, chat_id=chat))
    assert not await store.inbox.handled(9_000_000_001)
    await store.inbox.done(9_000_000_001)
    assert await store.inbox.handled(9_000_000_001)
    assert not await store.inbox.receive(9_000_000_001, update_job(9_000_000_001))


async def test_times_keep_their_offsets_or_their_absence(store: Storage) -> None:
    album = await store.albums.current(1)
    batch = await store.media.new_batch(album.id)
    times = [
        datetime(2026, 3, 1, 23, 59, 59, tzinfo=timezone(timedelta(hours=5, minutes=45))),
        datetime(2026, 3, 1, 23, 59, 59, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
        datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 3, 1, 23, 59, 59),  # a camera that records no offset
    ]
    for n, moment in enumerate(times):
        media = replace(photo(f"{n:064x}", message_date=moment.replace(tzinfo=UTC)),
                        facts=MediaFacts(taken_at=moment, time_source="exif"))  # fmt: skip
        await store.media.add(album.id, batch, media, 10)
    read = [i.media.facts.taken_at for i in await store.media.items(album.id)]
    assert [(t, t.utcoffset() if t else None) for t in read] == [(t, t.utcoffset()) for t in times]
    stamp = datetime.fromisoformat(album.created_at)
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=5)


async def test_text_in_any_script_is_stored_as_written(store: Storage) -> None:
    name = "Lisboa ☀️ — 東京 · القاهرة · Zürich 'quoted' \"too\" 100%_x"
    album = await store.albums.create(1, name)
    assert (await store.albums.get(1, album.id)).name == name  # type: ignore[union-attr]
    batch = await store.media.new_batch(album.id)
    caption = "👩‍👩‍👧 e\u0301 ñ 🇵🇹\nsecond line\t"
    added = (await store.media.add(album.id, batch, photo(A, caption=caption), 10)).item
    assert added is not None
    assert (await store.media.get(album.id, added.id)).media.origin.caption == caption  # type: ignore[union-attr]
    # Telegram's ids are case-sensitive: a file differing only in case is another file.
    await store.media.add(album.id, batch, photo(B, unique="AbCd"), 10)
    assert (await store.media.arrival(album.id, "abcd"))[0] is None
    assert (await store.media.arrival(album.id, "AbCd"))[0] is not None
    note = await store.media.add_note(album.id, "نوشته — 메모 ✍️", batch, 5, "Zoë")
    assert await store.media.notes(album.id) == [note]
    answer = "Ответ 🙂"
    await store.conversation.add(NewExchange(album.id, "question", "вопрос?", answer))
    assert (await store.conversation.latest(album.id)).answer_text == answer  # type: ignore[union-attr]


def test_blobs_are_content_addressed(store: Storage) -> None:
    blobs = store.blobs
    sha1, size = blobs.put_bytes(b"hello")
    sha2, _ = blobs.put_bytes(b"hello")
    assert sha1 == sha2 and size == 5
    assert blobs.path_for(sha1).read_bytes() == b"hello"
    assert blobs.exists(sha1) and sha1 in blobs.stored() and blobs.modified(sha1) > 0
    temp = blobs.new_temp_path(".jpg")
    temp.write_bytes(b"from a download")
    sha3, _ = blobs.adopt(temp)
    assert not temp.exists() and blobs.path_for(sha3).read_bytes() == b"from a download"
    blobs.release(sha1, sha2, sha3)
    blobs.delete(sha3)
    assert not blobs.exists(sha3) and blobs.modified(sha3) == 0
    blobs.delete(sha3)  # a missing blob is no error


def test_a_blob_on_its_way_into_a_row_is_not_deleted_until_released(store: Storage) -> None:
    blobs = store.blobs
    sha, _ = blobs.put_bytes(b"photo")  # one chat stores it...
    again, _ = blobs.put_bytes(b"photo")  # ...and another the same bytes
    blobs.release(sha)
    blobs.delete(sha)  # the first gave it up: the second still needs it
    assert blobs.exists(sha)
    blobs.release(again)
    blobs.delete(sha)
    assert not blobs.exists(sha)
