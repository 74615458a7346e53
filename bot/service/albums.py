"""Collecting a trip: media and notes into the chat's current album, albums, and taking back."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from pathlib import Path, PurePath

from bot import i18n
from bot.errors import AlbumFull, MediaRejected, NothingToDo
from bot.i18n import _, local_date
from bot.service.bursts import BURST_GAP_SECONDS, BurstKeeping
from bot.service.downloads import DownloadInterrupted, Fetch
from bot.service.intake import PhotoLimits, process_audio, process_photo, process_video
from bot.service.messages import location_note
from storage.jobs import MEDIA, Job, current_attempt
from storage.pins import delete_unused
from storage.records import (
    AddStatus,
    Album,
    AlbumSummary,
    Arrival,
    BurstCounting,
    CurrentAlbum,
    Item,
    JobResult,
    Media,
    MediaKind,
    Note,
    Origin,
    Removed,
    Reservation,
    Reserved,
)

log = logging.getLogger(__name__)

PHOTO_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff", ".bmp"}
VIDEO_EXTENSIONS = {".mp4", ".mov", ".3gp", ".webm", ".m4v", ".qt"}
AUDIO_EXTENSIONS = {
    ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".wav", ".flac", ".aif", ".aiff", ".amr",
}  # fmt: skip
MAX_NAME_LENGTH = 64


@dataclass(frozen=True)
class IncomingMedia:
    """A media message as the bot received it, before download (no Telegram types)."""

    chat_id: int
    # "photo", "video", "audio" (a voice note or audio file) or "document" (a file that may be
    # any of them, or none)
    kind: str
    origin: Origin
    file_size: int | None = None

    @property
    def file_id(self) -> str:
        """The file to download (every media message names one)."""
        assert self.origin.file_id is not None
        return self.origin.file_id


@dataclass(frozen=True)
class ProcessedFile:
    """A file checked and processed, not yet in the album (or the item it repeats)."""

    incoming: IncomingMedia
    album: Album
    media: Media | None
    known: Item | None


# Telegram's file id, to a function that downloads that file to a path.
Fetcher = Callable[[str], Fetch]

# Why a received file could not be added, by its refusal's reason: a key of the burst's
# FAILURE_REASONS, which its acknowledgement names.
_FAILURE_OF = {
    "download_failed": "download",
    "too_big": "too_big",
    "empty": "empty",
    "unsupported": "unsupported",
    "corrupt": "unreadable",
    "too_large": "too_large",
    "silent": "silent",
    "too_short": "too_short",
}


def ingest_job(chat_id: int) -> Callable[[Arrival], Job]:
    """The job that downloads, checks and stores a file the chat sent (any worker, any order)."""
    # The language the chat is spoken to in now: a failure is told in it.
    args = {"chat": chat_id, "language": i18n.current()}
    return lambda arrival: Job(
        "ingest",
        {"arrival": arrival.id, "album": arrival.album_id, "position": arrival.position, **args},
        queue=MEDIA,
    )


# Names a received file that could not be added, with the reason (a key of FAILURE_REASONS),
# to its chat. Called before the file is dropped, so a job run again after a crash in between
# names it again: the naming must take a second call for the same file as the first.
NotAdded = Callable[[Arrival, str], Awaitable[None]]


@dataclass(frozen=True)
class Received:
    """What became of an incoming file."""

    item: Item
    album: Album
    duplicate: bool
    batch_id: int | None


@dataclass(frozen=True)
class Undone:
    """What /undo took back: a batch of media and notes (how many of each kind), or the last
    exchange (its question). Kept under the job's id with the removal (`UNDONE`), so a job run
    again tells the same and takes back nothing more."""

    album_name: str
    kinds: dict[str, int] = field(default_factory=dict)  # "photo", "video", "audio"
    notes: int = 0
    question: str | None = None  # the exchange's question (or its kind), when one was undone
    batch_id: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, value: str) -> Undone:
        return cls(**json.loads(value))


UNDONE = "undone"  # the job result /undo and its button keep (storage.results)
NEW_ALBUM = "new album"  # the one /new keeps: the album it made


class AlbumService(BurstKeeping):
    """What a chat does with its albums, independent of Telegram."""

    @property
    def limits(self) -> PhotoLimits:
        """The size limits of the model's photo copies."""
        return self.copies.limits

    # Media -------------------------------------------------------------------------------

    async def receive(
        self,
        incoming: IncomingMedia,
        acknowledge: Job | None = None,
        received_at: float | None = None,
        updates_lock: str | None = None,
    ) -> Reserved:
        """Take a received media file: numbered in the chat's album and counted in its burst
        at once, downloaded and checked by its ingest job on any worker. What the message
        itself shows is refused here (not a photo, video or voice note; too big to download;
        the album full); a file the album has already counts as a repeat. `acknowledge`, the
        job that acknowledges the burst, is deferred in the transaction that counts it, to run
        a debounce after the burst's last file was received (`received_at`, the database's
        clock; None: now), however long the file waited to be numbered; not brought forward
        while the chat's updates wait to start (`updates_lock`: the burst may grow)."""
        kind = classify(incoming)
        self._check_size(incoming, kind)
        # The current album is looked up in the transaction that numbers the file.
        current = CurrentAlbum(incoming.chat_id, self.storage.albums.new_album_name())
        reserved = await self.storage.arrivals.reserve(
            current,
            None,
            kind,
            _as_kept(incoming.origin),
            incoming.file_size,
            self.settings.max_album_items,
            then=ingest_job(incoming.chat_id),
            burst=BurstCounting(
                incoming.chat_id,
                debounce=self.settings.ack_debounce,
                gap=BURST_GAP_SECONDS,
                language=i18n.current(),
                then=acknowledge,
                received_at=received_at,
                updates_lock=updates_lock,
            ),
        )
        if reserved.status is Reservation.FULL:
            assert reserved.album is not None
            raise _album_full(reserved.album, self.settings.max_album_items)
        # AGAIN: this very message was numbered before (its update runs again): nothing new.
        return reserved

    async def ingest(
        self,
        arrival_id: int,
        fetcher: Fetcher,
        final: bool,
        album_id: int,
        position: int,
        not_added: NotAdded,
    ) -> None:
        """Download, check and store a received file as its album's item at its number, then
        make the model's copy (the ingest job). A file that cannot be added is named
        (`not_added`) and then dropped; a broken download raises (retried) unless this is the
        `final` try."""
        arrival = await self.storage.arrivals.get(arrival_id)
        if arrival is None:
            # Settled by an earlier try (which may have stopped before the copy), or taken back.
            stored = [i for i in await self.storage.media.items(album_id) if i.position == position]
            if stored and not stored[0].media.model_ready and not stored[0].model_failed:
                await self.copies.make(stored[0], final)
            return
        try:
            media = await self._fetch_and_process(arrival, fetcher(arrival.origin.file_id or ""))
        except MediaRejected as e:
            await self._give_up(arrival, _FAILURE_OF.get(e.reason, "unreadable"), not_added)
            return
        except (DownloadInterrupted, OSError):
            if not final:
                raise
            log.exception("Giving up the download of file %s", arrival.position)
            await self._give_up(arrival, "download", not_added)
            return
        try:
            outcome = await self.storage.arrivals.settle(arrival_id, media)
        finally:
            self.storage.blobs.release(*_own_blobs(media))
        if outcome is None or outcome.status is not AddStatus.ADDED:
            # Taken back meanwhile, or bytes the album holds already: its files are nobody's.
            await delete_unused(self.storage.media, self.storage.blobs, _own_blobs(media))
            return
        assert outcome.item is not None
        if not outcome.item.media.model_ready:
            await self.copies.make(outcome.item, final)  # a failure to store it: tried again

    async def give_up_file(self, arrival_id: int, reason: str, not_added: NotAdded) -> None:
        """Give up a received file whose ingest job failed every try: named, then dropped, so
        nothing waits for it (nothing happens if it was settled or dropped already)."""
        arrival = await self.storage.arrivals.get(arrival_id)
        if arrival is not None:
            await self._give_up(arrival, reason, not_added)

    async def _give_up(self, arrival: Arrival, reason: str, not_added: NotAdded) -> None:
        """Name a received file that cannot be added, then drop it (its number stays unused).
        In that order: a crash in between leaves the file to its job's next try, which names
        it again; the other way round it would be dropped unnamed."""
        await not_added(arrival, reason)
        await self.storage.arrivals.drop(arrival.id)

    async def _fetch_and_process(self, arrival: Arrival, fetch: Fetch) -> Media:
        suffix = PurePath(arrival.origin.file_name or "").suffix.lower()[:8]
        temp = self.storage.blobs.new_temp_path(suffix if suffix.isascii() else "")
        try:
            await fetch(temp)
            if not await asyncio.to_thread(_has_content, temp):
                raise MediaRejected(
                    _("This file is empty, so there is nothing to add."), reason="empty"
                )
            return await asyncio.to_thread(self._process, temp, arrival.kind, arrival.origin)
        finally:
            await asyncio.to_thread(temp.unlink, True)

    async def prepare_media(self, incoming: IncomingMedia, fetch: Fetch) -> ProcessedFile:
        """Check, download and process a file at once (the folder command; the bot takes files
        with `receive`); safe to run for several files at once."""
        album = await self.storage.albums.current(incoming.chat_id)
        kind = classify(incoming)
        self._check_size(incoming, kind)
        known, count = await self.storage.media.arrival(album.id, incoming.origin.file_unique_id)
        if known is not None:
            return ProcessedFile(incoming, album, None, known)
        if count >= self.settings.max_album_items:
            raise _album_full(album, self.settings.max_album_items)
        arrival = Arrival(0, album.id, None, 0, kind, _as_kept(incoming.origin))
        media = await self._fetch_and_process(arrival, fetch)
        return ProcessedFile(incoming, album, media, None)  # its blob pinned until stored

    async def store_media(self, prepared: ProcessedFile) -> Received:
        """Record a prepared file in its album (call in arrival order: it takes the next number);
        its model copy is made in the background (`copies.ready` waits for it)."""
        incoming, album = prepared.incoming, prepared.album
        if prepared.known is not None:
            return Received(prepared.known, album, True, None)
        media = prepared.media
        assert media is not None
        try:
            batch_id = await self._batch(incoming.chat_id, album.id)
            outcome = await self.storage.media.add(
                album.id, batch_id, media, self.settings.max_album_items
            )
        finally:
            self.storage.blobs.release(*_own_blobs(media))
        if outcome.status is AddStatus.FULL:
            # Filled up by files that arrived alongside: its stored files are nobody's now.
            await delete_unused(self.storage.media, self.storage.blobs, _own_blobs(media))
            raise _album_full(album, self.settings.max_album_items)
        assert outcome.item is not None
        if outcome.status is AddStatus.ADDED and not outcome.item.media.model_ready:
            self.copies.later(outcome.item)
        duplicate = outcome.status is AddStatus.DUPLICATE
        return Received(outcome.item, album, duplicate, batch_id)

    def _process(self, temp: Path, kind: MediaKind, origin: Origin) -> Media:
        if kind == "photo":
            return process_photo(temp, self.storage.blobs, self.limits, origin)
        if kind == "audio":
            return process_audio(temp, self.storage.blobs, origin)
        return process_video(temp, self.storage.blobs, origin)

    def _check_size(self, incoming: IncomingMedia, kind: str) -> None:
        size = incoming.file_size or 0
        limit = self.settings.download_limit
        if size <= limit:
            return
        what = {
            "video": _("This video is %(size)s, but Telegram lets bots download files of at most "
                       "%(limit)s, so I cannot add it."),
            "audio": _("This recording is %(size)s, but Telegram lets bots download files of at "
                       "most %(limit)s, so I cannot add it."),
        }.get(kind) or _("This file is %(size)s, but Telegram lets bots download files of at "
                         "most %(limit)s, so I cannot add it.")  # fmt: skip
        advice = {
            "video": _("Please trim it, or send it as a regular video (Telegram compresses those) "
                       "or record it at a lower quality."),
            "audio": _("Please send a shorter recording, or a voice message instead "
                       "(Telegram keeps those small)."),
        }.get(kind) or _("Please send a smaller version.")  # fmt: skip
        owner = _(
            "(For the bot's owner: a self-hosted Bot API server, set with TELEGRAM_API_URL and "
            "TELEGRAM_LOCAL_MODE=true, lifts this limit.)"
        )
        said = what % {"size": _mb(size), "limit": _mb(limit)}
        raise MediaRejected(f"{said} {advice} {owner}", reason="too_big")

    async def update_caption(self, chat_id: int, message_id: int, caption: str) -> bool:
        """Take an edited caption for the item a message carried; False if none did."""
        item = await self.storage.media.by_message(chat_id, message_id)
        if item is None:
            # A file just sent is received at once but stored by its own job, later.
            album = await self.storage.albums.current(chat_id)
            await self.copies.ready(album.id)
            item = await self.storage.media.by_message(chat_id, message_id)
        if item is None:
            return False
        await self.storage.media.set_caption(item.id, caption.strip() or None)
        return True

    # Notes -------------------------------------------------------------------------------

    async def add_note(
        self, chat_id: int, text: str, sender_id: int | None, sender_name: str | None
    ) -> tuple[Note, Album, int]:
        """Keep something the traveller told about the trip as the album's context."""
        album = await self.storage.albums.current(chat_id)
        batch_id = await self._batch(chat_id, album.id)
        note = await self.storage.media.add_note(
            album.id, text.strip(), batch_id, sender_id, sender_name
        )
        await self._count(chat_id, album.id, batch_id, "note")
        return note, album, batch_id

    async def add_location(
        self,
        chat_id: int,
        latitude: float,
        longitude: float,
        *,
        title: str | None = None,
        address: str | None = None,
        sender_id: int | None = None,
        sender_name: str | None = None,
    ) -> tuple[Note, Album, int]:
        """Keep a shared location (a venue when it has a title or address) as a named note."""
        text = await location_note(latitude, longitude, title, address)
        return await self.add_note(chat_id, text, sender_id, sender_name)

    # Albums ------------------------------------------------------------------------------

    async def current(self, chat_id: int) -> AlbumSummary:
        """The chat's current album with its counts."""
        album = await self.storage.albums.current(chat_id)
        summary = await self.storage.albums.summary(chat_id, album.id)
        assert summary is not None
        return summary

    async def summary(self, chat_id: int, album_id: int) -> AlbumSummary | None:
        """One of the chat's albums with its counts."""
        return await self.storage.albums.summary(chat_id, album_id)

    async def new_album(self, chat_id: int, name: str | None) -> Album:
        """Start a fresh album; the old ones are kept. Once per job: run again after the album
        was made, it gives that album back instead of making a second."""
        job = current_attempt()
        if job is not None and (made := await self.storage.results.recall(job.job_id, NEW_ALBUM)):
            album = await self.storage.albums.get(chat_id, int(json.loads(made)["album"]))
            if album is not None:
                return album
        await self.end_burst(chat_id)
        clean = clean_name(name) or _("Trip %(date)s") % {"date": local_date(date.today())}

        def result(album: Album) -> JobResult:
            assert job is not None
            return JobResult(job.job_id, NEW_ALBUM, json.dumps({"album": album.id}))

        return await self.storage.albums.create(chat_id, clean, result if job else None)

    async def list_albums(self, chat_id: int) -> tuple[list[AlbumSummary], int]:
        """The chat's albums (newest first) and the current album's id."""
        current = await self.storage.albums.current(chat_id)
        return await self.storage.albums.summaries(chat_id), current.id

    async def switch_album(self, chat_id: int, album_id: int) -> AlbumSummary:
        """Make another of the chat's albums the current one."""
        album = await self.storage.albums.switch(chat_id, album_id)
        if album is None:
            raise NothingToDo(_("That album does not exist in this chat."))
        await self.end_burst(chat_id)
        summary = await self.storage.albums.summary(chat_id, album.id)
        assert summary is not None
        return summary

    async def rename(self, chat_id: int, name: str) -> Album:
        """Rename the current album."""
        clean = clean_name(name)
        if not clean:
            raise NothingToDo(_("Give the album a name, e.g. /rename Lisbon 2026."))
        album = await self.storage.albums.current(chat_id)
        await self.storage.albums.rename(chat_id, album.id, clean)
        return Album(album.id, album.chat_id, clean, album.created_at, album.updated_at)

    # Taking back -------------------------------------------------------------------------

    async def undo(self, chat_id: int) -> Undone:
        """Take back whatever came last: the last batch of media/notes, or the last exchange.
        Once per job: run again (a crash or a stall after the removal), it tells what it took
        back the first time and takes nothing more."""
        job = current_attempt()
        if job is not None and (done := await self._undone_before(chat_id, job.job_id)):
            return done
        album = await self.storage.albums.current(chat_id)
        batch = await self.storage.media.latest_batch(album.id)
        exchange = await self.storage.conversation.latest(album.id)
        if batch is None and exchange is None:
            raise NothingToDo(_("There is nothing to undo in this album."))
        if exchange is not None and (batch is None or exchange.created_at >= batch[1]):
            undone = Undone(album.name, question=exchange.user_text or exchange.kind)
            result = JobResult(job.job_id, UNDONE, undone.to_json()) if job else None
            await self.storage.conversation.remove(album.id, exchange.id, result)
            return undone
        assert batch is not None
        return await self._remove_batch(chat_id, album, batch[0])

    async def undo_batch(self, chat_id: int, batch_id: int) -> Undone:
        """Take back one batch (the button under an acknowledgement); once per job, as `undo`."""
        job = current_attempt()
        if job is not None and (done := await self._undone_before(chat_id, job.job_id)):
            return done
        album_id = await self.storage.media.batch_album(chat_id, batch_id)
        album = await self.storage.albums.get(chat_id, album_id) if album_id is not None else None
        if album is None:
            raise NothingToDo(_("That batch is not in this chat any more."))
        return await self._remove_batch(chat_id, album, batch_id)

    async def _undone_before(self, chat_id: int, job_id: int) -> Undone | None:
        """What this job took back in an earlier attempt, if it got that far; the batch's
        acknowledgement is ended again (that attempt may have stopped before)."""
        kept = await self.storage.results.recall(job_id, UNDONE)
        if kept is None:
            return None
        undone = Undone.from_json(kept)
        if undone.batch_id is not None:
            await self.storage.bursts.end_batch(chat_id, undone.batch_id)
        return undone

    async def _remove_batch(self, chat_id: int, album: Album, batch_id: int) -> Undone:
        job = current_attempt()

        def told(removed: Removed) -> Undone:
            kinds = dict(Counter[str](item.kind for item in removed.items))
            return Undone(album.name, kinds, len(removed.notes), batch_id=batch_id)

        def result(removed: Removed) -> JobResult | None:
            assert job is not None
            if not removed.items and not removed.notes:
                return None  # nothing taken back: a rerun says so again
            return JobResult(job.job_id, UNDONE, told(removed).to_json())

        removed = await self.storage.media.remove_batch(
            album.id, batch_id, result if job is not None else None
        )
        if not removed.items and not removed.notes:
            raise NothingToDo(_("That batch was already taken back."))
        # Its acknowledgement is being replaced by what was taken back: it must not come back.
        await self.storage.bursts.end_batch(chat_id, batch_id)
        if removed.orphan_blobs:
            # Nothing refers to these files any more: delete them here and at the model service.
            # (A job run again after the removal leaves them to the start-up sweep.)
            await self.model.forget(files=removed.orphan_blobs)
            await delete_unused(self.storage.media, self.storage.blobs, removed.orphan_blobs)
        return told(removed)


