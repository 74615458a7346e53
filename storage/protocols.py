"""What a storage engine provides: one protocol per concern, and the `Storage` bundle.

Services depend on these, never on an engine. Every lookup that reaches a chat's data takes the
chat id (or an album id the caller got for its own chat), so one chat can never reach another's.
`storage.sql` implements them on SQLite or PostgreSQL; `tests/test_storage_contract.py` is the
behaviour every engine must show.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from storage.pins import Pins

from storage.jobs import Ending, Job, JobQueue
from storage.records import (
    AddOutcome,
    Album,
    AlbumSummary,
    Arrival,
    Burst,
    BurstCounting,
    CachedContext,
    ChatFootprint,
    CurrentAlbum,
    Exchange,
    Forgotten,
    Item,
    JobResult,
    Media,
    MediaKind,
    NewExchange,
    Note,
    Origin,
    Removed,
    Reserved,
    Sent,
    Upload,
    UsageRecord,
    UsageTotals,
)


class AlbumStore(Protocol):
    """Chats' albums and each chat's current one."""

    new_album_name: Callable[[], str]  # what a chat's first album is called, asked when made

    async def current(self, chat_id: int) -> Album:
        """The chat's current album, created on first use."""
        ...

    async def create(
        self, chat_id: int, name: str, result: Callable[[Album], JobResult] | None = None
    ) -> Album:
        """Start a new album and make it the chat's current one. `result`: what to keep of it
        under the job's id, in the same transaction."""
        ...

    async def switch(self, chat_id: int, album_id: int) -> Album | None:
        """Make one of the chat's albums current; None if the chat has no such album."""
        ...

    async def rename(self, chat_id: int, album_id: int, name: str) -> bool:
        """Rename one of the chat's albums; False if it has no such album."""
        ...

    async def get(self, chat_id: int, album_id: int) -> Album | None:
        """One of the chat's albums by id."""
        ...

    async def summaries(self, chat_id: int) -> list[AlbumSummary]:
        """The chat's albums with their counts, newest first."""
        ...

    async def summary(self, chat_id: int, album_id: int) -> AlbumSummary | None:
        """One album with its counts."""
        ...

    async def language(self, chat_id: int) -> str | None:
        """The language the chat chose (/language), or None when it chose none."""
        ...

    async def set_language(self, chat_id: int, language: str | None) -> None:
        """Keep the chat's language; None goes back to following the writer's."""
        ...


class MediaStore(Protocol):
    """Albums' items, notes and the batches they arrived in."""

    async def arrival(self, album_id: int, file_unique_id: str | None) -> tuple[Item | None, int]:
        """For a file about to be downloaded: the album's item already made from it (by
        Telegram's file_unique_id), and how many items the album holds."""
        ...

    async def add(
        self, album_id: int, batch_id: int | None, media: Media, max_items: int
    ) -> AddOutcome:
        """Store an item and its blobs at once; the same bytes twice in one album are one item,
        and an album holding `max_items` takes no more."""
        ...

    async def items(self, album_id: int) -> list[Item]:
        """The album's items in the order they were added."""
        ...

    async def get(self, album_id: int, item_id: int) -> Item | None:
        """One item of the album."""
        ...

    async def by_message(self, chat_id: int, message_id: int) -> Item | None:
        """The item a chat message carried, in any of the chat's albums."""
        ...

    async def set_caption(self, item_id: int, caption: str | None) -> None:
        """Replace an item's caption."""
        ...

    async def pending_copies(self, chat_id: int | None = None) -> list[Item]:
        """Photos whose model copy is still to be made (left by a restart, or by a replica that
        held the chat before), oldest first; of one chat's albums when given."""
        ...

    async def set_model_copy(self, item_id: int, sha256: str, size: int, mime_type: str) -> bool:
        """Point an item at its model copy; False if the item is gone (taken back meanwhile)."""
        ...

    async def mark_model_failed(self, item_id: int, reason: str) -> None:
        """Remember that the model service could not process this item."""
        ...

    async def used_blobs(self) -> set[str]:
        """Every blob some item refers to."""
        ...

    async def is_blob_used(self, sha256: str) -> bool:
        """Whether any item still refers to a blob."""
        ...

    async def add_note(
        self,
        album_id: int,
        text: str,
        batch_id: int | None,
        sender_id: int | None,
        sender_name: str | None,
    ) -> Note:
        """Store something the traveller told about the trip."""
        ...

    async def notes(self, album_id: int) -> list[Note]:
        """The album's notes, oldest first."""
        ...

    async def new_batch(self, album_id: int) -> int:
        """Open a batch: the media and notes one acknowledgement covers."""
        ...

    async def batch_album(self, chat_id: int, batch_id: int) -> int | None:
        """The album id of one of the chat's batches; None if the chat has no such batch."""
        ...

    async def latest_batch(self, album_id: int) -> tuple[int, str] | None:
        """The album's most recent batch that still holds something: (id, created_at)."""
        ...

    async def remove_batch(
        self,
        album_id: int,
        batch_id: int,
        result: Callable[[Removed], JobResult | None] | None = None,
    ) -> Removed:
        """Delete a batch's items and notes; return them and the blobs nothing uses any more.
        `result`: what to keep of it under the job's id, in the same transaction (None:
        nothing)."""
        ...


