"""Bursts as rows (`storage.bursts`, on each engine): one batch and one acknowledgement per
burst of media, timed by the database's clock; and what the acknowledgement says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import text

from bot import i18n
from bot.service.bursts import (
    FAILURE_REASONS,
    Burst,
    Failure,
    acknowledgement,
    acknowledgement_text,
)
from storage.jobs import Job
from storage.protocols import Storage
from storage.records import (
    Album,
    AlbumSummary,
    BurstCounting,
    CurrentAlbum,
    Origin,
    Reserved,
)
from storage.sql.burst_store import MAX_ENDED_PER_CHAT, MAX_HOLD
from storage.sql.clock import now_in
from tests.storage_backends import BACKENDS

CHAT = 7
ALBUM = 1
GAP = 3600.0  # longer than any test: a burst ends only when a test says so
T = TypeVar("T")


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    async with BACKENDS[request.param](tmp_path) as storage:
        yield storage


async def _album(store: Storage, chat: int = CHAT) -> int:
    return (await store.albums.current(chat)).id


async def _add(
    store: Storage, album: int, kind: str = "photo", chat: int = CHAT, gap: float = GAP
) -> Burst:
    """What AlbumService does for a new item or note: take the burst's batch, then count."""
    batch = await store.bursts.batch(chat, album, gap)
    return await store.bursts.count(chat, album, batch, kind, debounce=1.0, gap=gap)


async def _repeat(store: Storage, album: int, gap: float = GAP) -> Burst:
    return await store.bursts.count(CHAT, album, None, "repeat", debounce=1.0, gap=gap)


async def _until(check: Callable[[], Awaitable[T | None]], timeout: float = 30.0) -> T:
    """Poll `check` until it returns something (the database's clock moves on meanwhile)."""
    async with asyncio.timeout(timeout):
        while True:
            found = await check()
            if found is not None:
                return found
            await asyncio.sleep(0.02)


async def test_a_burst_opens_with_the_first_item_and_grows(store: Storage) -> None:
    album = await _album(store)
    first = await _add(store, album, "photo")
    assert first.batch_id is not None and first.version == 1
    video = await _add(store, album, "video")
    note = await _add(store, album, "note")
    assert video.batch_id == note.batch_id == first.batch_id  # the open batch, not a new one
    assert note.id == first.id and note.last >= first.last
    assert (note.photos, note.videos, note.notes) == (1, 1, 1)
    assert note.version == 3 and note.unshown
    assert [b.id for b in await store.bursts.unshown(CHAT)] == [first.id]


async def test_a_burst_ends_after_the_gap_on_the_database_clock(store: Storage) -> None:
    album = await _album(store)
    first = await _add(store, album)
    again = await _add(store, album)  # within the gap: extends the burst, from now
    assert again.id == first.id and again.last >= first.last
    gap = 0.3

    async def after_the_gap() -> Burst | None:
        # A repeat joins the burst while it lasts but keeps no batch open.
        burst = await _repeat(store, album, gap)
        return burst if burst.id != first.id else None

    second = await _until(after_the_gap)
    assert second.batch_id is None and second.repeats == 1
    assert second.started - again.last >= gap  # measured from the last item, on one clock
    # The next item opens a new batch in the burst of repeats.
    third = await _add(store, album, gap=gap)
    assert third.id == second.id and third.batch_id not in (None, first.batch_id)
    # No quiet at all: every item starts a burst of its own.
    fourth = await _add(store, album, gap=0.0)
    assert fourth.id != third.id and fourth.message_id is None


async def test_a_burst_of_repeats_takes_the_first_new_batch(store: Storage) -> None:
    album = await _album(store)
    first = await _repeat(store, album)
    assert first.batch_id is None
    burst = await _add(store, album)
    assert (burst.id, burst.repeats, burst.photos) == (first.id, 1, 1)
    assert burst.batch_id is not None


async def test_another_album_starts_another_burst(store: Storage) -> None:
    album = await _album(store)
    other = (await store.albums.create(CHAT, "Porto")).id
    first = await _add(store, album)
    second = await _add(store, other)
    assert second.id != first.id and second.album_id == other
    assert second.batch_id != first.batch_id
    # The first one's news is still owed to the chat, oldest first.
    assert [b.id for b in await store.bursts.unshown(CHAT)] == [first.id, second.id]


