"""A folder of trip photos as one album: which files it holds, and adding the new ones.

A folder is one "chat" of the folder command's own storage; its id comes from the folder's
resolved path, so the same folder always finds its album, conversation and uploads again. Files
go through the bot's own intake (`AlbumService.prepare_media` and `store_media`): the same
checks, metadata, places and model copies as a photo sent in Telegram.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bot.errors import AlbumFull, UserError
from bot.i18n import _
from bot.service.albums import (
    PHOTO_EXTENSIONS,
    VIDEO_EXTENSIONS,
    AlbumService,
    IncomingMedia,
    ProcessedFile,
)
from bot.service.downloads import Fetch
from storage.records import Item, Origin

log = logging.getLogger(__name__)

MEDIA_EXTENSIONS = PHOTO_EXTENSIONS | VIDEO_EXTENSIONS
KEY_PREFIX = "folder:"  # a file's key ("folder:NAME:SIZE:MTIME_NS"), stored as file_unique_id
# Files read and checked at once: decoding is most of the work, one per core is enough.
READERS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Found:
    """What a folder holds: photos and videos by name (in path order), and the other files."""

    root: Path
    media: list[Path]
    ignored: list[Path]

    def name(self, path: Path) -> str:
        """A file as it is shown: its path inside the folder."""
        return path.relative_to(self.root).as_posix()


@dataclass(frozen=True)
class Skipped:
    """A file that could not join the album, and why (one sentence)."""

    file: str
    reason: str


@dataclass
class Synced:
    """What adding a folder's files did."""

    added: int = 0
    known: int = 0  # already in the album from an earlier run: not read again
    skipped: list[Skipped] = field(default_factory=list)


def folder_chat_id(root: Path) -> int:
    """The folder's own "chat": 48 bits of the sha256 of its resolved path (never 0)."""
    digest = hashlib.sha256(str(root.resolve()).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:6], "big") or 1


def scan(root: Path, recursive: bool) -> Found:
    """The folder's photos and videos by extension; hidden files and folders are passed over."""
    candidates = root.rglob("*") if recursive else root.iterdir()
    media: list[Path] = []
    ignored: list[Path] = []
    for path in candidates:
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        (media if path.suffix.lower() in MEDIA_EXTENSIONS else ignored).append(path)

    def key(path: Path) -> str:
        return path.relative_to(root).as_posix().lower()

    return Found(root, sorted(media, key=key), sorted(ignored, key=key))


async def add_files(
    albums: AlbumService, chat_id: int, found: Found, on_file: Callable[[], None]
) -> Synced:
    """Add the folder's files the album does not have yet, in path order.

    A file is known by its path, size and modification time, so an unchanged file is not even
    read; a changed or renamed one is read and checked, and the same bytes are still one item.
    Files that cannot be read are skipped with the reason; nothing else stops the others.
    """
    result = Synced()
    slots = asyncio.Semaphore(READERS)

    async def prepare(path: Path) -> ProcessedFile:
        async with slots:
            return await albums.prepare_media(_incoming(chat_id, found, path), _copier(path))

    tasks = [asyncio.ensure_future(prepare(path)) for path in found.media]
    try:
        for path, task in zip(found.media, tasks, strict=True):
            name = found.name(path)
            try:
                prepared = await task
                received = await albums.store_media(prepared)
            except AlbumFull:
                limit = albums.settings.max_album_items
                reason = _(
                    "The album holds at most %(limit)d photos and videos (MAX_ALBUM_ITEMS)."
                ) % {"limit": limit}
                result.skipped.append(Skipped(name, reason))
            except UserError as e:
                # A refusal from bot/media is an English constant, translated here.
                result.skipped.append(Skipped(name, _(str(e))))
            except OSError as e:
                result.skipped.append(
                    Skipped(
                        name, _("It could not be read (%(error)s).") % {"error": e.strerror or e}
                    )
                )
            except Exception as e:  # one odd file must not cost the traveller the others
                log.debug("Reading %s failed", name, exc_info=True)
                result.skipped.append(
                    Skipped(
                        name, _("It could not be read (%(error)s).") % {"error": type(e).__name__}
                    )
                )
            else:
                if prepared.known is not None or received.duplicate:
                    result.known += 1
                else:
                    result.added += 1
            finally:
                on_file()
    finally:
        for task in tasks:
            task.cancel()
    return result


def missing_files(found: Found, items: Sequence[Item]) -> list[str]:
    """Files the album took from the folder on an earlier run that are not among `found`."""
    present = {found.name(path) for path in found.media}
    missing = set()
    for item in items:
        key = item.media.origin.file_unique_id or ""
        if key.startswith(KEY_PREFIX):
            name = key.removeprefix(KEY_PREFIX).rsplit(":", 2)[0]
            if name not in present:
                missing.add(name)
    return sorted(missing, key=str.lower)


def _incoming(chat_id: int, found: Found, path: Path) -> IncomingMedia:
    stat = path.stat()
    name = found.name(path)
    kind = "video" if path.suffix.lower() in VIDEO_EXTENSIONS else "photo"
    origin = Origin(
        file_id=str(path),
        # What an unchanged file is recognised by on the next run, before it is read.
        file_unique_id=f"{KEY_PREFIX}{name}:{stat.st_size}:{stat.st_mtime_ns}",
        file_name=name,
        mime_type=mimetypes.guess_type(path.name)[0],
        # A file without a capture time is placed by its modification time (marked approximate).
        message_date=datetime.fromtimestamp(stat.st_mtime, UTC),
        telegram_type="document",
    )
    return IncomingMedia(chat_id, kind, origin, file_size=stat.st_size)


def _copier(path: Path) -> Fetch:
    """The "download" of a local file: a copy into the store's scratch folder (the store keeps
    its own copy, so editing the original later cannot change what the album holds)."""

    async def fetch(temp: Path) -> None:
        await asyncio.to_thread(shutil.copyfile, path, temp)

    return fetch
