"""Forgetting a chat: its albums, media, conversation, usage detail and model uploads."""

from __future__ import annotations

import logging

from bot.model import Model
from storage.pins import delete_unused
from storage.protocols import Storage
from storage.records import ChatFootprint, Forgotten

log = logging.getLogger(__name__)


class PrivacyService:
    """What the bot holds for a chat, and deleting all of it."""

    def __init__(self, storage: Storage, model: Model) -> None:
        self.storage = storage
        self.model = model

    async def footprint(self, chat_id: int) -> ChatFootprint:
        """Counts of the chat's albums, media, notes, exchanges and usage records."""
        return await self.storage.privacy.footprint(chat_id)

    async def forget(self, chat_id: int) -> Forgotten:
        """Delete everything of the chat; files other chats still use are kept for them."""
        # The albums' contexts held at the model hold the photos too.
        albums = [s.album.id for s in await self.storage.albums.summaries(chat_id)]
        await self.model.forget(albums=albums)
        forgotten = await self.storage.privacy.forget(chat_id)
        if forgotten.orphan_blobs:
            deleted = await self.model.forget(files=forgotten.orphan_blobs)
            await delete_unused(self.storage.media, self.storage.blobs, forgotten.orphan_blobs)
            log.info(
                "Forgot chat %s: %d files, %d uploads at the model service",
                chat_id,
                len(forgotten.orphan_blobs),
                deleted,
            )
        return forgotten