class ConversationStore(Protocol):
    """The exchanges of an album, in order."""

    async def exchanges(self, album_id: int) -> list[Exchange]:
        """The album's conversation so far, oldest first."""
        ...

    async def add(self, new: NewExchange) -> Exchange:
        """Append a finished exchange: question and answer land together."""
        ...

    async def latest(self, album_id: int) -> Exchange | None:
        """The album's most recent exchange."""
        ...

    async def remove(
        self, album_id: int, exchange_id: int, result: JobResult | None = None
    ) -> bool:
        """Delete one exchange of the album (and keep `result` in the same transaction)."""
        ...

    async def clear(self, album_id: int) -> int:
        """Forget the album's conversation (the media stay); how many exchanges went."""
        ...

    async def answered(self, job_id: int, kind: str) -> Exchange | None:
        """The exchange of this kind a job recorded (its rerun reads the answer back)."""
        ...


class UsageStore(Protocol):
    """Token usage of every model call."""

    async def record(self, usage: UsageRecord) -> None:
        """Store one call's usage."""
        ...

    async def user_totals(self, user_id: int, since_iso: str) -> UsageTotals:
        """One user's usage since a UTC time."""
        ...

    async def per_user(self, since_iso: str) -> list[tuple[int | None, UsageTotals]]:
        """Every user's usage since a UTC time, biggest first."""
        ...


class UploadStore(Protocol):
    """Which blobs the model service already holds, so follow-ups refer instead of re-send."""

    async def get(self, sha256: str) -> Upload | None:
        """The recorded upload of a blob, if any."""
        ...

    async def get_many(self, sha256s: list[str]) -> Mapping[str, Upload]:
        """The recorded uploads of several blobs, by hash."""
        ...

    async def put(self, upload: Upload) -> None:
        """Record (or replace) the upload of a blob."""
        ...

    async def drop(self, sha256: str) -> None:
        """Forget an upload (expired, deleted, or its blob is gone)."""
        ...


class ContextCacheStore(Protocol):
    """Each album's context cache at the model service (one per album), kept across restarts."""

    async def get(self, album_id: int) -> CachedContext | None:
        """The album's recorded cache, if any."""
        ...

    async def put(self, album_id: int, cache: CachedContext) -> None:
        """Record (or replace) the album's cache."""
        ...

    async def drop(self, album_id: int) -> None:
        """Forget the album's cache (deleted, expired, or no longer what the album holds)."""
        ...

    async def for_chat(self, chat_id: int) -> list[CachedContext]:
        """The caches of all the chat's albums (to delete them at the service on /forget)."""
        ...


# The argument of a received update's job that says when it was received, on the database's
# clock (added by the inbox): a burst is timed by when its items came, not by when a backlog
# of updates let them be handled.
RECEIVED_AT = "received_at"