async def test_ending_a_burst_starts_a_new_batch_but_still_acknowledges_it(
    store: Storage,
) -> None:
    album = await _album(store)
    first = await _add(store, album)
    await store.bursts.end(CHAT)
    (ended,) = await store.bursts.unshown(CHAT)
    assert ended.id == first.id and ended.ended
    second = await _add(store, album)
    assert second.id != first.id and second.batch_id != first.batch_id
    await store.bursts.shown(CHAT, ended.id, ended.version, message_id=55)
    assert [b.id for b in await store.bursts.unshown(CHAT)] == [second.id]


async def test_a_shown_burst_is_not_shown_again_ended_or_not(store: Storage) -> None:
    album = await _album(store)
    burst = await _add(store, album)
    await store.bursts.shown(CHAT, burst.id, burst.version, message_id=55)
    assert await store.bursts.unshown(CHAT) == []
    assert await store.bursts.due(CHAT) is None
    await store.bursts.shown(CHAT, burst.id, burst.version, message_id=55)  # a second flush
    await store.bursts.end(CHAT)
    assert await store.bursts.unshown(CHAT) == []


async def test_the_message_id_is_kept_and_a_change_during_sending_stays_unshown(
    store: Storage,
) -> None:
    album = await _album(store)
    burst = await _add(store, album)
    await _add(store, album)  # arrives while the first acknowledgement is on its way
    await store.bursts.shown(CHAT, burst.id, burst.version, message_id=55)
    (after,) = await store.bursts.unshown(CHAT)
    assert after.message_id == 55 and after.photos == 2 and after.shown == burst.version


async def test_an_ended_burst_changed_during_sending_keeps_its_message(store: Storage) -> None:
    album = await _album(store)
    burst = await _add(store, album)
    await _add(store, album)
    await store.bursts.end(CHAT)
    await store.bursts.shown(CHAT, burst.id, burst.version, message_id=55)  # the first went out
    (ended,) = await store.bursts.unshown(CHAT)
    assert ended.message_id == 55  # the second version edits that message
    await store.bursts.shown(CHAT, ended.id, ended.version, message_id=55)
    assert await store.bursts.unshown(CHAT) == []


async def test_taking_back_a_batch_ends_its_burst_without_acknowledging(store: Storage) -> None:
    album = await _album(store)
    burst = await _add(store, album)
    assert burst.batch_id is not None
    await store.bursts.end_batch(CHAT, batch_id=burst.batch_id + 1000)  # another: it goes on
    assert await store.bursts.batch(CHAT, album, GAP) == burst.batch_id
    await store.bursts.end_batch(CHAT, batch_id=burst.batch_id)
    assert await store.bursts.unshown(CHAT) == []
    assert await store.bursts.batch(CHAT, album, GAP) != burst.batch_id


async def test_forget_drops_the_chats_bursts_and_hints_only(store: Storage) -> None:
    album = await _album(store)
    other = await _album(store, chat=8)
    await _add(store, album)
    await store.bursts.end(CHAT)
    await _add(store, album)
    kept = await _add(store, other, chat=8)
    assert await store.bursts.first_time(CHAT, "album_full", quiet=GAP)
    await store.bursts.forget(CHAT)
    assert await store.bursts.unshown(CHAT) == []
    assert [b.id for b in await store.bursts.unshown(8)] == [kept.id]
    assert await store.bursts.first_time(CHAT, "album_full", quiet=GAP)  # told afresh


async def test_ended_bursts_nobody_acknowledges_are_bounded(store: Storage) -> None:
    album = await _album(store)
    batches = []
    for _ in range(MAX_ENDED_PER_CHAT + 5):
        batches.append((await _add(store, album)).batch_id)
        await store.bursts.end(CHAT)
    kept = await store.bursts.unshown(CHAT)
    assert len(kept) == MAX_ENDED_PER_CHAT
    assert kept[-1].batch_id == batches[-1]  # the newest are kept


