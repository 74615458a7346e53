"""File API uploads: send each media file once, reuse it until shortly before it expires."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from bot.errors import ModelUnavailable
from bot.gemini.failures import is_transient, transport_errors
from bot.i18n import N_, _
from bot.model import MediaRef
from storage.protocols import UploadStore
from storage.records import Upload

log = logging.getLogger(__name__)

# Files live 48 h at the API. Re-upload well before that, so a reference never expires in the
# middle of a conversation turn.
MIN_REMAINING = timedelta(hours=2)

OnStatus = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class UploadOutcome:
    """The outcome of making media available: ready files by key, and those the API refused."""

    ready: dict[str, Upload]
    failed: list[tuple[MediaRef, str]]


class MediaUploader:
    """Uploads media to the File API and remembers the uploads in the upload store."""

    def __init__(
        self,
        client: genai.Client,
        registry: UploadStore,
        *,
        poll_interval: float,
        poll_timeout: float,
        concurrency: int,
        attempts: int,
        backoff: float,
    ) -> None:
        self.client = client
        self.registry = registry
        self.poll_interval = poll_interval
        self.poll_timeout = poll_timeout
        self.attempts = attempts
        self.backoff = backoff
        self._slots = asyncio.Semaphore(concurrency)
        # Two requests of one chat may want the same new file at once: upload it once.
        self._inflight: dict[str, asyncio.Task[Upload | str]] = {}

    async def prepare(
        self, refs: list[MediaRef], on_status: OnStatus | None = None
    ) -> UploadOutcome:
        """Make every file available to the model; files the API cannot process are reported."""
        ready: dict[str, Upload] = {}
        missing: list[MediaRef] = []
        recorded = await self.registry.get_many([ref.key for ref in refs])
        for ref in refs:
            known = recorded.get(ref.key)
            if known is not None and _fresh(known.expires_at):
                ready[ref.key] = known
            else:
                missing.append(ref)
        if not missing:
            return UploadOutcome(ready, [])

        progress = _Progress(missing, on_status)
        await progress.announce()
        failed: list[tuple[MediaRef, str]] = []

        async def one(ref: MediaRef) -> None:
            task = self._inflight.get(ref.key)
            if task is None:
                task = asyncio.ensure_future(self._upload(ref))
                self._inflight[ref.key] = task
                task.add_done_callback(functools.partial(self._landed, ref.key))
            result = await asyncio.shield(task)
            if isinstance(result, str):
                failed.append((ref, result))
            else:
                ready[ref.key] = result
            await progress.done(ref)

        await asyncio.gather(*(one(ref) for ref in missing))
        return UploadOutcome(ready, failed)

    def _landed(self, key: str, _task: object) -> None:
        self._inflight.pop(key, None)

    async def forget(self, refs: list[MediaRef]) -> None:
        """Drop recorded uploads that the API no longer has (checked one by one)."""

        async def check(ref: MediaRef) -> None:
            known = await self.registry.get(ref.key)
            if known is None:
                return
            try:
                remote = await self.client.aio.files.get(name=known.name)
            except genai_errors.APIError as e:
                if e.code in (403, 404):
                    await self.registry.drop(ref.key)
                return
            except transport_errors():
                return
            if remote.state is not None and remote.state != types.FileState.ACTIVE:
                await self.registry.drop(ref.key)

        await asyncio.gather(*(check(ref) for ref in refs))

    async def delete(self, keys: list[str]) -> int:
        """Delete uploads at the API and forget them; return how many were deleted."""
        deleted = 0
        for key in keys:
            known = await self.registry.get(key)
            if known is None:
                continue
            try:
                await self.client.aio.files.delete(name=known.name)
                deleted += 1
            except genai_errors.APIError as e:
                if e.code not in (403, 404):
                    log.warning("Could not delete upload %s: %s", known.name, e.code)
            except transport_errors():
                log.warning("Could not reach the File API to delete %s", known.name)
            await self.registry.drop(key)
        return deleted

    async def _upload(self, ref: MediaRef) -> Upload | str:
        """Upload one file and wait until it is ACTIVE. A string result is the API's refusal."""
        async with self._slots:
            file = await self._send(ref)
        name = file.name or ""
        state = file.state
        waited = 0.0
        interval = self.poll_interval
        while state == types.FileState.PROCESSING:
            if waited >= self.poll_timeout:
                log.info("%s still processing after %d s", ref.label, int(self.poll_timeout))
                return N_("it was still being processed when the wait ran out")
            await asyncio.sleep(interval)
            waited += interval
            interval = min(interval * 1.5, 10.0)
            file = await self._call(lambda: self.client.aio.files.get(name=name))
            state = file.state
        if state == types.FileState.FAILED:
            reason = (
                file.error.message if file.error and file.error.message else N_("processing failed")
            )
            return str(reason)
        expires = file.expiration_time or (datetime.now(UTC) + timedelta(hours=48))
        uploaded = Upload(
            sha256=ref.key,
            name=name,
            uri=file.uri or "",
            mime_type=file.mime_type or ref.mime_type,
            expires_at=expires.astimezone(UTC).isoformat(timespec="seconds"),
        )
        await self.registry.put(uploaded)
        return uploaded

    async def _send(self, ref: MediaRef) -> types.File:
        config = types.UploadFileConfig(mime_type=ref.mime_type, display_name=ref.label[:128])
        path = await asyncio.to_thread(ref.local_path)  # from a bucket: a download
        return await self._call(lambda: self.client.aio.files.upload(file=str(path), config=config))

    async def _call(self, make: Callable[[], Awaitable[types.File]]) -> types.File:
        """Run a File API call with retries on transient failures."""
        for attempt in range(self.attempts):
            try:
                result: types.File = await make()
                return result
            except genai_errors.APIError as e:
                if not is_transient(e) or attempt + 1 >= self.attempts:
                    raise ModelUnavailable(
                        _(
                            "Gemini's file service is not accepting uploads right now. "
                            "Please try again in a few minutes."
                        )
                    ) from e
            except transport_errors() as e:
                if attempt + 1 >= self.attempts:
                    raise ModelUnavailable(
                        _("I could not reach Gemini's file service. Please try again in a minute.")
                    ) from e
            await asyncio.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")


