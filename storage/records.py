"""The plain records every store takes and returns, whatever engine holds them.

A media item is composed, not spelt out: `Origin` (the chat message it came in), `MediaFacts`
(what the file itself says), two `Blob`s (the original and the model's copy) make a `Media`,
and a stored `Item` is a `Media` plus what the album gave it (id, position, batch). Each field is
written once; a new kind of media touches `MediaKind` and the code that reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from storage.jobs import Job

MediaKind = Literal["photo", "video", "audio"]

# How each kind is named to the traveller and the model ("voice note 3"): "audio" is a voice
# note or an audio file, both heard rather than seen.
KIND_NOUNS: dict[str, str] = {"photo": "photo", "video": "video", "audio": "voice note"}


def now_iso() -> str:
    """The current UTC time as stored."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def iso(moment: datetime | None) -> str | None:
    """A datetime as stored (ISO 8601, offset kept when known)."""
    return moment.isoformat(timespec="seconds") if moment else None


def from_iso(text: str | None) -> datetime | None:
    """A stored time back as a datetime (naive when it was stored without an offset)."""
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class Album:
    id: int
    chat_id: int
    name: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class AlbumSummary:
    """An album with its counts, for lists and acknowledgements."""

    album: Album
    photos: int
    videos: int
    notes: int
    exchanges: int
    voice_notes: int = 0  # items of kind "audio"

    @property
    def items(self) -> int:
        return self.photos + self.videos + self.voice_notes


@dataclass(frozen=True)
class MediaFacts:
    """What one media file says about itself: when, where, with what, how big.

    `taken_at` is the local wall-clock time the camera recorded, tz-aware when the offset is
    known and naive otherwise (a video's container time is UTC and therefore aware).
    `time_source` is "exif", "container" or None; with None the caller may fall back to the
    message date and mark it approximate. Coordinates are signed decimal degrees (south and west
    negative), altitude is metres above sea level, `place` the nearest town read offline from
    them. Width and height are as displayed, after the orientation tag or rotation matrix is
    applied. `duration` is in seconds, videos and audio only. Every field may be None: metadata
    is a hint for the story, never a reason to refuse a file.
    """

    taken_at: datetime | None = None
    time_source: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    camera: str | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    place: str | None = None

    def has_location(self) -> bool:
        """Whether both coordinates are known and finite."""
        return (
            self.latitude is not None
            and self.longitude is not None
            and math.isfinite(self.latitude)
            and math.isfinite(self.longitude)
        )

    @property
    def exact_time(self) -> datetime | None:
        """The capture time when the file itself recorded it (not guessed from the message)."""
        return self.taken_at if self.time_source in ("exif", "container") else None


@dataclass(frozen=True)
class Origin:
    """The chat message a media file came in, as the album keeps it (no Telegram types)."""

    file_id: str | None = None
    file_unique_id: str | None = None
    file_name: str | None = None
    mime_type: str | None = None
    caption: str | None = None
    chat_message_id: int | None = None
    media_group_id: str | None = None
    sender_id: int | None = None
    sender_name: str | None = None
    message_date: datetime | None = None
    # photo, video, video_note, animation, document, voice or audio
    telegram_type: str | None = None


@dataclass(frozen=True)
class Blob:
    """A stored file, named by the sha256 of its bytes."""

    sha256: str
    size: int
    mime_type: str


@dataclass(frozen=True)
class Media:
    """A checked media file ready for an album: its files, where it came from, what it says.

    `model` is the copy the model sees (an upright small JPEG for a photo, the file itself for a
    video); until `model_ready`, it names the original and the copy is still to be made.
    """

    kind: MediaKind
    source: Blob
    model: Blob
    origin: Origin
    facts: MediaFacts
    model_ready: bool = True


@dataclass(frozen=True)
class Item:
    """A media file in an album."""

    id: int
    album_id: int
    batch_id: int | None
    position: int
    media: Media
    created_at: str
    model_failed: str | None = None

    @property
    def kind(self) -> MediaKind:
        return self.media.kind

    @property
    def noun(self) -> str:
        """What the item is called: 'photo', 'video' or 'voice note'."""
        return KIND_NOUNS[self.kind]

    @property
    def label(self) -> str:
        """How the item is named to the user and the model: 'photo 3', 'voice note 12'."""
        return f"{self.noun} {self.position}"


@dataclass(frozen=True)
class Note:
    id: int
    album_id: int
    batch_id: int | None
    text: str
    sender_id: int | None
    sender_name: str | None
    created_at: str


class AddStatus(Enum):
    ADDED = "added"
    DUPLICATE = "duplicate"
    FULL = "full"


@dataclass(frozen=True)
class AddOutcome:
    """What storing a media file did; `item` is the new one, or the one it repeats."""

    status: AddStatus
    item: Item | None


@dataclass(frozen=True)
class Arrival:
    """A media file received and numbered, waiting for its download and checks."""

    id: int
    album_id: int
    batch_id: int | None
    position: int
    kind: MediaKind
    origin: Origin
    file_size: int | None = None


class Reservation(Enum):
    RESERVED = "reserved"  # numbered: its download is a job now
    REPEAT = "repeat"  # the album has this file already (Telegram's file_unique_id)
    AGAIN = "again"  # this very message was numbered before (its update is run again)
    FULL = "full"