async def test_the_acknowledgement_is_due_a_debounce_after_the_last_change(
    store: Storage,
) -> None:
    album = await _album(store)
    assert await store.bursts.due(CHAT) is None
    batch = await store.bursts.batch(CHAT, album, GAP)
    burst = await store.bursts.count(CHAT, album, batch, "photo", debounce=600.0, gap=GAP)
    due = await store.bursts.due(CHAT)
    assert due is not None and 0 < due <= 600.0
    assert burst.quiet_until == pytest.approx(burst.pending_since + 600.0)  # type: ignore[operator]
    now = await store.bursts.count(CHAT, album, batch, "photo", debounce=0.0, gap=GAP)
    assert await store.bursts.due(CHAT) == 0.0 and now.pending_since == burst.pending_since
    await store.bursts.shown(CHAT, burst.id, now.version, message_id=5)
    assert await store.bursts.due(CHAT) is None


async def test_a_continuous_burst_is_not_held_back_longer_than_a_few_debounces(
    store: Storage,
) -> None:
    album = await _album(store)
    debounce = 0.1

    async def held_to_the_cap() -> Burst | None:
        batch = await store.bursts.batch(CHAT, album, GAP)  # the burst's `last` is now
        burst = await store.bursts.count(CHAT, album, batch, "photo", debounce=debounce, gap=GAP)
        assert burst.quiet_until is not None
        return burst if burst.quiet_until < burst.last + debounce - 1e-6 else None

    burst = await _until(held_to_the_cap)
    assert burst.pending_since is not None
    assert burst.quiet_until == pytest.approx(burst.pending_since + MAX_HOLD * debounce)


async def test_a_failed_file_is_named_once(store: Storage) -> None:
    album = await _album(store)
    burst = await _add(store, album)
    await store.bursts.shown(CHAT, burst.id, burst.version, message_id=55)
    reason = FAILURE_REASONS["empty"]
    assert await store.bursts.fail(CHAT, burst.id, "IMG_12.jpg", reason)
    assert await store.bursts.due(CHAT) == 0.0  # news already shown: the failure is due now
    (failing,) = await store.bursts.unshown(CHAT)
    assert [(f.name, f.reason) for f in failing.failures] == [("IMG_12.jpg", reason)]
    assert failing.message_id == 55 and failing.version == burst.version + 1
    await store.bursts.shown(CHAT, burst.id, failing.version, message_id=55)
    assert await store.bursts.unshown(CHAT) == []
    later = await _add(store, album)  # the burst goes on: the failure is not said again
    assert later.id == burst.id and later.failures == ()
    assert not await store.bursts.fail(CHAT, burst.id + 1000, "IMG_13.jpg", reason)


async def test_a_file_named_again_by_its_job_run_again_is_named_once(store: Storage) -> None:
    album = await _album(store)
    burst = await _add(store, album)
    reason = FAILURE_REASONS["unreadable"]
    assert await store.bursts.fail(CHAT, burst.id, "IMG_12.jpg", reason, key="arrival:7")
    (named,) = await store.bursts.unshown(CHAT)
    assert await store.bursts.fail(CHAT, burst.id, "IMG_12.jpg", reason, key="arrival:7")
    (again,) = await store.bursts.unshown(CHAT)
    assert again.failures == named.failures and again.version == named.version
    # Another file of the same name (sent again, failing again) is named too.
    assert await store.bursts.fail(CHAT, burst.id, "IMG_12.jpg", reason, key="arrival:8")
    (both,) = await store.bursts.unshown(CHAT)
    assert [f.name for f in both.failures] == ["IMG_12.jpg", "IMG_12.jpg"]


async def test_a_failure_during_sending_waits_for_the_next_version(store: Storage) -> None:
    album = await _album(store)
    burst = await _add(store, album)
    await store.bursts.fail(CHAT, burst.id, "a.mp4", FAILURE_REASONS["download"])
    await store.bursts.shown(CHAT, burst.id, burst.version, message_id=55)  # sent without it
    (behind,) = await store.bursts.unshown(CHAT)
    assert [f.name for f in behind.failures] == ["a.mp4"]


async def test_a_hint_is_given_once_until_the_chat_was_quiet(store: Storage) -> None:
    assert await store.bursts.first_time(1, "album_full", quiet=GAP)
    for _ in range(5):  # a burst of photos to a full album: answered once
        assert not await store.bursts.first_time(1, "album_full", quiet=GAP)
    assert await store.bursts.first_time(2, "album_full", quiet=GAP)  # another chat has its own
    assert await store.bursts.first_time(1, "other", quiet=GAP)  # and another topic
    assert await store.bursts.first_time(1, "album_full", quiet=0.0)  # after a quiet spell
    assert not await store.bursts.first_time(1, "album_full", quiet=GAP)  # counted as told


