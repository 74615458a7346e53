"""The stored bytes of an album's media, for posting them again (the illustrated story)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.media.images import web_image
from storage.protocols import Storage
from storage.records import Item


class MediaFiles:
    """Reads an item's stored original in the form a chat can show."""

    def __init__(self, storage: Storage) -> None:
        self.blobs = storage.blobs

    async def web_photo(self, item: Item) -> bytes:
        """An upright web JPEG of a photo (HEIC, TIFF and large files are not postable as is)."""
        path = await asyncio.to_thread(self.blobs.path_for, item.media.source.sha256)
        return await asyncio.to_thread(web_image, path)

    async def video(self, item: Item, limit: int) -> bytes | None:
        """A stored video's bytes, or None if it is gone or larger than `limit`."""
        path = await asyncio.to_thread(self.blobs.path_for, item.media.source.sha256)
        return await asyncio.to_thread(_bytes_within, path, limit)


def _bytes_within(path: Path, limit: int) -> bytes | None:
    if not path.is_file() or path.stat().st_size > limit:
        return None
    return path.read_bytes()