class InboxStore(Protocol):
    """Every update_id received, so a second delivery of one is recognised."""

    async def receive(self, update_id: int, job: Job) -> bool:
        """Record a received update and defer its job in one transaction, its arguments told
        when it was received (`RECEIVED_AT`); False when the update was received before."""
        ...

    async def receive_many(self, updates: Sequence[tuple[int, Job]]) -> list[bool]:
        """`receive` for several updates, in their order, in one transaction (all or none)."""
        ...

    async def done(self, update_id: int) -> None:
        """Mark a received update handled (kept a day, then purged)."""
        ...

    def handled_mark(self, update_id: int) -> Ending:
        """`done` as a write for a job's end (`Attempt.at_end`), committed with it."""
        ...

    async def handled(self, update_id: int) -> bool:
        """Whether the update was handled already."""
        ...


class ArrivalStore(Protocol):
    """Media files received and numbered, waiting for their download and checks."""

    async def reserve(
        self,
        album: int | CurrentAlbum,
        batch_id: int | None,
        kind: MediaKind,
        origin: Origin,
        file_size: int | None,
        max_items: int,
        then: Callable[[Arrival], Job] | None = None,
        burst: BurstCounting | None = None,
    ) -> Reserved:
        """Number a received file and defer `then`'s job for it, in one transaction; with
        `burst`, count it in its chat's burst there too (the batch is the burst's); with a
        `CurrentAlbum`, in the chat's current album as that transaction finds it."""
        ...

    async def get(self, arrival_id: int) -> Arrival | None:
        """A file still waiting; None once settled or dropped."""
        ...

    async def settle(self, arrival_id: int, media: Media) -> AddOutcome | None:
        """Make the downloaded file the item at its number; None when the arrival is gone."""
        ...

    async def drop(self, arrival_id: int) -> Arrival | None:
        """Give up a file that cannot be added; None if gone."""
        ...

    async def unready(self, album_id: int) -> int:
        """How many of the album's files the model cannot see yet."""
        ...


class ResultStore(Protocol):
    """What jobs did, kept a day under their ids: written with the change itself (the stores'
    `result` arguments), read back by a job run again instead of doing it twice."""

    async def recall(self, job_id: int, name: str) -> str | None:
        """What the job recorded under `name`, if it got that far."""
        ...


class SentStore(Protocol):
    """The Telegram messages jobs sent, keyed by (job id, call), kept a day: a job run again
    gets Telegram's earlier answer back instead of posting twice."""

    async def recorded(self, job_id: int, key: str) -> Sent | None:
        """What is recorded of one call of a job, if anything."""
        ...

    async def intend(self, job_id: int, key: str, attempt: int) -> Sent | None:
        """About to send: the earlier record when it holds Telegram's answer (send nothing);
        else record the intent and return None. Fenced: a stale attempt raises TakenOver."""
        ...

    async def record(self, job_id: int, key: str, result: Any) -> None:
        """Keep Telegram's answer to a call (JSON-serialisable)."""
        ...

    async def purge(self, older_than: float = 24 * 3600.0) -> int:
        """Forget calls recorded `older_than` seconds ago or more; how many went."""
        ...

    async def fence(self) -> None:
        """Raise TakenOver if the current job attempt lost its job (a write of nothing)."""
        ...