# What the acknowledgement says -------------------------------------------------------------


def _summary(
    photos: int = 0, videos: int = 0, notes: int = 0, voice_notes: int = 0
) -> AlbumSummary:
    album = Album(ALBUM, CHAT, "Lisbon", "2026-01-01", "2026-01-01")
    return AlbumSummary(album, photos, videos, notes, 0, voice_notes=voice_notes)


def test_the_acknowledgement_says_the_totals_and_the_news() -> None:
    burst = Burst(1, ALBUM, 10, 0.0, photos=2, videos=1, notes=1, repeats=1, message_id=5)
    text = acknowledgement_text(_summary(photos=12, videos=1, notes=3), burst)
    assert text == (
        "📸 Album “Lisbon”: 12 photos, 1 video · 3 notes\n"
        "Just now: added 2 photos, 1 video; noted 1 thing you told me; "
        "1 already in the album, kept once.\n"
        "Send more, or /story when you are ready."
    )
    ack = acknowledgement(CHAT, burst, _summary(photos=12))
    assert (ack.message_id, ack.undo_batch_id, ack.burst_id) == (5, 10, 1)


def test_a_burst_without_a_batch_offers_no_undo() -> None:
    burst = Burst(1, ALBUM, None, 0.0, repeats=1)
    ack = acknowledgement(CHAT, burst, _summary(photos=1))
    assert ack.undo_batch_id is None and ack.message_id is None
    assert ack.text.splitlines()[1] == "Just now: 1 already in the album, kept once."


async def test_voice_notes_are_counted_beside_the_photos_and_alone(store: Storage) -> None:
    album = await _album(store)
    for kind in ("photo", "audio", "photo"):
        burst = await _add(store, album, kind)
    assert (burst.photos, burst.voice_notes) == (2, 1)
    text = acknowledgement_text(_summary(photos=12, voice_notes=1), burst)
    assert text.splitlines()[:2] == [
        "📸 Album “Lisbon”: 12 photos, 1 voice note",
        "Just now: added 2 photos, 1 voice note.",
    ]
    alone = Burst(2, ALBUM, 11, 0.0, voice_notes=2)
    assert acknowledgement_text(_summary(voice_notes=2), alone).splitlines()[:2] == [
        "📸 Album “Lisbon”: 2 voice notes",
        "Just now: added 2 voice notes.",
    ]


def test_failed_files_are_named_a_few_then_counted_in_the_chats_language() -> None:
    empty = FAILURE_REASONS["empty"]
    failures = tuple(Failure(f"IMG_{n}.jpg", empty) for n in range(7))
    burst = Burst(1, ALBUM, 10, 0.0, photos=3, failures=failures)
    lines = acknowledgement_text(_summary(photos=3), burst).splitlines()
    assert lines[2] == "⚠️ IMG_0.jpg could not be added: the file is empty"
    assert lines[6] == "⚠️ IMG_4.jpg could not be added: the file is empty"
    assert lines[7] == "⚠️ 2 more files could not be added."
    assert lines[8] == "Send more, or /story when you are ready."
    with i18n.using("de"):
        german = acknowledgement_text(_summary(photos=3), burst).splitlines()
    assert german[2].startswith("⚠️ IMG_0.jpg") and "empty" not in german[2]


async def _clock(store: Storage) -> float:
    """Now on the database's clock."""
    db = store.inbox.db  # type: ignore[attr-defined]
    return float(await db.read(now_in))


async def _reserve(
    store: Storage, n: int, received_at: float | None, updates_lock: str | None = None
) -> Reserved:
    """What AlbumService.receive does: number photo `n` and count it in the burst, with the
    acknowledgement's job (a debounce of 600 s: nothing would run it in a test)."""
    origin = Origin(file_id=f"f{n}", file_unique_id=f"u{n}", chat_message_id=n)
    return await store.arrivals.reserve(
        CurrentAlbum(CHAT, "Trip"),
        None,
        "photo",
        origin,
        1000,
        max_items=50,
        burst=BurstCounting(
            CHAT,
            debounce=600.0,
            gap=GAP,
            then=Job("ack", {"chat": CHAT}, lock="ack:7", queueing_lock="ack:7", delay=600.0),
            received_at=received_at,
            updates_lock=updates_lock,
        ),
    )