def _own_blobs(media: Media) -> tuple[str, ...]:
    """The blobs `prepare_media` stored (and pinned) for a file: the original, and any copy."""
    if media.model.sha256 == media.source.sha256:
        return (media.source.sha256,)
    return media.source.sha256, media.model.sha256


def _as_kept(origin: Origin) -> Origin:
    """The message's details as the album shows them: a bare file name, no empty caption."""
    return replace(
        origin, file_name=bare_file_name(origin.file_name), caption=origin.caption or None
    )


def _has_content(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


@dataclass(frozen=True)
class MediaType:
    """A kind of file a message may carry: its `IncomingMedia.kind`, and its type if none given."""

    kind: str
    mime_type: str | None = None


# What counts as media: the files a message may carry, by Telegram's names for them (stored as
# Origin.telegram_type), in the order they are looked for: an animation comes with a document
# too. The Telegram side derives its filter and its checks from this (bot/telegram/media_types.py).
MEDIA_TYPES: dict[str, MediaType] = {
    "photo": MediaType("photo", "image/jpeg"),
    "video": MediaType("video", "video/mp4"),
    "animation": MediaType("video", "video/mp4"),
    "video_note": MediaType("video", "video/mp4"),
    "voice": MediaType("audio", "audio/ogg"),
    "audio": MediaType("audio"),
    "document": MediaType("document"),
}
_TAKEN_AS_IS: dict[str, MediaKind] = {"photo": "photo", "video": "video", "audio": "audio"}


def classify(incoming: IncomingMedia) -> MediaKind:
    """'photo', 'video' or 'audio' for what the bot takes; MediaRejected for anything else."""
    if incoming.kind in _TAKEN_AS_IS:
        return _TAKEN_AS_IS[incoming.kind]
    mime = (incoming.origin.mime_type or "").lower()
    suffix = PurePath(incoming.origin.file_name or "").suffix.lower()
    if mime.startswith("image/") or (not mime.startswith("video/") and suffix in PHOTO_EXTENSIONS):
        return "photo"
    if mime.startswith("video/") or (not mime.startswith("audio/") and suffix in VIDEO_EXTENSIONS):
        return "video"
    if mime.startswith("audio/") or suffix in AUDIO_EXTENSIONS:
        return "audio"
    shown = safe_file_name(incoming.origin.file_name)
    raise MediaRejected(
        _(
            "I can only add photos, videos and voice notes to the album; %(file)s is not one "
            "(%(type)s)."
        )
        % {"file": shown, "type": mime or _("unknown type")},
        reason="unsupported",
    )


def safe_file_name(name: str | None) -> str:
    """A file name fit to show: no folders, no control characters, not too long."""
    base = bare_file_name(name)
    return f"'{base[:60]}'" if base else _("this file")


def bare_file_name(name: str | None) -> str | None:
    """The last part of a sender's file name, printable; None when nothing usable is left."""
    if not name:
        return None
    base = PurePath(name.replace("\\", "/")).name
    base = "".join(c for c in base if _keeps(c)).strip()
    # "holiday/.." ends in a folder reference, not a name: keep no name rather than "..".
    return base if base.strip(".") else None


def clean_name(name: str | None) -> str:
    """An album name as stored: one line, printable, at most 64 characters."""
    if not name:
        return ""
    flat = " ".join("".join(c if _keeps(c) else " " for c in name).split())
    return flat[:MAX_NAME_LENGTH].rstrip(" \u200c\u200d")


def _keeps(char: str) -> bool:
    """Whether a character may stay in a name: printable, or invisible but part of the text."""
    # Joiners build emoji sequences (👩‍👩‍👧) and Persian words; tag characters build
    # subdivision flags (🏴󠁧󠁢󠁳󠁣󠁴󠁿). Other controls and format characters go.
    return char.isprintable() or char in "\u200c\u200d" or "\U000e0020" <= char <= "\U000e007f"


def _album_full(album: Album, cap: int) -> AlbumFull:
    return AlbumFull(
        _(
            "The album “%(album)s” is full (%(cap)d photos and videos). "
            "Start another one with /new, e.g. /new Lisbon part 2."
        )
        % {"album": album.name, "cap": cap}
    )


def _mb(size: int) -> str:
    return f"{size / 2**20:.0f} MB" if size >= 2**20 else f"{size / 1024:.0f} KB"
