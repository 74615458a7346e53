"""The model interface the services depend on, in the product's own terms (no SDK types).

`Model` is what a provider must do (one call, `answer`, and a little housekeeping: see its
docstring); `bot.gemini.gemini_model.GeminiModel` does it for Gemini, and the tests reach it
through a fake Gemini server on the wire.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from storage.records import TokenCounts

# What the model accepts, checked before any paid call (refused types never leave the bot).
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/heic", "image/heif"})
VIDEO_TYPES = frozenset(
    {
        "video/mp4", "video/mpeg", "video/quicktime", "video/webm", "video/3gpp",
        "video/x-flv", "video/mpg", "video/wmv", "video/avi", "video/x-msvideo",
    }
)  # fmt: skip
# Gemini's documented audio types (https://ai.google.dev/gemini-api/docs/audio); the bot sends
# voice notes (Ogg/Opus) as they are and re-encodes other audio to Ogg/Opus (bot/media/audio.py).
AUDIO_TYPES = frozenset(
    {"audio/wav", "audio/mp3", "audio/aiff", "audio/aac", "audio/ogg", "audio/flac"}
)


@dataclass(frozen=True)
class MediaRef:
    """A stored file the model should see."""

    key: str  # sha256 of the bytes: uploads are remembered by it
    mime_type: str
    label: str  # how messages name it: "video 3 (pier.mp4)"
    # Blocking (run it in a thread): a local path holding the bytes. Called only when the file
    # is sent, so media the model service already holds are not fetched from a bucket again.
    local_path: Callable[[], Path] = field(compare=False)

    @property
    def is_video(self) -> bool:
        return self.mime_type.startswith("video/")

    @property
    def is_audio(self) -> bool:
        return self.mime_type.startswith("audio/")


Part = str | MediaRef


@dataclass(frozen=True)
class Turn:
    """One turn of the conversation. `raw` is a stored model turn exactly as the API gave it."""

    role: Literal["user", "model"]
    parts: tuple[Part, ...]
    raw: str | None = None


@dataclass(frozen=True)
class ModelRequest:
    """A whole request: instructions plus the conversation, ending with the user's turn.

    The first `context_parts` parts of the first turn are the album: with the system instruction
    they are the album's context, which the model may keep (a context cache, one per `album_id`)
    so that later requests need not send it again.
    """

    system: str
    turns: tuple[Turn, ...]
    kind: str = "question"
    json_schema: dict[str, Any] | None = None
    context_parts: int = 0
    album_id: int | None = None

    def context(self) -> tuple[Part, ...]:
        """The album's parts: what a context cache holds beside the system instruction."""
        return self.turns[0].parts[: self.context_parts] if self.turns else ()

    def media(self) -> list[MediaRef]:
        """Every distinct media file of the request, in order."""
        seen: dict[str, MediaRef] = {}
        for turn in self.turns:
            for part in turn.parts:
                if isinstance(part, MediaRef) and part.key not in seen:
                    seen[part.key] = part
        return list(seen.values())


# Tokens one call used, as the API reported them: the same counts the usage store keeps.
TokenUsage = TokenCounts


@dataclass(frozen=True)
class ModelAnswer:
    """A complete answer: its text, the turn to store, and what it cost."""

    text: str
    raw: str | None
    usage: TokenUsage
    finish_reason: str


@dataclass(frozen=True)
class Listener:
    """Where `Model.answer` reports while it works (the chat, in practice)."""

    # A short line on what is happening ("Processing video 2 of 3...").
    status: Callable[[str], Awaitable[None]]
    # The answer written so far, each time it grows.
    text: Callable[[str], Awaitable[None]]
    # Tokens a paid call used: the answer's (kind: the request's kind) or, when the call made a
    # context cache, the cache's ("cache").
    usage: Callable[[str, TokenUsage], Awaitable[None]]


class Model(Protocol):
    """A multimodal model that reads photos and videos, hears voice notes, and answers a
    conversation about them.

    One call does the work: `answer` takes a whole request and streams the answer. Everything a
    provider needs to get there stays behind it: making the files available (uploads, and again
    when the provider lost them), holding the album's context (a cache used, refreshed, rebuilt
    when lost, or given up for the whole request), retries. The rest is housekeeping:

    - `accepts`: the capability check, so a type the model cannot read is refused before any
      paid call;
    - `upload`: make files available ahead of any request (the folder command's progress bar);
    - `forget`: delete what the provider holds of files nothing uses any more (undo, /forget)
      and of albums whose conversation ended (/reset, /forget);
    - `aclose`: close the client's connections at shutdown.
    """

    def accepts(self, mime_type: str) -> bool:
        """Whether the model can read a file of this type (refused before any paid call)."""
        ...

    async def answer(self, request: ModelRequest, listener: Listener) -> ModelAnswer:
        """Answer the request, streaming the text so far to the listener.

        Raises `MediaNotProcessed` (before any paid call) naming the files the model cannot
        process, and another `ModelError` when it cannot answer."""
        ...

    async def upload(self, refs: list[MediaRef]) -> None:
        """Make these files available to the model now (those it cannot process are left to
        the request, which says so)."""
        ...

    async def forget(self, *, files: Sequence[str] = (), albums: Sequence[int] = ()) -> int:
        """Delete what the provider holds of these files (by key) and of these albums'
        contexts; how many files' uploads were deleted."""
        ...

    async def aclose(self) -> None:
        """Close the client's connections."""
        ...