async def test_a_file_numbered_behind_a_backlog_is_timed_by_when_it_was_received(
    store: Storage,
) -> None:
    # Received 590 s ago and numbered only now (a backlog): its acknowledgement is due 10 s
    # from now, a debounce after it was received, not a debounce from now.
    received = await _clock(store) - 590.0
    await _reserve(store, 1, received)
    [burst] = await store.bursts.unshown(CHAT)
    assert burst.last == pytest.approx(received)
    assert burst.quiet_until == pytest.approx(received + 600.0)
    due = await store.bursts.due(CHAT)
    assert due is not None and 0 < due <= 10.0
    # A time still to come is never taken: a file is counted no later than now.
    later = await _clock(store) + 3600.0
    await _reserve(store, 2, later)
    [burst] = await store.bursts.unshown(CHAT)
    assert burst.last <= await _clock(store)


async def test_the_acknowledgement_waits_for_the_chats_updates_received_before_it(
    store: Storage,
) -> None:
    # Its job is deferred to when it is due; a later file brings a waiting one forward, but
    # not while the chat's updates wait to start: the burst may still grow. A file counted
    # while they wait defers it a debounce from now (600 s here), not due at once.
    received = await _clock(store) - 3600.0  # due long ago
    await store.jobs.defer(Job("update", {"n": 1}, lock="chat:7"))  # a later update waits
    await _reserve(store, 1, received, updates_lock="chat:7")
    assert await store.jobs.waiting("ack:7", "ack")
    assert 500.0 < await _ack_due_in(store) <= 600.0  # held: the chat's update still waits
    await _reserve(store, 5, received)  # (no lock: at once, as before)
    assert await _ack_due_in(store) <= 0.0
    await _push_ack_back(store)
    await _reserve(store, 2, received, updates_lock="chat:7")
    assert await _ack_due_in(store) > 60.0  # left: the chat's update still waits
    await _reserve(store, 3, received)  # (no lock: brought forward as before)
    assert await _ack_due_in(store) <= 0.0
    await _push_ack_back(store)
    await _drop_update(store)  # the last update started (and counts the last file):
    await _reserve(store, 4, received, updates_lock="chat:7")
    assert await _ack_due_in(store) <= 0.0  # brought forward
    assert await store.jobs.waiting("chat:7", "update") is False


def _jobs_table(store: Storage) -> tuple[str, str, str]:
    """(table, its acknowledgement's due time in seconds since the epoch, task column)."""
    if store.inbox.db.engine == "postgresql":  # type: ignore[attr-defined]
        return (
            "procrastinate_jobs",
            "EXTRACT(EPOCH FROM COALESCE(scheduled_at, now()))",
            "task_name",
        )
    return "jobs", "run_after", "task"


async def _sql(store: Storage, sql: str, write: bool = False) -> Any:
    db = store.inbox.db  # type: ignore[attr-defined]
    if write:
        return await db.write(lambda conn: conn.execute(text(sql)).rowcount)
    return await db.read(lambda conn: conn.execute(text(sql)).first())


async def _ack_due_in(store: Storage) -> float:
    table, due, _ = _jobs_table(store)
    [seconds] = await _sql(store, f"SELECT {due} FROM {table} WHERE queueing_lock = 'ack:7'")
    return float(seconds) - await _clock(store)


async def _push_ack_back(store: Storage) -> None:
    table, _, _ = _jobs_table(store)
    later = (
        "scheduled_at = now() + interval '1 hour'"
        if table == "procrastinate_jobs"
        else f"run_after = {await _clock(store) + 3600.0}"
    )
    await _sql(store, f"UPDATE {table} SET {later} WHERE queueing_lock = 'ack:7'", write=True)


async def _drop_update(store: Storage) -> None:
    table, _, task = _jobs_table(store)
    await _sql(store, f"DELETE FROM {table} WHERE {task} = 'update'", write=True)
