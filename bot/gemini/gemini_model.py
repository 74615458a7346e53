"""The one door to Gemini: one call takes a request and streams its answer; uploads, context
caches and their recovery happen behind it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from bot.config import Settings
from bot.errors import MediaNotProcessed, ModelError, ModelUnavailable
from bot.gemini.answers import StreamState, user_error
from bot.gemini.caches import CacheGone, ContextCaches
from bot.gemini.contents import ContentMaker, sent_media
from bot.gemini.failures import (
    is_file_not_ready,
    is_stale_cache,
    is_stale_file,
    is_timeout,
    is_transient,
    retry_delay,
    transport_errors,
)
from bot.gemini.uploads import MediaUploader, UploadOutcome
from bot.i18n import _
from bot.model import (
    AUDIO_TYPES,
    IMAGE_TYPES,
    VIDEO_TYPES,
    Listener,
    MediaRef,
    ModelAnswer,
    ModelRequest,
    TokenUsage,
)
from bot.service.words import shown_label
from storage.protocols import ContextCacheStore, UploadStore
from storage.records import CachedContext, Upload

log = logging.getLogger(__name__)

_PART_RESOLUTIONS = {
    "low": types.PartMediaResolutionLevel.MEDIA_RESOLUTION_LOW,
    "medium": types.PartMediaResolutionLevel.MEDIA_RESOLUTION_MEDIUM,
    "high": types.PartMediaResolutionLevel.MEDIA_RESOLUTION_HIGH,
}
_RESOLUTIONS = {
    "low": types.MediaResolution.MEDIA_RESOLUTION_LOW,
    "medium": types.MediaResolution.MEDIA_RESOLUTION_MEDIUM,
    "high": types.MediaResolution.MEDIA_RESOLUTION_HIGH,
}


class GeminiModel:
    """Gemini as the product's `Model` (bot/model.py): File API uploads, cachedContents for
    each album's context, and streamed, retried answers."""

    capabilities = IMAGE_TYPES | VIDEO_TYPES | AUDIO_TYPES

    def __init__(self, settings: Settings, uploads: UploadStore, caches: ContextCacheStore) -> None:
        self.model_name = settings.gemini_model
        self.attempts = settings.gemini_attempts
        self.backoff = settings.gemini_backoff
        self.max_retry_wait = settings.gemini_max_retry_wait
        self.media_resolution = _RESOLUTIONS[settings.media_resolution]
        self.client = genai.Client(
            api_key=settings.gemini_api_key,
            http_options=types.HttpOptions(
                base_url=settings.gemini_base_url,
                api_version=settings.gemini_api_version,
                timeout=int(settings.gemini_timeout * 1000),
                # Retries are ours (below): they know about streams already shown to the user.
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )
        self.contents = ContentMaker(
            video_fps=settings.video_fps,
            cached_resolution=_PART_RESOLUTIONS[settings.media_resolution],
        )
        self.uploads = MediaUploader(
            self.client,
            uploads,
            poll_interval=settings.file_poll_interval,
            poll_timeout=settings.file_poll_timeout,
            concurrency=settings.upload_concurrency,
            attempts=settings.gemini_attempts,
            backoff=settings.gemini_backoff,
        )
        self.caches = ContextCaches(
            self.client,
            caches,
            self.contents,
            model_name=settings.gemini_model,
            ttl=settings.gemini_cache_ttl,
            min_tokens=settings.gemini_cache_min_tokens,
        )

    def accepts(self, mime_type: str) -> bool:
        """Whether the model can read a file of this type."""
        return mime_type in self.capabilities

    async def answer(self, request: ModelRequest, listener: Listener) -> ModelAnswer:
        """Upload what the File API does not hold, refer to the album's cache (rebuilt once if
        Gemini lost it, then given up for the whole request), stream the answer, and cache the
        context of an answer sent whole when it is big enough."""
        refs = request.media()
        for ref in refs:
            if not self.accepts(ref.mime_type):
                raise ModelError(
                    _("Gemini cannot read %(item)s (%(type)s).")
                    % {"item": shown_label(ref.label), "type": ref.mime_type}
                )
        # Filled in place when files are uploaded again, so a cache made later finds them.
        ready = _ready(await self.uploads.prepare(refs, listener.status))
        cache = await self.caches.attach(request)
        try:
            answer = await self._ask(request, cache, ready, listener)
        except CacheGone:
            log.info("The cache of album %s has gone; rebuilding it", request.album_id)
            cache = await self.caches.rebuild(request, ready)
            await _report_cache(listener, cache)
            try:
                answer = await self._ask(request, cache, ready, listener)
            except CacheGone:
                log.info("The rebuilt cache of album %s was lost; sending it", request.album_id)
                await self.caches.give_up(request)
                cache = None
                answer = await self._ask(request, cache, ready, listener)
        if cache is None:
            await _report_cache(listener, await self.caches.settle(request, answer.usage, ready))
        return answer

    async def upload(self, refs: list[MediaRef]) -> None:
        """Upload what the File API does not hold yet (refused files are the request's to say)."""
        await self.uploads.prepare(refs)

    async def forget(self, *, files: Sequence[str] = (), albums: Sequence[int] = ()) -> int:
        """Delete these albums' caches and these files' uploads at the API; how many uploads."""
        for album_id in albums:
            await self.caches.discard(album_id)
        return await self.uploads.delete(list(files))

    async def aclose(self) -> None:
        """Close the client's HTTP sessions."""
        await self.client.aio.aclose()

    async def _ask(
        self,
        request: ModelRequest,
        cache: CachedContext | None,
        ready: dict[str, Upload],
        listener: Listener,
    ) -> ModelAnswer:
        """Send the request, retrying what can be retried before any text was shown."""
        attempt = 0
        refreshed = False
        while True:
            contents = self.contents.contents(request, ready, cached=cache is not None)
            progress = StreamState()
            try:
                return await self._once(request, cache, contents, listener, progress)
            except genai_errors.APIError as e:
                if cache is not None and is_stale_cache(e):
                    raise CacheGone from e
                sent = sent_media(request, cached=cache is not None)
                if (is_stale_file(e) or is_file_not_ready(e)) and sent and not refreshed:
                    # An upload expired (48 h) or was deleted: check them, re-upload, ask again.
                    log.info("A file reference was refused (%s); refreshing uploads", e.code)
                    refreshed = True
                    await self.uploads.forget(sent)
                    ready.update(_ready(await self.uploads.prepare(sent)))
                    continue
                if is_transient(e) and not progress.shown and attempt + 1 < self.attempts:
                    delay = retry_delay(e) or self.backoff * 2**attempt
                    if delay <= self.max_retry_wait:
                        attempt += 1
                        log.info("Gemini answered %s; retrying in %.1f s", e.code, delay)
                        await asyncio.sleep(delay)
                        continue
                raise user_error(e, progress.shown) from e
            except transport_errors() as e:
                if is_timeout(e):
                    raise ModelUnavailable(
                        _(
                            "Gemini took too long to answer. Please try again; a shorter request "
                            "may help."
                        )
                    ) from e
                if not progress.shown and attempt + 1 < self.attempts:
                    attempt += 1
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
                    continue
                if progress.shown:
                    raise ModelUnavailable(
                        _(
                            "The connection to Gemini broke while it was answering. "
                            "Please ask again."
                        )
                    ) from e
                raise ModelUnavailable(
                    _("I could not reach Gemini. Please try again in a minute.")
                ) from e

    async def _once(
        self,
        request: ModelRequest,
        cache: CachedContext | None,
        contents: list[types.Content],
        listener: Listener,
        state: StreamState,
    ) -> ModelAnswer:
        config = types.GenerateContentConfig(media_resolution=self.media_resolution)
        if cache is not None:
            # The API refuses a system instruction beside a cache: the cache holds it.
            config.cached_content = cache.name
        else:
            config.system_instruction = request.system
        if request.json_schema is not None:
            config.response_mime_type = "application/json"
            config.response_json_schema = request.json_schema
        stream = await self.client.aio.models.generate_content_stream(
            model=self.model_name, contents=contents, config=config
        )
        async for chunk in stream:
            if state.absorb(chunk):
                state.shown = True
                await listener.text(state.text)
        if state.usage is not None:
            await listener.usage(request.kind, state.usage)
        return state.answer()


def _ready(prepared: UploadOutcome) -> dict[str, Upload]:
    """The uploads, once none was refused: a refused file fails the request before any paid
    call, naming every such file so the conversation can leave them out."""
    if prepared.failed:
        names = ", ".join(f"{shown_label(ref.label)} ({reason})" for ref, reason in prepared.failed)
        raise MediaNotProcessed(
            _("Gemini could not process %(items)s.") % {"items": names},
            {ref.key: reason for ref, reason in prepared.failed},
        )
    return dict(prepared.ready)


async def _report_cache(listener: Listener, made: CachedContext | None) -> None:
    """A new cache's tokens, counted once at the input price: Vertex AI documents making a
    cache billed so; the Gemini API's pages do not say (so this may be an upper bound).
    Storage per hour is not counted."""
    if made is not None:
        await listener.usage("cache", TokenUsage(prompt=made.tokens, total=made.tokens))
