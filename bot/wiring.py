"""Builds the product's services from settings: storage, the model, albums, conversation."""

from __future__ import annotations

import os
from dataclasses import dataclass

from bot.config import Settings
from bot.gemini.gemini_model import GeminiModel
from bot.media.images import register_heif
from bot.model import Model
from bot.service.albums import AlbumService
from bot.service.conversation import ConversationService
from bot.service.copies import ModelCopies
from bot.service.intake import PhotoLimits
from bot.service.media_files import MediaFiles
from bot.service.privacy import PrivacyService
from bot.service.usage import UsageService
from storage import Storage, open_storage
from storage.maintenance import sweep_orphan_blobs


@dataclass
class Services:
    """Everything a handler may call; built once at start-up, closed at shutdown."""

    settings: Settings
    storage: Storage
    copies: ModelCopies
    model: Model
    albums: AlbumService
    talk: ConversationService
    usage: UsageService
    privacy: PrivacyService
    media_files: MediaFiles

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        """Open storage (running migrations), sweep stray files, start the model client."""
        register_heif()
        storage = await open_storage(settings.data_dir, settings.db_path, settings.database_url)
        model = GeminiModel(settings, storage.uploads)
        await sweep_orphan_blobs(storage)
        limits = PhotoLimits(
            settings.photo_max_side, settings.photo_max_bytes, settings.max_image_pixels
        )
        # One core is left for the event loop: copies wait, replies should not.
        copies = ModelCopies(storage, limits, workers=(os.cpu_count() or 2) - 1)
        await copies.start()
        return cls(
            settings=settings,
            storage=storage,
            copies=copies,
            model=model,
            albums=AlbumService(settings, storage, model, copies),
            talk=ConversationService(settings, storage, model, copies),
            usage=UsageService(settings, storage),
            privacy=PrivacyService(storage, model),
            media_files=MediaFiles(storage),
        )

    async def close(self) -> None:
        """Stop the background copies, close the model client and storage."""
        await self.copies.close()
        await self.model.aclose()
        await self.storage.close()
