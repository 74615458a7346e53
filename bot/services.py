"""Builds the product's services from settings: storage, the model, albums, conversation."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass

from bot.config import Settings
from bot.gemini.model import GeminiModel
from bot.media.images import register_heif
from bot.service.albums import AlbumService
from bot.service.conversation import ConversationService
from bot.service.copies import ModelCopies
from bot.service.intake import PhotoLimits
from bot.service.privacy import PrivacyService
from bot.service.usage import UsageService
from storage.albums import AlbumStore
from storage.blobs import BlobStore
from storage.conversation import ConversationStore
from storage.db import Database
from storage.media import MediaStore
from storage.privacy import PrivacyStore
from storage.uploads import UploadStore
from storage.usage import UsageStore

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a handler may call; built once at start-up, closed at shutdown."""

    settings: Settings
    db: Database
    inbox_db: Database  # the update inbox writes often: its own connection, no waiting
    blobs: BlobStore
    copies: ModelCopies
    model: GeminiModel
    albums: AlbumService
    talk: ConversationService
    usage: UsageService
    privacy: PrivacyService

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        """Open the database (running migrations), the blob store and the model client."""
        register_heif()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.db_path)
        await db.open()
        inbox_db = Database(settings.db_path)
        await inbox_db.open()
        blobs = BlobStore(settings.data_dir)
        blobs.prepare()
        model = GeminiModel(settings, UploadStore(db))
        albums_store, media, conversation = AlbumStore(db), MediaStore(db), ConversationStore(db)
        await _sweep_orphans(blobs, media)
        usage_store = UsageStore(db)
        limits = PhotoLimits(
            settings.photo_max_side, settings.photo_max_bytes, settings.max_image_pixels
        )
        # One core is left for the event loop: copies wait, replies should not.
        copies = ModelCopies(media, blobs, limits, workers=(os.cpu_count() or 2) - 1)
        await copies.start()
        return cls(
            settings=settings,
            db=db,
            inbox_db=inbox_db,
            blobs=blobs,
            copies=copies,
            model=model,
            albums=AlbumService(settings, albums_store, media, conversation, blobs, model, copies),
            talk=ConversationService(
                settings, albums_store, media, conversation, usage_store, blobs, model, copies
            ),
            usage=UsageService(settings, usage_store),
            privacy=PrivacyService(PrivacyStore(db), blobs, model),
        )

    async def close(self) -> None:
        """Stop the background copies, close the model client and the databases."""
        await self.copies.close()
        await self.model.aclose()
        await self.inbox_db.close()
        await self.db.close()


ORPHAN_AGE = 3600.0  # a younger file may belong to a process still finishing (a deploy)


async def _sweep_orphans(blobs: BlobStore, media: MediaStore) -> None:
    """Delete stored files no item refers to: left by a process killed between storing a file
    and committing its row. Nothing else of this process is running yet."""
    stored = await asyncio.to_thread(blobs.stored)
    used = await media.used_blobs()
    if stored and not used:
        # Files but an empty album table: a new or restored database next to old media.
        # Deleting them all could not be undone; leave that to the owner.
        log.warning("%d stored files but no album refers to any: none deleted", len(stored))
        return
    old = time.time() - ORPHAN_AGE
    orphans = [sha for sha in stored - used if (await asyncio.to_thread(blobs.modified, sha)) < old]
    for sha in orphans:
        await asyncio.to_thread(blobs.delete, sha)
    if orphans:
        log.info("Deleted %d stored file(s) that no album refers to", len(orphans))
