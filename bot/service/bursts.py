"""A burst: media and notes sent close together, one batch and one acknowledgement message.

The state is plain data keyed by chat id and changed only through `Bursts`' methods, so it could
later live in shared storage; for now it is kept in memory.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from bot.i18n import _, ngettext
from bot.service.words import counted
from storage.records import AlbumSummary

# A burst ends after this much quiet: the next media gets a fresh batch and acknowledgement.
BURST_GAP_SECONDS = 120.0
# Ended bursts wait here until their last change is shown; a chat nobody acknowledges (a script
# driving the service directly) must not collect them forever.
MAX_ENDED_PER_CHAT = 8

KINDS = ("photo", "video", "audio", "note", "repeat")


@dataclass(frozen=True)
class Burst:
    """One chat's burst: which batch it fills, what it added, and the message that says so."""

    id: int
    album_id: int
    batch_id: int | None  # None while it holds only repeats, which open no batch
    last: float  # when a new item or note last used its batch (the clock's seconds)
    photos: int = 0
    videos: int = 0
    voice_notes: int = 0  # items of kind "audio"
    notes: int = 0
    repeats: int = 0
    message_id: int | None = None  # the acknowledgement sent for it, edited as it grows
    version: int = 0  # changes counted so far
    shown: int = 0  # the version its acknowledgement last showed

    @property
    def unshown(self) -> bool:
        """Whether it counted something its acknowledgement does not show yet."""
        return self.version > self.shown


@dataclass(frozen=True)
class Acknowledgement:
    """What a burst's acknowledgement should say now (the Telegram side sends or edits it)."""

    chat_id: int
    burst_id: int
    version: int
    message_id: int | None  # the message to edit; None to send a new one
    text: str
    undo_batch_id: int | None  # the batch an Undo button takes back; None for no button


