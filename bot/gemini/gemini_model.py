"""The one door to Gemini: build the request from our own history, send it, stream the answer."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import ValidationError

from bot.config import Settings
from bot.errors import (
    ContextCacheGone,
    MediaNotProcessed,
    ModelBlocked,
    ModelEmptyAnswer,
    ModelError,
    ModelUnavailable,
)
from bot.gemini.failures import (
    is_file_not_ready,
    is_stale_cache,
    is_stale_file,
    is_timeout,
    is_transient,
    retry_delay,
    transport_errors,
)
from bot.gemini.uploads import MediaUploader
from bot.model import (
    AUDIO_TYPES,
    IMAGE_TYPES,
    VIDEO_TYPES,
    ContextCache,
    MediaRef,
    ModelAnswer,
    ModelRequest,
    OnStatus,
    OnText,
    OnUsage,
    Part,
    PreparedMedia,
    TokenUsage,
)
from storage.protocols import UploadStore
from storage.records import Upload

log = logging.getLogger(__name__)

BLOCK_REASONS = frozenset(
    {"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "OTHER"}
)
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
    """Gemini as the product's `Model` (bot/model.py): `accepts`, `prepare` (File API uploads),
    `generate` (streamed, retried), `delete_uploads`, and context caching (cachedContents)."""

    capabilities = IMAGE_TYPES | VIDEO_TYPES | AUDIO_TYPES

    def __init__(self, settings: Settings, registry: UploadStore) -> None:
        self.model_name = settings.gemini_model
        self.attempts = settings.gemini_attempts
        self.backoff = settings.gemini_backoff
        self.max_retry_wait = settings.gemini_max_retry_wait
        self.video_fps = settings.video_fps
        self.media_resolution = _RESOLUTIONS[settings.media_resolution]
        # A cache has no generation config: its media carry the resolution themselves.
        self.part_resolution = _PART_RESOLUTIONS[settings.media_resolution]
        self.cache_min_tokens = settings.gemini_cache_min_tokens
        self.cache_ttl = settings.gemini_cache_ttl
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
        self.uploads = MediaUploader(
            self.client,
            registry,
            poll_interval=settings.file_poll_interval,
            poll_timeout=settings.file_poll_timeout,
            concurrency=settings.upload_concurrency,
            attempts=settings.gemini_attempts,
            backoff=settings.gemini_backoff,
        )

    def accepts(self, mime_type: str) -> bool:
        """Whether the model can read a file of this type."""
        return mime_type in self.capabilities

    async def prepare(
        self, refs: list[MediaRef], on_status: OnStatus | None = None
    ) -> PreparedMedia:
        """Upload what the API does not hold yet; report files it cannot process."""
        return await self.uploads.prepare(refs, on_status)

    async def delete_uploads(self, keys: list[str]) -> int:
        """Delete these files' uploads at the API."""
        return await self.uploads.delete(keys)

    async def cache_context(self, request: ModelRequest) -> ContextCache | None:
        """Cache the system instruction and the album turn (cachedContents); None if refused."""
        if self.cache_ttl <= 0 or not request.context_parts:
            return None
        refs = [p for p in request.context() if isinstance(p, MediaRef)]
        try:
            prepared = await self.uploads.prepare(refs)
        except ModelError as e:  # the File API is down: the request goes whole, as it can
            log.info("Could not prepare the album's files for a cache: %s", e)
            return None
        if prepared.failed:
            return None
        content = types.Content(
            role="user", parts=self._parts(request.context(), prepared.ready, cached=True)
        )
        config = types.CreateCachedContentConfig(
            contents=[content],
            system_instruction=request.system,
            ttl=_ttl(self.cache_ttl),
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
        return ContextCache(
            name=made.name or "",
            key=request.context_key(),
            expires_at=self._expiry(made.expire_time),
            tokens=tokens or 0,
        )

    async def refresh_cache(self, cache: ContextCache) -> ContextCache | None:
        """Give the cache another `cache_ttl` (PATCH ttl); None if the API no longer holds it."""
        config = types.UpdateCachedContentConfig(ttl=_ttl(self.cache_ttl))
        try:
            updated = await self.client.aio.caches.update(name=cache.name, config=config)
        except genai_errors.APIError as e:
            if e.code in (403, 404):
                return None
            log.info("Could not refresh cache %s (%s); using it as it is", cache.name, e.code)
            return cache
        except transport_errors():
            return cache
        return ContextCache(cache.name, cache.key, self._expiry(updated.expire_time), cache.tokens)

    async def delete_cache(self, name: str) -> bool:
        """Delete a cache at the API; False if it was gone already (or unreachable, logged)."""
        try:
            await self.client.aio.caches.delete(name=name)
        except genai_errors.APIError as e:
            if e.code not in (403, 404):
                log.warning("Could not delete cache %s: %s", name, e.code)
            return False
        except transport_errors():
            log.warning("Could not reach Gemini to delete cache %s", name)
            return False
        return True

    def _expiry(self, expire_time: datetime | None) -> str:
        moment = expire_time or datetime.now(UTC) + timedelta(seconds=self.cache_ttl)
        return moment.astimezone(UTC).isoformat(timespec="seconds")

    async def aclose(self) -> None:
        """Close the client's HTTP sessions."""
        await self.client.aio.aclose()

    async def generate(
        self,
        request: ModelRequest,
        on_text: OnText | None = None,
        on_usage: OnUsage | None = None,
    ) -> ModelAnswer:
        """Send the request (streaming to `on_text` when given) and return the complete answer."""
        refs = request.media()
        for ref in refs:
            if not self.accepts(ref.mime_type):
                raise ModelError(f"Gemini cannot read {ref.label} ({ref.mime_type}).")
        attempt = 0
        refreshed = False
        while True:
            prepared = await self.uploads.prepare(refs)
            if prepared.failed:
                ref, reason = prepared.failed[0]
                raise MediaNotProcessed(
                    f"Gemini could not process {ref.label}: {reason}.", ref.label
                )
            contents = self._contents(request, prepared.ready)
            progress = _StreamState()
            try:
                return await self._once(request, contents, on_text, on_usage, progress)
            except genai_errors.APIError as e:
                if request.cache is not None and is_stale_cache(e):
                    raise ContextCacheGone(
                        "Gemini no longer holds this conversation's cache. Please ask again."
                    ) from e
                if (is_stale_file(e) or is_file_not_ready(e)) and refs and not refreshed:
                    # An upload expired (48 h) or was deleted: check them, re-upload, ask again.
                    log.info("A file reference was refused (%s); refreshing uploads", e.code)
                    refreshed = True
                    await self.uploads.forget(refs)
                    continue
                if is_transient(e) and not progress.shown and attempt + 1 < self.attempts:
                    delay = retry_delay(e) or self.backoff * 2**attempt
                    if delay <= self.max_retry_wait:
                        attempt += 1
                        log.info("Gemini answered %s; retrying in %.1f s", e.code, delay)
                        await asyncio.sleep(delay)
                        continue
                raise _user_error(e, progress.shown) from e
            except transport_errors() as e:
                if is_timeout(e):
                    raise ModelUnavailable(
                        "Gemini took too long to answer. Please try again; a shorter request "
                        "may help."
                    ) from e
                if not progress.shown and attempt + 1 < self.attempts:
                    attempt += 1
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
                    continue
                if progress.shown:
                    raise ModelUnavailable(
                        "The connection to Gemini broke while it was answering. Please ask again."
                    ) from e
                raise ModelUnavailable(
                    "I could not reach Gemini. Please try again in a minute."
                ) from e

    async def _once(
        self,
        request: ModelRequest,
        contents: list[types.Content],
        on_text: OnText | None,
        on_usage: OnUsage | None,
        state: _StreamState,
    ) -> ModelAnswer:
        config = types.GenerateContentConfig(media_resolution=self.media_resolution)
        if request.cache is not None:
            # The API refuses a system instruction beside a cache: the cache holds it.
            config.cached_content = request.cache.name
        else:
            config.system_instruction = request.system
        if request.json_schema is not None:
            config.response_mime_type = "application/json"
            config.response_json_schema = request.json_schema
        if on_text is None:
            response = await self.client.aio.models.generate_content(
                model=self.model_name, contents=contents, config=config
            )
            state.absorb(response)
        else:
            stream = await self.client.aio.models.generate_content_stream(
                model=self.model_name, contents=contents, config=config
            )
            async for chunk in stream:
                if state.absorb(chunk):
                    state.shown = True
                    await on_text(state.text)
        if on_usage is not None and state.usage is not None:
            await on_usage(state.usage)
        return state.answer()

    def _contents(self, request: ModelRequest, ready: dict[str, Upload]) -> list[types.Content]:
        contents = []
        for turn in request.sent_turns():
            if turn.raw:
                try:
                    contents.append(types.Content.model_validate_json(turn.raw))
                    continue
                except ValidationError:
                    log.warning("A stored model turn no longer validates; sending its text")
            contents.append(types.Content(role=turn.role, parts=self._parts(turn.parts, ready)))
        return contents

    def _parts(
        self, parts: tuple[Part, ...], ready: dict[str, Upload], cached: bool = False
    ) -> list[types.Part]:
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(types.Part(text=part))
                continue
            uploaded = ready[part.key]
            media = types.Part(
                file_data=types.FileData(file_uri=uploaded.uri, mime_type=uploaded.mime_type)
            )
            if part.is_video:
                media.video_metadata = types.VideoMetadata(fps=self.video_fps)
            if cached:
                media.media_resolution = types.PartMediaResolution(level=self.part_resolution)
            out.append(media)
        return out


@dataclass
class _StreamState:
    """What has arrived so far of one answer (streamed or not)."""

    text: str = ""
    parts: list[types.Part] = field(default_factory=list)
    finish_reason: str | None = None
    block_reason: str | None = None
    usage: TokenUsage | None = None
    shown: bool = False

    def absorb(self, response: types.GenerateContentResponse) -> bool:
        """Take one response or chunk in; return whether visible text grew."""
        grew = False
        if response.prompt_feedback and response.prompt_feedback.block_reason:
            self.block_reason = _name(response.prompt_feedback.block_reason)
        if response.usage_metadata is not None:
            self.usage = _usage(response.usage_metadata)
        for candidate in response.candidates or []:
            if candidate.finish_reason:
                self.finish_reason = _name(candidate.finish_reason)
            for part in (candidate.content.parts if candidate.content else None) or []:
                self.parts.append(part)
                if part.text and not part.thought:
                    self.text += part.text
                    grew = True
            break  # one candidate is asked for
        return grew

    def answer(self) -> ModelAnswer:
        """The finished answer, or the reason there is none."""
        if self.block_reason:
            raise ModelBlocked(_blocked_message(self.block_reason), self.block_reason)
        if self.finish_reason in BLOCK_REASONS:
            raise ModelBlocked(_blocked_message(self.finish_reason), self.finish_reason)
        if not self.text.strip():
            raise ModelEmptyAnswer("Gemini returned an empty answer. Please try again.")
        content = types.Content(role="model", parts=_merge_parts(self.parts))
        raw = json.dumps(content.model_dump(mode="json", exclude_none=True), ensure_ascii=False)
        return ModelAnswer(
            text=self.text,
            raw=raw,
            usage=self.usage or TokenUsage(),
            finish_reason=self.finish_reason or "STOP",
        )


def _merge_parts(parts: list[types.Part]) -> list[types.Part]:
    """Join a stream's text pieces into whole parts, keeping thought signatures."""
    merged: list[types.Part] = []
    for part in parts:
        last = merged[-1] if merged else None
        if (
            last is not None
            and part.text is not None
            and last.text is not None
            and bool(part.thought) == bool(last.thought)
            and not (part.thought_signature and last.thought_signature)
        ):
            merged[-1] = last.model_copy(
                update={
                    "text": last.text + part.text,
                    "thought_signature": last.thought_signature or part.thought_signature,
                }
            )
        else:
            merged.append(part)
    return merged


def _ttl(seconds: float) -> str:
    return f"{max(1, int(seconds))}s"


def _usage(meta: types.GenerateContentResponseUsageMetadata) -> TokenUsage:
    by_modality: dict[str, int] = {}
    for detail in meta.prompt_tokens_details or []:
        if detail.modality is not None:
            key = _name(detail.modality)
            by_modality[key] = by_modality.get(key, 0) + (detail.token_count or 0)
    return TokenUsage(
        prompt=meta.prompt_token_count or 0,
        output=meta.candidates_token_count or 0,
        thinking=meta.thoughts_token_count or 0,
        cached=meta.cached_content_token_count or 0,
        total=meta.total_token_count or 0,
        by_modality=by_modality,
    )


def _name(value: object) -> str:
    return str(getattr(value, "value", value))


def _blocked_message(reason: str) -> str:
    if reason == "RECITATION":
        return (
            "Gemini stopped because its answer came too close to text published elsewhere. "
            "Please ask again, perhaps in other words."
        )
    if reason in ("SAFETY", "PROHIBITED_CONTENT", "IMAGE_SAFETY", "BLOCKLIST", "SPII"):
        return "Gemini declined to answer this for safety reasons. Please rephrase the request."
    return "Gemini declined to answer this. Please rephrase the request."


def _user_error(e: genai_errors.APIError, shown: bool) -> ModelError:
    if e.code == 429:
        delay = retry_delay(e)
        wait = f" in about {int(delay) + 1} seconds" if delay else " in a minute"
        return ModelUnavailable(f"Gemini is busy right now. Please try again{wait}.", delay)
    if e.code is not None and e.code >= 500:
        if shown:
            return ModelUnavailable("Gemini failed while answering. Please ask again.")
        return ModelUnavailable("Gemini is having trouble right now. Please try again in a minute.")
    if e.code in (401, 403) or (e.code == 400 and "API_KEY" in str(e.details)):
        log.error("Gemini refused the API key or access: %s %s", e.code, e.status)
        return ModelError("The bot's Gemini access is not working. Please tell the bot's owner.")
    log.error("Gemini refused the request: %s %s %s", e.code, e.status, e.message)
    return ModelError("Gemini could not handle this request. Please try rephrasing it.")
