"""The service's burst tracker: one batch and one acknowledgement per burst of media."""

from __future__ import annotations

from bot.service.bursts import (
    BURST_GAP_SECONDS,
    MAX_ENDED_PER_CHAT,
    Burst,
    Bursts,
    acknowledgement,
    acknowledgement_text,
)
from storage.records import Album, AlbumSummary

CHAT = 7
ALBUM = 1


class Clock:
    """A clock the test moves by hand (no sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _tracker() -> tuple[Bursts, Clock]:
    clock = Clock()
    return Bursts(clock=clock), clock


def _add(bursts: Bursts, kind: str, batch: int, album: int = ALBUM) -> int:
    """What AlbumService does for a new item or note: reuse the open batch or take `batch`."""
    batch_id = bursts.open_batch(CHAT, album)
    if batch_id is None:
        batch_id = batch
    bursts.use_batch(CHAT, album, batch_id)
    bursts.count(CHAT, album, batch_id, kind)
    return batch_id


def _summary(
    photos: int = 0, videos: int = 0, notes: int = 0, voice_notes: int = 0
) -> AlbumSummary:
    album = Album(ALBUM, CHAT, "Lisbon", "2026-01-01", "2026-01-01")
    return AlbumSummary(album, photos, videos, notes, 0, voice_notes=voice_notes)


def test_a_burst_opens_with_the_first_item_and_grows() -> None:
    bursts, clock = _tracker()
    assert bursts.open_batch(CHAT, ALBUM) is None
    assert _add(bursts, "photo", batch=10) == 10
    clock.now += 5
    assert _add(bursts, "video", batch=11) == 10  # the open batch, not a new one
    assert _add(bursts, "note", batch=12) == 10
    burst = bursts.current(CHAT)
    assert burst is not None
    assert (burst.batch_id, burst.photos, burst.videos, burst.notes) == (10, 1, 1, 1)
    assert burst.version == 3 and burst.unshown


def test_a_burst_ends_after_the_gap_and_the_next_item_starts_another() -> None:
    bursts, clock = _tracker()
    _add(bursts, "photo", batch=10)
    first = bursts.current(CHAT)
    assert first is not None
    clock.now += BURST_GAP_SECONDS - 1
    assert bursts.open_batch(CHAT, ALBUM) == 10
    _add(bursts, "photo", batch=11)  # extends the burst: the gap counts from here
    clock.now += BURST_GAP_SECONDS - 1
    assert bursts.open_batch(CHAT, ALBUM) == 10
    clock.now += 1
    assert bursts.open_batch(CHAT, ALBUM) is None
    assert _add(bursts, "photo", batch=12) == 12
    second = bursts.current(CHAT)
    assert second is not None
    assert second.id != first.id and (second.photos, second.message_id) == (1, None)


def test_repeats_do_not_keep_the_batch_open() -> None:
    bursts, clock = _tracker()
    _add(bursts, "photo", batch=10)
    clock.now += BURST_GAP_SECONDS - 1
    bursts.count(CHAT, ALBUM, bursts.open_batch(CHAT, ALBUM), "repeat")
    clock.now += 1
    assert bursts.open_batch(CHAT, ALBUM) is None


def test_a_burst_of_repeats_takes_the_first_new_batch() -> None:
    bursts, _ = _tracker()
    bursts.count(CHAT, ALBUM, bursts.open_batch(CHAT, ALBUM), "repeat")
    first = bursts.current(CHAT)
    assert first is not None and first.batch_id is None
    _add(bursts, "photo", batch=10)
    burst = bursts.current(CHAT)
    assert burst is not None
    assert (burst.id, burst.batch_id, burst.repeats, burst.photos) == (first.id, 10, 1, 1)


def test_another_album_starts_another_burst() -> None:
    bursts, _ = _tracker()
    _add(bursts, "photo", batch=10)
    first = bursts.current(CHAT)
    assert bursts.open_batch(CHAT, 2) is None
    _add(bursts, "photo", batch=20, album=2)
    second = bursts.current(CHAT)
    assert first is not None and second is not None
    assert second.id != first.id and second.album_id == 2
    # The first one's news is still owed to the chat, oldest first.
    assert [b.id for b in bursts.unshown(CHAT)] == [first.id, second.id]


def test_ending_a_burst_starts_a_new_batch_but_still_acknowledges_it() -> None:
    bursts, _ = _tracker()
    _add(bursts, "photo", batch=10)
    bursts.end(CHAT)
    assert bursts.current(CHAT) is None
    assert bursts.open_batch(CHAT, ALBUM) is None
    (ended,) = bursts.unshown(CHAT)
    bursts.shown(CHAT, ended.id, ended.version, message_id=55)
    assert bursts.unshown(CHAT) == [] and bursts.chats() == []


def test_an_ended_burst_that_was_shown_is_dropped() -> None:
    bursts, _ = _tracker()
    _add(bursts, "photo", batch=10)
    burst = bursts.current(CHAT)
    assert burst is not None
    bursts.shown(CHAT, burst.id, burst.version, message_id=55)
    assert not bursts.unshown(CHAT)
    bursts.end(CHAT)
    assert bursts.unshown(CHAT) == [] and bursts.chats() == []


def test_the_message_id_is_kept_and_a_change_during_sending_stays_unshown() -> None:
    bursts, _ = _tracker()
    _add(bursts, "photo", batch=10)
    burst = bursts.current(CHAT)
    assert burst is not None
    sending = burst.version
    _add(bursts, "photo", batch=11)  # arrives while the first acknowledgement is on its way
    bursts.shown(CHAT, burst.id, sending, message_id=55)
    after = bursts.current(CHAT)
    assert after is not None
    assert after.message_id == 55 and after.unshown and after.photos == 2


def test_an_ended_burst_changed_during_sending_keeps_its_message() -> None:
    bursts, _ = _tracker()
    _add(bursts, "photo", batch=10)
    burst = bursts.current(CHAT)
    assert burst is not None
    _add(bursts, "photo", batch=11)
    bursts.end(CHAT)
    bursts.shown(CHAT, burst.id, burst.version, message_id=55)  # the first version went out
    (ended,) = bursts.unshown(CHAT)
    assert ended.message_id == 55  # the second version edits that message
    bursts.shown(CHAT, ended.id, ended.version, message_id=55)
    assert bursts.unshown(CHAT) == []


def test_taking_back_a_batch_ends_its_burst_without_acknowledging() -> None:
    bursts, _ = _tracker()
    _add(bursts, "photo", batch=10)
    bursts.end_batch(CHAT, batch_id=9)  # another batch: the burst goes on
    assert bursts.open_batch(CHAT, ALBUM) == 10
    bursts.end_batch(CHAT, batch_id=10)
    assert bursts.current(CHAT) is None and bursts.unshown(CHAT) == []


def test_forget_drops_everything_of_the_chat_only() -> None:
    bursts, _ = _tracker()
    _add(bursts, "photo", batch=10)
    bursts.end(CHAT)
    _add(bursts, "photo", batch=11)
    bursts.count(8, ALBUM, None, "repeat")
    bursts.forget(CHAT)
    assert bursts.current(CHAT) is None and bursts.unshown(CHAT) == []
    assert bursts.chats() == [8]


def test_ended_bursts_nobody_acknowledges_are_bounded() -> None:
    bursts, _ = _tracker()
    for batch in range(MAX_ENDED_PER_CHAT + 5):
        _add(bursts, "photo", batch=batch)
        bursts.end(CHAT)
    kept = bursts.unshown(CHAT)
    assert len(kept) == MAX_ENDED_PER_CHAT
    assert kept[-1].batch_id == MAX_ENDED_PER_CHAT + 4  # the newest are kept


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


def test_voice_notes_are_counted_beside_the_photos_and_alone() -> None:
    bursts, _ = _tracker()
    for kind in ("photo", "audio", "photo"):
        _add(bursts, kind, batch=10)
    burst = bursts.current(CHAT)
    assert burst is not None and (burst.photos, burst.voice_notes) == (2, 1)
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
