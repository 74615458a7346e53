"""Each album's context (system instruction + album turn) cached at Gemini while its
conversation goes on (cachedContents), so follow-ups refer to it and are billed at the cached
price.

One cache per album, recorded in the cache store (a restarted bot reuses it). Made after an
answer whose request was big enough (the first is usually the story), used by every later
request whose context is the same, given another TTL when used in the second half of its life,
rebuilt once when Gemini has lost it, and deleted when the album's context changes, on /reset
and on /forget. A refused cache is not an error: the request is sent whole, as without caching.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime, timedelta

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from bot.gemini.contents import ContentMaker
from bot.gemini.failures import transport_errors
from bot.model import MediaRef, ModelRequest, TokenUsage
from storage.protocols import ContextCacheStore
from storage.records import CachedContext, Upload

log = logging.getLogger(__name__)

# A cache this close to its expiry may be gone by the time the request reaches the API.
EXPIRY_MARGIN = timedelta(seconds=30)
# A context Gemini refused to cache is not offered again for this long (seconds).
REFUSAL_MEMORY = 3600.0


class CacheGone(Exception):
    """A request named a cache Gemini no longer holds (expired or deleted)."""


class ContextCaches:
    """Decides, per album, whether a request refers to a cache, and keeps the caches tidy."""

    def __init__(
        self,
        client: genai.Client,
        store: ContextCacheStore,
        contents: ContentMaker,
        *,
        model_name: str,
        ttl: float,
        min_tokens: int,
    ) -> None:
        self.client = client
        self.store = store
        self.contents = contents
        self.model_name = model_name
        self.ttl = ttl  # seconds a cache lives after it is made or refreshed (0: never cache)
        self.min_tokens = min_tokens  # the smallest prompt whose context is worth caching
        # Contexts Gemini refused to cache (too small, quota...), by when: not asked again for
        # an hour.
        self._refused: dict[str, float] = {}

    async def attach(self, request: ModelRequest) -> CachedContext | None:
        """The album's live cache of this request's context, when there is one."""
        album_id = request.album_id
        if album_id is None or not request.context_parts:
            return None
        held = await self.store.get(album_id)
        if held is None:
            return None
        key = context_key(request)
        if _album_part(held.key) != _album_part(key):
            log.info("Album %s changed since it was cached; deleting %s", album_id, held.name)
            await self.discard(album_id)
            return None
        if held.key != key:
            # Someone asking in another language (a group): sent whole, the cache kept for
            # the others rather than swapped back and forth.
            return None
        remaining = _expires(held) - datetime.now(UTC)
        if remaining <= EXPIRY_MARGIN:
            # Expired (or about to): the API has let it go; a new one follows this answer.
            await self.store.drop(album_id)
            return None
        if remaining < timedelta(seconds=self.ttl / 2):
            refreshed = await self._refresh(held)
            if refreshed is None:
                await self.store.drop(album_id)
                return None
            await self.store.put(album_id, refreshed)
            held = refreshed
        return held

    async def rebuild(
        self, request: ModelRequest, ready: dict[str, Upload]
    ) -> CachedContext | None:
        """After Gemini lost the request's cache: a new cache of the same context (None: the
        request goes whole)."""
        assert request.album_id is not None  # only a request of an album names a cache
        await self.store.drop(request.album_id)
        made = await self._make(request, ready)
        if made is not None:
            await self.store.put(request.album_id, made)
        return made

    async def settle(
        self, request: ModelRequest, usage: TokenUsage, ready: dict[str, Upload]
    ) -> CachedContext | None:
        """After an answer sent whole: cache its context if it is big enough; the new cache."""
        album_id = request.album_id
        if album_id is None or self.ttl <= 0 or not request.context_parts:
            return None
        # The prompt held the context and more; the API checks the context itself.
        if usage.prompt < self.min_tokens:
            return None
        if await self.store.get(album_id) is not None:
            return None  # the album's cache holds another language's system instruction
        made = await self._make(request, ready)
        if made is not None:
            await self.store.put(album_id, made)
        return made

    async def discard(self, album_id: int) -> None:
        """Delete the album's cache at Gemini and forget it."""
        held = await self.store.get(album_id)
        if held is None:
            return
        await self.store.drop(album_id)
        await self._delete(held.name)

    async def give_up(self, request: ModelRequest) -> None:
        """Gemini lost even a fresh cache of this context: stop caching it in this process."""
        self._refused[context_key(request)] = time.monotonic()
        if request.album_id is not None:
            await self.discard(request.album_id)

    async def _make(self, request: ModelRequest, ready: dict[str, Upload]) -> CachedContext | None:
        key = context_key(request)
        refused = self._refused.get(key)
        if refused is not None and time.monotonic() - refused < REFUSAL_MEMORY:
            return None
        made = await self._create(request, ready)
        if made is None:
            self._refused[key] = time.monotonic()
            log.info("The album's context was not cached; its requests are sent whole")
        return made

    async def _create(
        self, request: ModelRequest, ready: dict[str, Upload]
    ) -> CachedContext | None:
        """Cache the system instruction and the album turn (cachedContents); None if refused."""
        if self.ttl <= 0 or any(
            isinstance(p, MediaRef) and p.key not in ready for p in request.context()
        ):
            return None
        config = types.CreateCachedContentConfig(
            contents=[self.contents.context(request, ready)],
            system_instruction=request.system,
            ttl=_ttl(self.ttl),
            display_name="photostory album",
        )
        try:
            made = await self.client.aio.caches.create(model=self.model_name, config=config)
        except genai_errors.APIError as e:
            log.info("Gemini did not cache the album (%s %s): %s", e.code, e.status, e.message)
            return None
        except transport_errors() as e:
            log.info("Could not reach Gemini to cache the album: %s", type(e).__name__)
            return None
        tokens = made.usage_metadata.total_token_count if made.usage_metadata else None
        return CachedContext(
            name=made.name or "",
            key=context_key(request),
            expires_at=self._expiry(made.expire_time),
            tokens=tokens or 0,
        )

    async def _refresh(self, cache: CachedContext) -> CachedContext | None:
        """Give the cache another TTL (PATCH ttl); None if the API no longer holds it."""
        config = types.UpdateCachedContentConfig(ttl=_ttl(self.ttl))
        try:
            updated = await self.client.aio.caches.update(name=cache.name, config=config)
        except genai_errors.APIError as e:
            if e.code in (403, 404):
                return None
            log.info("Could not refresh cache %s (%s); using it as it is", cache.name, e.code)
            return cache
        except transport_errors():
            return cache
        return CachedContext(cache.name, cache.key, self._expiry(updated.expire_time), cache.tokens)

    async def _delete(self, name: str) -> None:
        """Delete a cache at the API (gone already or unreachable: logged, not an error)."""
        try:
            await self.client.aio.caches.delete(name=name)
        except genai_errors.APIError as e:
            if e.code not in (403, 404):
                log.warning("Could not delete cache %s: %s", name, e.code)
        except transport_errors():
            log.warning("Could not reach Gemini to delete cache %s", name)

    def _expiry(self, expire_time: datetime | None) -> str:
        moment = expire_time or datetime.now(UTC) + timedelta(seconds=self.ttl)
        return moment.astimezone(UTC).isoformat(timespec="seconds")


def context_key(request: ModelRequest) -> str:
    """A fingerprint of the request's context, "<system>/<album>": another language changes
    the first half; another item, note or caption the second."""
    album = hashlib.sha256()
    for part in request.context():
        text = part if isinstance(part, str) else f"\0media:{part.key}:{part.mime_type}"
        album.update(b"\0" + text.encode())
    system = hashlib.sha256(request.system.encode())
    return f"{system.hexdigest()[:32]}/{album.hexdigest()[:32]}"


def _album_part(key: str) -> str:
    return key.rpartition("/")[2]


def _expires(cache: CachedContext) -> datetime:
    try:
        moment = datetime.fromisoformat(cache.expires_at)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ttl(seconds: float) -> str:
    return f"{max(1, int(seconds))}s"
