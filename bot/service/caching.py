"""Each album's context (system instruction + album turn) cached at the model while its
conversation goes on, so follow-ups refer to it and are billed at the cached price.

One cache per album, recorded in storage (a restarted bot reuses it). Made after an answer
whose request was big enough (the first is usually the story), used by every later request
whose context is the same, given another TTL when used in the second half of its life, and
deleted when the album's context changes, on /reset and on /forget. A refused cache is not
an error: the request is sent whole, as without caching.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from bot.model import ContextCache, Model, ModelRequest, TokenUsage
from storage.protocols import ContextCacheStore

log = logging.getLogger(__name__)

# A cache this close to its expiry may be gone by the time the request reaches the API.
EXPIRY_MARGIN = timedelta(seconds=30)
# A context the model refused to cache is not offered again for this long (seconds).
REFUSAL_MEMORY = 3600.0


class ContextCaches:
    """Decides, per album, whether a request refers to a cache, and keeps the caches tidy."""

    def __init__(self, store: ContextCacheStore, model: Model) -> None:
        self.store = store
        self.model = model
        # Contexts the model refused to cache (too small, quota...), by when: not asked again
        # for an hour.
        self._refused: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        """Whether the model caches contexts at all."""
        return self.model.cache_ttl > 0

    async def attach(self, album_id: int, request: ModelRequest) -> ModelRequest:
        """The request referring to the album's live cache of this context, when there is one."""
        held = await self.store.get(album_id)
        if held is None or not request.context_parts:
            return request
        key = request.context_key()
        if _album_part(held.key) != _album_part(key):
            log.info("Album %s changed since it was cached; deleting %s", album_id, held.name)
            await self.discard(album_id)
            return request
        if held.key != key:
            # Someone asking in another language (a group): sent whole, the cache kept for
            # the others rather than swapped back and forth.
            return request
        remaining = _expires(held) - datetime.now(UTC)
        if remaining <= EXPIRY_MARGIN:
            # Expired (or about to): the API has let it go; a new one follows this answer.
            await self.store.drop(album_id)
            return request
        if remaining < timedelta(seconds=self.model.cache_ttl / 2):
            refreshed = await self.model.refresh_cache(held)
            if refreshed is None:
                await self.store.drop(album_id)
                return request
            await self.store.put(album_id, refreshed)
            held = refreshed
        return request.using(held)

    async def rebuild(self, album_id: int, request: ModelRequest) -> ModelRequest:
        """After the API refused the request's cache: a new cache of the same context, or the
        whole request if it cannot be made."""
        await self.store.drop(album_id)
        made = await self._make(request)
        if made is not None:
            await self.store.put(album_id, made)
        return request.using(made)

    async def settle(
        self, album_id: int, request: ModelRequest, usage: TokenUsage
    ) -> ContextCache | None:
        """After an answer sent whole: cache its context if it is big enough; the new cache."""
        if request.cache is not None or not self.enabled or not request.context_parts:
            return None
        # The prompt held the context and more; the API checks the context itself.
        if usage.prompt < self.model.cache_min_tokens:
            return None
        if await self.store.get(album_id) is not None:
            return None  # the album's cache holds another language's system instruction
        made = await self._make(request.using(None))
        if made is not None:
            await self.store.put(album_id, made)
        return made

    async def discard(self, album_id: int) -> None:
        """Delete the album's cache at the model and forget it."""
        held = await self.store.get(album_id)
        if held is None:
            return
        await self.store.drop(album_id)
        await self.model.delete_cache(held.name)

    async def give_up(self, album_id: int, request: ModelRequest) -> None:
        """The API refused even a fresh cache of this context: stop caching it in this process."""
        self._refused[request.context_key()] = time.monotonic()
        await self.discard(album_id)

    async def _make(self, request: ModelRequest) -> ContextCache | None:
        key = request.context_key()
        refused = self._refused.get(key)
        if refused is not None and time.monotonic() - refused < REFUSAL_MEMORY:
            return None
        made = await self.model.cache_context(request)
        if made is None:
            self._refused[key] = time.monotonic()
            log.info("The album's context was not cached; its requests are sent whole")
        return made


def _album_part(key: str) -> str:
    return key.rpartition("/")[2]


def _expires(cache: ContextCache) -> datetime:
    try:
        moment = datetime.fromisoformat(cache.expires_at)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