class Bursts:
    """Every chat's current burst, and ended ones whose last change is not acknowledged yet."""

    def __init__(
        self,
        gap: float = BURST_GAP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gap = gap
        self.clock = clock
        self._current: dict[int, Burst] = {}
        self._ended: dict[int, list[Burst]] = {}
        self._ids = itertools.count(1)

    def current(self, chat_id: int) -> Burst | None:
        """The chat's burst under way, if any."""
        return self._current.get(chat_id)

    def open_batch(self, chat_id: int, album_id: int) -> int | None:
        """The batch new media of this album joins, or None when a new batch must begin."""
        burst = self._current.get(chat_id)
        if (
            burst is not None
            and burst.album_id == album_id
            and burst.batch_id is not None
            and self.clock() - burst.last < self.gap
        ):
            return burst.batch_id
        return None

    def use_batch(self, chat_id: int, album_id: int, batch_id: int) -> None:
        """A new item or note goes into `batch_id` now: the burst takes it and stays open."""
        burst = self._current.get(chat_id)
        now = self.clock()
        if burst is not None and burst.album_id == album_id and burst.batch_id in (None, batch_id):
            self._current[chat_id] = replace(burst, batch_id=batch_id, last=now)
        else:
            self._start(chat_id, album_id, batch_id, now)

    def count(self, chat_id: int, album_id: int, batch_id: int | None, kind: str) -> Burst:
        """Something was stored (kind 'photo', 'video', 'audio', 'note' or 'repeat'); the burst
        after it."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        burst = self._current.get(chat_id)
        if (
            burst is None
            or burst.album_id != album_id
            or (batch_id is not None and burst.batch_id not in (None, batch_id))
        ):
            burst = self._start(chat_id, album_id, batch_id, self.clock())
        elif batch_id is not None:
            burst = replace(burst, batch_id=batch_id)
        burst = replace(
            burst,
            photos=burst.photos + (kind == "photo"),
            videos=burst.videos + (kind == "video"),
            voice_notes=burst.voice_notes + (kind == "audio"),
            notes=burst.notes + (kind == "note"),
            repeats=burst.repeats + (kind == "repeat"),
            version=burst.version + 1,
        )
        self._current[chat_id] = burst
        return burst

    def end(self, chat_id: int) -> None:
        """The burst is over: the next media starts a new batch and message.

        What it counted but has not shown yet is still acknowledged (see `unshown`).
        """
        burst = self._current.pop(chat_id, None)
        if burst is not None and burst.unshown:
            ended = self._ended.setdefault(chat_id, [])
            ended.append(burst)
            del ended[:-MAX_ENDED_PER_CHAT]

    def end_batch(self, chat_id: int, batch_id: int) -> None:
        """A batch was taken back: its burst ends, and what it counted is never announced."""
        burst = self._current.get(chat_id)
        if burst is not None and burst.batch_id == batch_id:
            del self._current[chat_id]
        ended = [b for b in self._ended.get(chat_id, []) if b.batch_id != batch_id]
        self._set_ended(chat_id, ended)

    def forget(self, chat_id: int) -> None:
        """Drop the chat's bursts without acknowledging them (its data is being deleted)."""
        self._current.pop(chat_id, None)
        self._ended.pop(chat_id, None)

    def unshown(self, chat_id: int) -> list[Burst]:
        """The chat's bursts whose acknowledgement is behind, oldest first."""
        pending = list(self._ended.get(chat_id, []))
        burst = self._current.get(chat_id)
        if burst is not None and burst.unshown:
            pending.append(burst)
        return pending

    def shown(self, chat_id: int, burst_id: int, version: int, message_id: int | None) -> None:
        """The acknowledgement of `version` went out (as `message_id`; None if it failed)."""
        burst = self._current.get(chat_id)
        if burst is not None and burst.id == burst_id:
            self._current[chat_id] = replace(
                burst, message_id=message_id, shown=max(burst.shown, version)
            )
            return
        # An ended burst changes no more: once its last change is shown it is done. Until then
        # it keeps the message, so that change edits it rather than sending another.
        ended = [
            replace(b, message_id=message_id, shown=max(b.shown, version))
            if b.id == burst_id
            else b
            for b in self._ended.get(chat_id, [])
        ]
        self._set_ended(chat_id, [b for b in ended if b.unshown])

    def chats(self) -> list[int]:
        """Chats with an acknowledgement behind."""
        return [c for c in {*self._current, *self._ended} if self.unshown(c)]

    def _start(self, chat_id: int, album_id: int, batch_id: int | None, now: float) -> Burst:
        self.end(chat_id)
        burst = Burst(next(self._ids), album_id, batch_id, now)
        self._current[chat_id] = burst
        return burst

    def _set_ended(self, chat_id: int, ended: list[Burst]) -> None:
        if ended:
            self._ended[chat_id] = ended
        else:
            self._ended.pop(chat_id, None)


def acknowledgement(chat_id: int, burst: Burst, summary: AlbumSummary) -> Acknowledgement:
    """What the burst's message should say, given its album's committed totals."""
    return Acknowledgement(
        chat_id=chat_id,
        burst_id=burst.id,
        version=burst.version,
        message_id=burst.message_id,
        text=acknowledgement_text(summary, burst),
        undo_batch_id=burst.batch_id,
    )


def acknowledgement_text(summary: AlbumSummary, burst: Burst) -> str:
    """'📸 Album “Lisbon”: 3 photos, 1 voice note · 1 note / Just now: added 3 photos, 1 voice
    note. / Send more, …'."""
    totals = media_counts(summary.photos, summary.videos, summary.voice_notes)
    lines = [
        _("📸 Album “%(album)s”: %(totals)s") % {"album": summary.album.name, "totals": totals}
    ]
    if summary.notes:
        lines[0] += f" · {counted(summary.notes, 'note')}"
    news = []
    if burst.photos or burst.videos or burst.voice_notes:
        added = media_counts(burst.photos, burst.videos, burst.voice_notes)
        news.append(_("added %(what)s") % {"what": added})
    if burst.notes:
        news.append(
            ngettext(
                "noted %(count)d thing you told me",
                "noted %(count)d things you told me",
                burst.notes,
            )
            % {"count": burst.notes}
        )
    if burst.repeats:
        news.append(
            ngettext(
                "%(count)d already in the album, kept once",
                "%(count)d already in the album, kept once",
                burst.repeats,
            )
            % {"count": burst.repeats}
        )
    if news:
        lines.append(_("Just now: %(news)s.") % {"news": "; ".join(news)})
    lines.append(_("Send more, or /story when you are ready."))
    return "\n".join(lines)


def media_counts(photos: int, videos: int, voice_notes: int = 0) -> str:
    """'3 photos, 1 video, 2 voice notes'; photos are always counted unless voice notes alone are
    there ('2 voice notes')."""
    parts = [counted(photos, "photo")] if photos or not voice_notes or videos else []
    if videos:
        parts.append(counted(videos, "video"))
    if voice_notes:
        parts.append(counted(voice_notes, "audio"))
    return ", ".join(parts)
