"""A burst: media and notes sent close together, one batch and one acknowledgement message.

The bursts themselves are rows (`storage.protocols.BurstStore`), so any replica can carry on a
chat's burst; this module says what their acknowledgement reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot import i18n
from bot.i18n import N_, _, ngettext
from bot.service.base import AlbumServiceBase
from bot.service.words import counted
from storage.records import AlbumSummary, Burst, Failure

# A burst ends after this much quiet: the next media gets a fresh batch and acknowledgement.
BURST_GAP_SECONDS = 120.0
# A burst's message names at most this many failed files, then counts the rest.
MAX_FAILURES_NAMED = 5

# Why a file of a burst could not be added (stored as the message id, said in the chat's
# language when the acknowledgement shows it).
FAILURE_REASONS = {
    "download": N_("its download from Telegram failed"),
    "empty": N_("the file is empty"),
    "unreadable": N_("it could not be read as a photo, video or recording"),
    "too_large": N_("it is too large for me to open"),
    "silent": N_("it has no sound in it"),
    "too_short": N_("it is too short to hold anything"),
    "unsupported": N_("it is not a photo, video or voice note"),
    "too_big": N_("it is too big for a bot to download"),
}


@dataclass(frozen=True)
class Acknowledgement:
    """What a burst's acknowledgement should say now (the Telegram side sends or edits it)."""

    chat_id: int
    burst_id: int
    version: int
    message_id: int | None  # the message to edit; None to send a new one
    text: str
    undo_batch_id: int | None  # the batch an Undo button takes back; None for no button
    language: str  # the text's, and its buttons'


class BurstKeeping(AlbumServiceBase):
    """The album service's bursts: which batch new media join, what each burst counted, and
    what its acknowledgement should say (the rows are `storage.bursts`)."""

    async def end_burst(self, chat_id: int) -> None:
        """The bot said something else: the next media starts a new batch and acknowledgement."""
        await self.storage.bursts.end(chat_id)

    async def forget_burst(self, chat_id: int) -> None:
        """End the burst without acknowledging what it has not shown yet."""
        await self.storage.bursts.forget(chat_id)

    async def failed(
        self, chat_id: int, burst_id: int, file_name: str, reason: str, key: str | None = None
    ) -> None:
        """A file counted in a burst could not be added after all (`file_name` as the album
        keeps it, `reason` a key of FAILURE_REASONS): its acknowledgement names it, once (once
        per `key`, the file's, however often this is called)."""
        await self.storage.bursts.fail(
            chat_id, burst_id, file_name, FAILURE_REASONS[reason], key=key
        )

    async def burst_of_batch(self, chat_id: int, batch_id: int | None) -> int | None:
        """The burst that counted the files of a batch, if it is still kept."""
        if batch_id is None:
            return None
        return await self.storage.bursts.of_batch(chat_id, batch_id)

    async def acknowledgement_due(self, chat_id: int) -> float | None:
        """Seconds until the chat's acknowledgement is due (0: now); None if none is behind."""
        return await self.storage.bursts.due(chat_id)

    async def burst_under_way(self, chat_id: int) -> bool:
        """Whether a burst whose acknowledgement is behind may still grow (no command ended
        it)."""
        return any(not burst.ended for burst in await self.storage.bursts.unshown(chat_id))

    async def acknowledgements(self, chat_id: int) -> list[Acknowledgement]:
        """What each acknowledgement that is behind should say now, oldest first (each in the
        language of the burst's latest update)."""
        due = []
        for burst in await self.storage.bursts.unshown(chat_id):
            # Totals from the database: the message only ever counts what is committed.
            summary = await self.storage.albums.summary(chat_id, burst.album_id)
            if summary is None:  # the album is gone: nothing to acknowledge
                await self.storage.bursts.shown(chat_id, burst.id, burst.version, burst.message_id)
                continue
            language = burst.language or i18n.DEFAULT
            with i18n.using(language):
                due.append(acknowledgement(chat_id, burst, summary, language))
        return due

    async def acknowledged(self, ack: Acknowledgement, message_id: int | None) -> None:
        """`ack` went out as `message_id` (or failed: None, or the message it meant to edit)."""
        await self.storage.bursts.shown(ack.chat_id, ack.burst_id, ack.version, message_id)

    async def first_time(self, chat_id: int, topic: str, quiet: float = 10.0) -> bool:
        """True for the first of a burst: unless the chat heard of `topic`, or would have, less
        than `quiet` seconds ago (an album of ten gets one answer; a photo sent a minute later
        gets its own)."""
        return await self.storage.bursts.first_time(chat_id, topic, quiet)

    async def _batch(self, chat_id: int, album_id: int) -> int:
        return await self.storage.bursts.batch(chat_id, album_id, BURST_GAP_SECONDS)

    async def _count(self, chat_id: int, album_id: int, batch_id: int | None, kind: str) -> Burst:
        return await self.storage.bursts.count(
            chat_id,
            album_id,
            batch_id,
            kind,
            debounce=self.settings.ack_debounce,
            gap=BURST_GAP_SECONDS,
            language=i18n.current(),
        )


def acknowledgement(
    chat_id: int, burst: Burst, summary: AlbumSummary, language: str = "en"
) -> Acknowledgement:
    """What the burst's message should say, given its album's committed totals (its text in
    the current language, which is `language`)."""
    return Acknowledgement(
        chat_id=chat_id,
        burst_id=burst.id,
        version=burst.version,
        message_id=burst.message_id,
        text=acknowledgement_text(summary, burst),
        undo_batch_id=burst.batch_id,
        language=language,
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
    lines += failure_lines(burst.failures)
    lines.append(_("Send more, or /story when you are ready."))
    return "\n".join(lines)


def failure_lines(failures: tuple[Failure, ...]) -> list[str]:
    """'⚠️ IMG_12.jpg could not be added: the file is empty', a few, then how many more."""
    lines = [
        _("⚠️ %(file)s could not be added: %(reason)s")
        % {"file": f.name or _("A file"), "reason": _(f.reason)}
        for f in failures[:MAX_FAILURES_NAMED]
    ]
    more = len(failures) - MAX_FAILURES_NAMED
    if more > 0:
        lines.append(
            ngettext(
                "⚠️ %(count)d more file could not be added.",
                "⚠️ %(count)d more files could not be added.",
                more,
            )
            % {"count": more}
        )
    return lines


def media_counts(photos: int, videos: int, voice_notes: int = 0) -> str:
    """'3 photos, 1 video, 2 voice notes'; photos are always counted unless voice notes alone are
    there ('2 voice notes')."""
    parts = [counted(photos, "photo")] if photos or not voice_notes or videos else []
    if videos:
        parts.append(counted(videos, "video"))
    if voice_notes:
        parts.append(counted(voice_notes, "audio"))
    return ", ".join(parts)
