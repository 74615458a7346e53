"""Builds the product's services from settings: storage, the model, albums, conversation."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from bot.config import Settings
from bot.errors import ConfigError
from bot.i18n import _
from bot.lazy_model import LazyModel
from bot.media.images import register_heif
from bot.model import Model
from bot.service.albums import AlbumService
from bot.service.conversation import ConversationService
from bot.service.copies import ModelCopies
from bot.service.intake import PhotoLimits
from bot.service.languages import LanguageService
from bot.service.media_files import MediaFiles
from bot.service.privacy import PrivacyService
from bot.service.usage import UsageService
from storage import Storage, open_storage
from storage.blobs import BlobStoreUnavailable, S3Location, open_blobs
from storage.maintenance import sweep_orphan_blobs


@dataclass
class Services:
    """Everything a handler may call; built once at start-up, closed at shutdown."""

    settings: Settings
    storage: Storage
    copies: ModelCopies
    model: Model
    albums: AlbumService
    conversation: ConversationService
    usage: UsageService
    privacy: PrivacyService
    media_files: MediaFiles
    languages: LanguageService

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        """Open storage (running migrations), sweep stray files, start the model client."""
        register_heif()
        try:
            blobs = await open_blobs(
                settings.data_dir,
                media_location(settings),
                settings.media_cache_bytes,
                settings.database_url,
            )
        except BlobStoreUnavailable as e:
            raise ConfigError(str(e)) from None
        storage = await _opened_whole(
            open_storage(
                settings.data_dir,
                settings.db_path,
                blobs,
                settings.database_url,
                new_album_name=lambda: _("My trip"),  # in the language of the chat it is for
                job_stall=settings.job_stall,
            )
        )
        model: LazyModel | None = None
        copies: ModelCopies | None = None
        try:
            model = gemini_model(settings, storage)
            await sweep_orphan_blobs(storage)
            limits = PhotoLimits(
                settings.photo_max_side, settings.photo_max_bytes, settings.max_image_pixels
            )
            # One core is left for the event loop: copies wait, replies should not.
            copies = ModelCopies(storage, limits, workers=(os.cpu_count() or 2) - 1)
            if settings.database_url is None:
                await copies.resume()  # left unmade by the last run (replicas: by the jobs)
        except BaseException:
            # Stopped (SIGTERM during start-up) or failed half-way: close what was opened.
            if copies is not None:
                await copies.close()
            if model is not None:
                await model.aclose()
            await storage.close()
            raise
        return cls(
            settings=settings,
            storage=storage,
            copies=copies,
            model=model,
            albums=AlbumService(settings, storage, model, copies),
            conversation=ConversationService(settings, storage, model, copies),
            usage=UsageService(settings, storage),
            privacy=PrivacyService(storage, model),
            media_files=MediaFiles(storage),
            languages=LanguageService(storage),
        )

    async def close(self) -> None:
        """Stop the background copies, close the model client and storage."""
        await self.copies.close()
        await self.model.aclose()
        await self.storage.close()


def gemini_model(settings: Settings, storage: Storage) -> LazyModel:
    """Gemini as the model, its SDK imported when the model is first used (bot/lazy_model.py)."""

    def build(module: ModuleType) -> Model:
        model: Model = module.GeminiModel(settings, storage.uploads, storage.caches)
        return model

    return LazyModel("bot.gemini.gemini_model", build)


async def _opened_whole(opening: Coroutine[Any, Any, Storage]) -> Storage:
    """Open storage even if cancelled meanwhile: then close it again and pass the cancel on.

    A cancel in the middle of opening would leave a database connection (and its thread) open
    with nobody to close it, and the process could not exit.
    """
    task = asyncio.ensure_future(opening)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        storage = await task
        await storage.close()
        raise


def media_location(settings: Settings) -> S3Location | None:
    """The bucket media go to (MEDIA_URL), or None for files under DATA_DIR/media."""
    if settings.media_bucket is None:
        return None
    return S3Location(
        bucket=settings.media_bucket,
        prefix=settings.media_prefix,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
    )