class BurstStore(Protocol):
    """Every chat's bursts (one batch and one acknowledgement each) and first-time hints.

    Each method is one transaction, timed by the database's clock, so any replica can carry on
    a burst another began. A burst ends after `gap` seconds without a new item or note, when
    media go to another album, or on `end` (the bot said something else).
    """

    async def batch(self, chat_id: int, album_id: int, gap: float) -> int:
        """The batch a new item or note of the album joins: the burst's, or a new one (a new
        burst too when the last one is over); the burst's gap counts from now."""
        ...

    async def count(
        self,
        chat_id: int,
        album_id: int,
        batch_id: int | None,
        kind: str,
        *,
        debounce: float,
        gap: float,
        language: str | None = None,
    ) -> Burst:
        """Something was stored in `batch_id` (None for a repeat: the open burst's, if any),
        kind 'photo', 'video', 'audio', 'note' or 'repeat'; the burst after it. Its
        acknowledgement is due `debounce` seconds from now, but news waits no longer than
        MAX_HOLD debounces."""
        ...

    async def fail(
        self, chat_id: int, burst_id: int, name: str, reason: str, key: str | None = None
    ) -> bool:
        """A file of the burst could not be added: its acknowledgement names it once (due now
        unless already due). With a `key` (the file's), a second call with it changes nothing:
        the job naming the file may run again. False when the burst is gone."""
        ...

    async def of_batch(self, chat_id: int, batch_id: int) -> int | None:
        """The latest burst of the chat that filled `batch_id`."""
        ...

    async def end(self, chat_id: int) -> None:
        """The burst is over: the next media starts a new batch and message. What it counted
        but has not shown yet is still acknowledged."""
        ...

    async def end_batch(self, chat_id: int, batch_id: int) -> None:
        """A batch was taken back: its burst ends, and what it counted is never announced."""
        ...

    async def forget(self, chat_id: int) -> None:
        """Drop the chat's bursts and hints without acknowledging anything."""
        ...

    async def unshown(self, chat_id: int) -> list[Burst]:
        """The chat's bursts whose acknowledgement is behind, oldest first."""
        ...

    async def shown(
        self, chat_id: int, burst_id: int, version: int, message_id: int | None
    ) -> None:
        """The acknowledgement of `version` went out as `message_id` (None: it failed); the
        failures it named are not named again."""
        ...

    async def due(self, chat_id: int) -> float | None:
        """Seconds until the chat's acknowledgement is due (0: now); None when none is behind."""
        ...

    async def first_time(self, chat_id: int, topic: str, quiet: float) -> bool:
        """True unless the chat was told of `topic`, or would have been, less than `quiet`
        seconds ago; either way this counts as telling it now."""
        ...


class PrivacyStore(Protocol):
    """A chat's footprint, and wiping it."""

    async def footprint(self, chat_id: int) -> ChatFootprint:
        """Counts of what the bot holds for the chat."""
        ...

    async def forget(self, chat_id: int) -> Forgotten:
        """Delete the chat's albums, items, notes and conversation; anonymise its usage."""
        ...


class BlobStore(Protocol):
    """Media bytes, content-addressed: the same bytes stored twice are kept once.

    A stored blob is pinned from `adopt` until `release`, so `delete` does not remove a file
    some chat is about to record. Delete through `storage.pins.delete_unused`, which checks
    the rows again while other replicas cannot pin the blob. Methods are blocking: call them
    in a worker thread.
    """

    pins: Pins

    def prepare(self) -> None:
        """Make the store ready and clear scratch files a crash left."""
        ...

    def new_temp_path(self, suffix: str = "") -> Path:
        """A fresh local scratch path to download or write into."""
        ...

    def adopt(self, temp: Path) -> tuple[str, int]:
        """Move a scratch file into the store, pinned; return (sha256, size)."""
        ...

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store bytes (small derived files), pinned; return (sha256, size)."""
        ...

    def release(self, *shas: str) -> None:
        """The pinned blobs are recorded (or given up): `delete` may remove them again."""
        ...

    def path_for(self, sha256: str) -> Path:
        """A local path holding the blob's bytes."""
        ...

    def exists(self, sha256: str) -> bool:
        """Whether the blob is stored."""
        ...

    def delete(self, sha256: str) -> None:
        """Remove a blob unless it is pinned; a missing one is no error."""
        ...

    def modified(self, sha256: str) -> float:
        """When the blob was written (seconds since the epoch; 0 if absent)."""
        ...

    def stored(self) -> set[str]:
        """The hashes of every stored blob."""
        ...


@dataclass
class Storage:
    """Everything the product keeps, behind one object: opened once, closed at shutdown."""

    albums: AlbumStore
    media: MediaStore
    conversation: ConversationStore
    usage: UsageStore
    uploads: UploadStore
    caches: ContextCacheStore
    inbox: InboxStore
    arrivals: ArrivalStore
    privacy: PrivacyStore
    sent: SentStore
    results: ResultStore
    bursts: BurstStore
    blobs: BlobStore
    jobs: JobQueue
    closer: Callable[[], Awaitable[None]]

    async def close(self) -> None:
        """Close the engine's connections; safe to call twice."""
        await self.closer()