class _Progress:
    """Tells the user how far the uploads are, without a message per file."""

    def __init__(self, refs: list[MediaRef], on_status: OnStatus | None) -> None:
        self.on_status = on_status
        self.videos = [r for r in refs if r.is_video]
        self.photos = len(refs) - len(self.videos)  # voice notes are quick, like photos
        self.with_audio = any(r.is_audio for r in refs)
        self.done_photos = 0
        self.done_videos = 0

    def _text(self) -> str:
        parts = []
        if self.videos:
            current = min(self.done_videos + 1, len(self.videos))
            parts.append(
                _("Processing video %(current)d of %(total)d…")
                % {"current": current, "total": len(self.videos)}
            )
        if self.photos:
            preparing = (
                _("Preparing photos and voice notes for Gemini: %(done)d of %(total)d…")
                if self.with_audio
                else _("Preparing photos for Gemini: %(done)d of %(total)d…")
            )
            parts.append(preparing % {"done": self.done_photos, "total": self.photos})
        return " ".join(parts)

    async def announce(self) -> None:
        if self.on_status:
            await self.on_status(self._text())

    async def done(self, ref: MediaRef) -> None:
        if ref.is_video:
            self.done_videos += 1
        else:
            self.done_photos += 1
        # Every video is news; photos are reported in steps so a big album is not chatty.
        step = max(1, self.photos // 5)
        if self.on_status and (ref.is_video or self.done_photos % step == 0):
            if self.done_videos < len(self.videos) or self.done_photos < self.photos:
                await self.on_status(self._text())


def _fresh(expires_at: str) -> bool:
    try:
        expires = datetime.fromisoformat(expires_at)
    except ValueError:
        return False
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return expires - datetime.now(UTC) > MIN_REMAINING
