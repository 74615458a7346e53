"""The schema as it is now, for writing queries: one `MetaData`, the same on both engines.

The tables themselves are made by the migrations (`storage.sql.migrations`); a test checks
that what they make has exactly these columns, on SQLite and on PostgreSQL. Times are ISO 8601
text on both engines: a photo's `taken_at` keeps the camera's own offset, or none, which a
timestamp column would not. Telegram ids, sizes and row ids are 64-bit.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Double, ForeignKey, Integer, MetaData, Table, Text

metadata = MetaData()


def _id() -> Column[int]:
    return Column("id", BigInteger, primary_key=True)


def _album() -> Column[int]:
    return Column("album_id", BigInteger, ForeignKey("albums.id"), nullable=False)


def _batch() -> Column[int]:
    return Column("batch_id", BigInteger, ForeignKey("batches.id"))


chats = Table(
    "chats",
    metadata,
    Column("chat_id", BigInteger, primary_key=True),
    Column("current_album_id", BigInteger),
    Column("created_at", Text, nullable=False),
    Column("language", Text),  # chosen with /language; NULL follows the writer's Telegram language
)

albums = Table(
    "albums",
    metadata,
    _id(),
    Column("chat_id", BigInteger, nullable=False),
    Column("name", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)

blobs = Table(
    "blobs",
    metadata,
    Column("sha256", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("mime_type", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)

batches = Table("batches", metadata, _id(), _album(), Column("created_at", Text, nullable=False))

items = Table(
    "items",
    metadata,
    _id(),
    _album(),
    _batch(),
    Column("position", Integer, nullable=False),
    Column("kind", Text, nullable=False),
    Column("source_sha256", Text, ForeignKey("blobs.sha256"), nullable=False),
    Column("source_size", BigInteger, nullable=False),
    Column("source_mime", Text, nullable=False),
    Column("model_sha256", Text, ForeignKey("blobs.sha256"), nullable=False),
    Column("model_size", BigInteger, nullable=False),
    Column("model_mime_type", Text, nullable=False),
    Column("model_ready", Integer, nullable=False),
    Column("file_unique_id", Text),
    Column("file_id", Text),
    Column("file_name", Text),
    Column("mime_type", Text),
    Column("caption", Text),
    Column("chat_message_id", BigInteger),
    Column("media_group_id", Text),
    Column("sender_id", BigInteger),
    Column("sender_name", Text),
    Column("telegram_type", Text),
    Column("width", Integer),
    Column("height", Integer),
    Column("duration", Double),
    Column("taken_at", Text),
    Column("time_source", Text),
    Column("latitude", Double),
    Column("longitude", Double),
    Column("altitude", Double),
    Column("place", Text),
    Column("camera", Text),
    Column("message_date", Text),
    Column("model_failed", Text),
    Column("created_at", Text, nullable=False),
)

notes = Table(
    "notes",
    metadata,
    _id(),
    _album(),
    _batch(),
    Column("text", Text, nullable=False),
    Column("sender_id", BigInteger),
    Column("sender_name", Text),
    Column("created_at", Text, nullable=False),
)

exchanges = Table(
    "exchanges",
    metadata,
    _id(),
    _album(),
    Column("kind", Text, nullable=False),
    Column("prompt", Text, nullable=False),
    Column("user_text", Text),
    Column("focus_item_id", BigInteger, ForeignKey("items.id")),
    Column("answer_text", Text, nullable=False),
    Column("answer_content", Text),
    Column("sender_id", BigInteger),
    Column("created_at", Text, nullable=False),
    Column("job_id", BigInteger),  # the job that asked: a rerun reads the answer back
)

uploads = Table(
    "uploads",
    metadata,
    Column("sha256", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("uri", Text, nullable=False),
    Column("mime_type", Text, nullable=False),
    Column("expires_at", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)

usage = Table(
    "usage",
    metadata,
    _id(),
    Column("user_id", BigInteger),
    Column("chat_id", BigInteger, nullable=False),
    Column("album_id", BigInteger),
    Column("kind", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("thinking_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("total_tokens", Integer, nullable=False),
    Column("by_modality", Text),
    Column("created_at", Text, nullable=False),
)

context_caches = Table(
    "context_caches",
    metadata,
    Column("album_id", BigInteger, ForeignKey("albums.id", ondelete="CASCADE"), primary_key=True),
    Column("name", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("expires_at", Text, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("created_at", Text, nullable=False),
)

# A media file received and numbered, not yet downloaded and checked: counted in its burst's
# acknowledgement at once, turned into an item (same position) by its ingest job, or dropped
# with the reason when it cannot be (the acknowledgement then names it).
arrivals = Table(
    "arrivals",
    metadata,
    _id(),
    _album(),
    _batch(),
    Column("position", Integer, nullable=False),
    Column("kind", Text, nullable=False),
    Column("origin", Text, nullable=False),  # the message it came in (Origin as JSON)
    Column("file_unique_id", Text),  # a file sent again is known before its download
    Column("chat_message_id", BigInteger),
    Column("file_size", BigInteger),
    Column("created_at", Text, nullable=False),
)

# Every update_id received in the last day or more, pending or handled: a second delivery of
# one (a webhook resent after a lost 200, a poll re-delivered after a crash) is recognised.
# Times are seconds since the epoch on the database's clock, so replicas' clocks do not matter.
received_updates = Table(
    "received_updates",
    metadata,
    Column("update_id", BigInteger, primary_key=True),
    Column("received_at", Double, nullable=False),
    Column("handled_at", Double),  # NULL while pending; kept RETENTION after, then purged
)

# The local job runner's jobs (storage.jobs.local; PostgreSQL runs procrastinate's tables, but
# the table is made on both engines, one schema). A job that succeeds is deleted; a failed one is
# kept a day. Times are seconds since the epoch on the database's clock.
jobs = Table(
    "jobs",
    metadata,
    _id(),
    Column("task", Text, nullable=False),
    Column("args", Text, nullable=False),  # JSON
    Column("lock", Text),  # one at a time per lock, in id order
    Column("queueing_lock", Text),  # at most one todo job per key
    Column("queue", Text, nullable=False),
    Column("status", Text, nullable=False),  # todo, doing or failed
    Column("attempts", Integer, nullable=False),  # attempts started
    Column("run_after", Double, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("failed_at", Double),
    # The lock's turn (`Job.keep_turn`): lower ones first; 0, no turn, before any.
    Column("turn", BigInteger, nullable=False, server_default="0"),
)

# What a job did, recorded in the transaction that did it, for a retry of the job to read back
# instead of doing it again (/undo); kept a day.
job_results = Table(
    "job_results",
    metadata,
    Column("job_id", BigInteger, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),  # JSON
    Column("created_at", Double, nullable=False),  # the database's clock
)

# A lock's turn in the queue, kept while its jobs come less than their keep_turn apart.
job_turns = Table(
    "job_turns",
    metadata,
    Column("lock", Text, primary_key=True),
    Column("turn", BigInteger, nullable=False),
    Column("until", Double, nullable=False),  # the database's clock
)

# Every Telegram message a job sent (or was about to send), keyed by the job and the call
# ("sendMessage#2": the job's third sendMessage): a job run again returns what its earlier
# attempt was answered instead of posting again. Kept a day on the database's clock.
sent_messages = Table(
    "sent_messages",
    metadata,
    Column("job_id", BigInteger, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("attempt", Integer, nullable=False),  # the attempt that meant to send it
    Column("result", Text),  # Telegram's answer (JSON); NULL until it is recorded
    Column("created_at", Double, nullable=False),  # seconds since the epoch
)

# A chat's bursts: media and notes sent close together, one batch and one acknowledgement
# message each. At most one burst per chat is under way (ended = 0); ended ones stay until
# their last change is shown (a few per chat). Times are seconds on the database's clock.
bursts = Table(
    "bursts",
    metadata,
    _id(),
    Column("chat_id", BigInteger, nullable=False),
    Column("album_id", BigInteger, nullable=False),
    Column("batch_id", BigInteger),  # NULL while it holds only repeats, which open no batch
    Column("photos", Integer, nullable=False),
    Column("videos", Integer, nullable=False),
    Column("voice_notes", Integer, nullable=False),
    Column("notes", Integer, nullable=False),
    Column("repeats", Integer, nullable=False),
    Column("failures", Text, nullable=False),  # JSON: files that failed, not shown yet
    Column("message_id", BigInteger),  # the acknowledgement, edited as the burst grows
    Column("version", Integer, nullable=False),  # changes counted so far
    Column("shown", Integer, nullable=False),  # the version the acknowledgement last showed
    Column("language", Text),  # of the latest update that counted: the acknowledgement's
    Column("started", Double, nullable=False),
    Column("last", Double, nullable=False),  # a new item or note last used its batch
    Column("quiet_until", Double),  # its acknowledgement is due then
    Column("pending_since", Double),  # the first change not shown yet
    Column("ended", Integer, nullable=False),  # 1: the next media starts another burst
)

# "Told this chat about `topic` lately" (an album of ten sent to a full album gets one answer).
hints = Table(
    "hints",
    metadata,
    Column("chat_id", BigInteger, primary_key=True),
    Column("topic", Text, primary_key=True),
    Column("told_at", Double, nullable=False),  # the database's clock
)

migrations = Table(
    "_migrations",
    metadata,
    Column("name", Text, primary_key=True),
    Column("applied_at", Text, nullable=False),
)