@dataclass(frozen=True)
class BurstCounting:
    """Count a received file in its chat's burst in the very transaction that numbers it (the
    batch it joins, its count, when the acknowledgement is due), and defer `then`, the
    acknowledgement's job, with it, to run when the acknowledgement is due (or bring the one
    waiting forward to then).

    `received_at` is when the file's message was received, on the database's clock: the burst
    is timed by it (a debounce after the last item received), not by when a backlog of updates
    let the file be numbered. None: now."""

    chat_id: int
    debounce: float
    gap: float
    language: str | None = None
    then: Job | None = None
    received_at: float | None = None
    # The lock of the chat's update jobs: while one of them waits to start, the waiting
    # acknowledgement is not brought forward (the burst may grow: the last one's turn will).
    updates_lock: str | None = None


@dataclass(frozen=True)
class CurrentAlbum:
    """The chat's current album, looked up in the transaction that uses it; made, named
    `new_name`, when the chat has none yet."""

    chat_id: int
    new_name: str


@dataclass(frozen=True)
class Reserved:
    """What receiving a media file did: its number, or why it has none."""

    status: Reservation
    arrival: Arrival | None = None
    album: Album | None = None  # the album it went to, when asked for the current one


@dataclass(frozen=True)
class JobResult:
    """What a job did (JSON), to keep under its id with the change itself (`ResultStore`)."""

    job_id: int
    name: str
    value: str


@dataclass(frozen=True)
class Removed:
    """What taking back a batch removed, and the blobs nothing uses any more."""

    items: list[Item]
    notes: list[Note]
    orphan_blobs: list[str]


@dataclass(frozen=True)
class NewExchange:
    """A finished question and answer, ready to be stored."""

    album_id: int
    kind: str
    prompt: str
    answer_text: str
    answer_content: str | None = None
    user_text: str | None = None
    focus_item_id: int | None = None
    sender_id: int | None = None
    job_id: int | None = None  # the job that asked: its rerun reads this answer back


@dataclass(frozen=True)
class Exchange:
    """A stored question and its complete answer."""

    id: int
    album_id: int
    kind: str
    prompt: str
    user_text: str | None
    focus_item_id: int | None
    answer_text: str
    answer_content: str | None
    sender_id: int | None
    created_at: str
    job_id: int | None = None


@dataclass(frozen=True)
class Sent:
    """A Telegram call a job made: by which attempt, and Telegram's answer (None: the call was
    about to be made and its answer never recorded)."""

    attempt: int
    result: Any = None  # Telegram's `result`, decoded JSON


@dataclass(frozen=True)
class Upload:
    """A file the model service holds, remembered by the sha256 of its bytes."""

    sha256: str
    name: str
    uri: str
    mime_type: str
    expires_at: str  # ISO 8601, UTC
    created_at: str = ""


@dataclass(frozen=True)
class CachedContext:
    """An album's context (system instruction + album turn) held by the model service, so
    follow-ups refer to it instead of sending it again. `key` says what it holds."""

    name: str
    key: str
    expires_at: str  # ISO 8601, UTC
    tokens: int


@dataclass(frozen=True)
class TokenCounts:
    """Tokens one model call used, as the API reported them."""

    prompt: int = 0
    output: int = 0
    thinking: int = 0
    cached: int = 0
    total: int = 0
    by_modality: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class UsageRecord:
    """The tokens one model call used, and for whom."""

    chat_id: int
    user_id: int | None
    album_id: int | None
    kind: str
    model: str
    tokens: TokenCounts = field(default_factory=TokenCounts)


@dataclass(frozen=True)
class UsageTotals:
    """Sums over a period."""

    calls: int
    prompt_tokens: int  # all input tokens, the cached ones included
    output_tokens: int
    total_tokens: int
    audio_tokens: int = 0  # of the prompt tokens, those spent hearing audio
    cached_tokens: int = 0  # input tokens read from a context cache (cheaper)


@dataclass(frozen=True)
class ChatFootprint:
    """What the bot holds for one chat."""

    albums: int
    items: int
    notes: int
    exchanges: int
    usage_rows: int


@dataclass(frozen=True)
class Forgotten:
    """What forgetting a chat removed, and the blobs no other chat uses any more."""

    footprint: ChatFootprint
    orphan_blobs: list[str]


@dataclass(frozen=True)
class Failure:
    """A file of a burst that could not be added: its name and why (a message id, translated
    where it is shown)."""

    name: str
    reason: str
    version: int = 0  # the burst's version that counted it: shown once that version is


@dataclass(frozen=True)
class Burst:
    """One chat's burst: which batch it fills, what it added, and the message that says so.

    Times are seconds since the epoch on the database's clock."""

    id: int
    album_id: int
    batch_id: int | None  # None while it holds only repeats, which open no batch
    last: float  # when a new item or note last used its batch
    photos: int = 0
    videos: int = 0
    voice_notes: int = 0  # items of kind "audio"
    notes: int = 0
    repeats: int = 0
    message_id: int | None = None  # the acknowledgement sent for it, edited as it grows
    version: int = 0  # changes counted so far
    shown: int = 0  # the version its acknowledgement last showed
    failures: tuple[Failure, ...] = ()  # files that failed, not shown yet
    language: str | None = None  # of the latest update it counted: its acknowledgement's
    chat_id: int = 0
    started: float = 0.0
    quiet_until: float | None = None  # its acknowledgement is due then
    pending_since: float | None = None  # its first change not shown yet
    ended: bool = False

    @property
    def unshown(self) -> bool:
        """Whether it counted something its acknowledgement does not show yet."""
        return self.version > self.shown
