"""The model interface the services depend on, in the product's own terms (no SDK types).

`Model` is what a provider must do; `bot.gemini.gemini_model.GeminiModel` does it for Gemini,
and the tests reach it through a fake Gemini server on the wire.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from storage.records import CachedContext, TokenCounts, Upload

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


# A request's leading context (the system instruction and the album) held by the provider:
# requests that name it do not send it again, and its tokens are billed at the cached price.
ContextCache = CachedContext


@dataclass(frozen=True)
class ModelRequest:
    """A whole request: instructions plus the conversation, ending with the user's turn.

    The first `context_parts` parts of the first turn are the album: with the system instruction
    they are the context a `ContextCache` can hold. With `cache` set, the request refers to it
    and neither the system instruction nor those parts are sent.
    """

    system: str
    turns: tuple[Turn, ...]
    kind: str = "question"
    json_schema: dict[str, Any] | None = None
    context_parts: int = 0
    cache: ContextCache | None = None

    def context(self) -> tuple[Part, ...]:
        """The album's parts: what a context cache holds beside the system instruction."""
        return self.turns[0].parts[: self.context_parts] if self.turns else ()

    def context_key(self) -> str:
        """A fingerprint of the context, "<system>/<album>": another language changes the first
        half; another item, note or caption the second."""
        album = hashlib.sha256()
        for part in self.context():
            text = part if isinstance(part, str) else f"\0media:{part.key}:{part.mime_type}"
            album.update(b"\0" + text.encode())
        system = hashlib.sha256(self.system.encode())
        return f"{system.hexdigest()[:32]}/{album.hexdigest()[:32]}"

    def sent_turns(self) -> tuple[Turn, ...]:
        """The turns to send: without the context when a cache holds it."""
        if self.cache is None or not self.context_parts or not self.turns:
            return self.turns
        first = self.turns[0]
        rest = first.parts[self.context_parts :]
        head = (Turn(first.role, rest, first.raw),) if rest else ()
        return head + self.turns[1:]

    def using(self, cache: ContextCache | None) -> ModelRequest:
        """The same request referring to this cache (None: sending everything)."""
        return replace(self, cache=cache)

    def media(self) -> list[MediaRef]:
        """Every distinct media file the request sends, in order (the cached ones not)."""
        seen: dict[str, MediaRef] = {}
        for turn in self.sent_turns():
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


OnText = Callable[[str], Awaitable[None]]
OnStatus = Callable[[str], Awaitable[None]]
OnUsage = Callable[[TokenUsage], Awaitable[None]]


@dataclass(frozen=True)
class PreparedMedia:
    """The outcome of making media available: ready files by key, and those the model refused."""

    ready: dict[str, Upload]
    failed: list[tuple[MediaRef, str]]


class Model(Protocol):
    """A multimodal model that reads photos and videos, hears voice notes, and answers a
    conversation about them."""

    def accepts(self, mime_type: str) -> bool:
        """Whether the model can read a file of this type (refused before any paid call)."""
        ...

    async def prepare(
        self, refs: list[MediaRef], on_status: OnStatus | None = None
    ) -> PreparedMedia:
        """Make the files available to the model (uploads); report those it cannot process."""
        ...

    async def generate(
        self,
        request: ModelRequest,
        on_text: OnText | None = None,
        on_usage: OnUsage | None = None,
    ) -> ModelAnswer:
        """Answer the request, streaming the text so far to `on_text` when given."""
        ...

    async def delete_uploads(self, keys: list[str]) -> int:
        """Delete these files' uploads at the provider; how many were deleted."""
        ...

    # Context caching. `cache_min_tokens` is the smallest context the provider caches;
    # `cache_ttl` how long (seconds) a cache lives after it is made or refreshed (0: never cache).
    cache_min_tokens: int
    cache_ttl: float

    async def cache_context(self, request: ModelRequest) -> ContextCache | None:
        """Cache the request's context (system instruction + album); None if refused (logged).
        A request that names a cache the provider no longer holds raises `ContextCacheGone`."""
        ...

    async def refresh_cache(self, cache: ContextCache) -> ContextCache | None:
        """Extend a cache's life by `cache_ttl`; None if the provider no longer holds it."""
        ...

    async def delete_cache(self, name: str) -> bool:
        """Delete a cache at the provider; False if it was gone already."""
        ...

    async def aclose(self) -> None:
        """Close the client's connections."""
        ...
