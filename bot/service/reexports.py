"""What storage defines and the Telegram side uses, re-exported unchanged: the records the
services hand over, and the job interface the Telegram side registers its tasks on.

They are defined once, in `storage.records`, `storage.jobs`, `storage.protocols` and (which
database failures pass) `storage.sql.database`; handlers import them from here so that nothing
under `bot/telegram/` imports a `storage` module (the layering rule in docs/architecture.md).
"""

from storage.jobs import (
    CHAT,
    JSON,
    MEDIA,
    Attempt,
    Job,
    JobQueue,
    TakenOver,
    Task,
    current_attempt,
    reset,
    running,
)
from storage.protocols import RECEIVED_AT, SentStore
from storage.records import KIND_NOUNS, AlbumSummary, Arrival, ChatFootprint, Item, Origin
from storage.sql.database import passing

__all__ = [
    "CHAT",
    "JSON",
    "KIND_NOUNS",
    "MEDIA",
    "RECEIVED_AT",
    "AlbumSummary",
    "Arrival",
    "Attempt",
    "ChatFootprint",
    "Item",
    "Job",
    "JobQueue",
    "Origin",
    "SentStore",
    "TakenOver",
    "Task",
    "current_attempt",
    "passing",
    "reset",
    "running",
]
