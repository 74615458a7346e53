"""The folder command's two jobs, on the bot's own services: a folder's story, and a question.

Both first bring the folder's album up to date, in the stages the progress bars show: reading
the new files (the bot's checks, metadata and places), preparing the model's copies, uploading
what the File API does not hold yet. Then the story is asked for, checked and exported exactly
as /story and /export do, or the question joins the album's conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bot.cli.folder import Found, Skipped, add_files, folder_chat_id, missing_files, scan
from bot.cli.progress import Bars, Steps
from bot.config import Settings
from bot.errors import NothingToDo
from bot.i18n import _
from bot.model import MediaRef
from bot.service import context
from bot.service.conversation import Asker
from bot.wiring import Services
from storage.records import AlbumSummary

# Usage and budgets are per user; the folder command has one, whoever runs it.
LOCAL_USER = 0


class NoMedia(NothingToDo):
    """The folder holds no photo or video that could be read; `skipped` says why not."""

    def __init__(self, message: str, skipped: list[Skipped]) -> None:
        super().__init__(message)
        self.skipped = skipped


@dataclass
class FolderAlbum:
    """The folder's album after bringing it up to date."""

    folder: Path
    chat_id: int
    album: AlbumSummary
    added: int
    known: int
    uploaded: int
    skipped: list[Skipped]
    ignored: list[str]
    missing: list[str]  # in the album from an earlier run, not in the folder now


@dataclass
class StoryResult:
    """A story written and saved."""

    folder_album: FolderAlbum
    title: str
    files: dict[str, Path]  # "page" / "markdown" -> where it was written
    notices: list[str] = field(default_factory=list)


@dataclass
class AskResult:
    """A question answered."""

    folder_album: FolderAlbum
    answer: str
    notices: list[str] = field(default_factory=list)


async def write_story(
    settings: Settings,
    folder: Path,
    bars: Bars,
    *,
    recursive: bool,
    wish: str | None,
    out: Path,
    language: str | None,
    fresh: bool = False,
) -> StoryResult:
    """Bring the album up to date, write its story, save the web page and the Markdown zip.

    `fresh` starts the folder's album over (the earlier one stays in the store): files gone
    from the folder leave the story, and the story forgets the earlier conversation."""
    async with _services(settings) as services:
        folder_album = await _folder_album(services, folder, recursive, bars, fresh)
        asker = Asker(folder_album.chat_id, LOCAL_USER, language_code=language)
        writing = bars.stage(_("Writing the story"), None)
        reply = await services.conversation.story(
            asker, wish, Steps(writing, _("Writing the story"))
        )
        writing.finish()
        _give_back_memory()  # reading and copies left a fragmented heap; the export is big
        export = await services.conversation.export(folder_album.chat_id, language)
        saving = bars.stage(_("Saving the page and the zip"), len(export.files))
        await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
        files: dict[str, Path] = {}
        for file in export.files:
            # Written as it is made: a file of tens of MB is never whole in memory.
            files[file.kind] = await asyncio.to_thread(_write, out / file.name, file.write_into)
            _give_back_memory()
            saving.advance()
        title = reply.story.title if reply.story is not None else folder_album.album.album.name
        return StoryResult(folder_album, title, files, reply.notices)


async def ask(
    settings: Settings,
    folder: Path,
    bars: Bars,
    *,
    recursive: bool,
    question: str,
    language: str | None,
) -> AskResult:
    """Bring the album up to date and ask a question in its conversation."""
    async with _services(settings) as services:
        folder_album = await _folder_album(services, folder, recursive, bars)
        asker = Asker(folder_album.chat_id, LOCAL_USER, language_code=language)
        thinking = bars.stage(_("Thinking"), None)
        reply = await services.conversation.ask(asker, question, Steps(thinking, _("Thinking")))
        thinking.finish()
        return AskResult(folder_album, reply.text, reply.notices)


@asynccontextmanager
async def _services(settings: Settings) -> AsyncIterator[Services]:
    # The bot's split: copies are made on all cores but one while the files are still being
    # read on the other (bench scenario 7 on two cores, once each: a copy worker per core
    # peaked at 252 MB with 100 photos of 12 MP instead of 235, and saved 3 s of 44).
    services = await Services.open(settings)
    try:
        yield services
    finally:
        await services.close()


async def _folder_album(
    services: Services, folder: Path, recursive: bool, bars: Bars, fresh: bool = False
) -> FolderAlbum:
    found: Found = await asyncio.to_thread(scan, folder, recursive)
    if not found.media:
        none = (
            _("There are no photos or videos in %(folder)s.")
            if recursive
            else _(
                "There are no photos or videos in %(folder)s "
                "(--recursive also reads its subfolders)."
            )
        )
        raise NoMedia(none % {"folder": folder}, [])
    chat_id = folder_chat_id(folder)
    name = folder.name or "Trip"
    if fresh:
        await services.albums.new_album(chat_id, name)
    album = await services.albums.rename(chat_id, name)

    reading = bars.stage(_("Reading photos and videos"), len(found.media))
    synced = await add_files(services.albums, chat_id, found, reading.advance)
    summary = await services.albums.current(chat_id)
    if not summary.items:
        raise NoMedia(
            _("None of the %(count)d photos and videos in %(folder)s could be read.")
            % {"count": len(found.media), "folder": folder},
            synced.skipped,
        )

    waiting = await services.storage.arrivals.unready(album.id)
    if waiting:
        preparing = bars.stage(_("Preparing them for Gemini"), waiting)

        async def advance(left: int) -> None:
            preparing.set(waiting - left)

        await services.copies.ready(album.id, advance)
        preparing.finish()

    uploaded = await _upload(services, album.id, bars)
    missing = missing_files(found, await services.storage.media.items(album.id))
    return FolderAlbum(
        folder=folder,
        chat_id=chat_id,
        album=summary,
        added=synced.added,
        known=synced.known,
        uploaded=uploaded,
        skipped=synced.skipped,
        ignored=[found.name(p) for p in found.ignored],
        missing=missing,
    )


async def _upload(services: Services, album_id: int, bars: Bars) -> int:
    """Upload what the File API does not hold yet (the service's upload store remembers the
    rest); return how many files were uploaded."""
    items = await services.storage.media.items(album_id)
    usable = [i for i in items if not i.model_failed and i.media.model_ready]
    refs = [context.media_ref(i, services.storage.blobs) for i in usable]
    keys = [ref.key for ref in refs]
    before = await services.storage.uploads.get_many(keys)
    uploading = bars.stage(_("Uploading to Gemini"), len(refs))

    async def one(ref: MediaRef) -> None:
        # Files the API cannot process are left to the story request, which says so.
        await services.model.upload([ref])
        uploading.advance()

    await asyncio.gather(*(one(ref) for ref in refs))
    after = await services.storage.uploads.get_many(keys)
    return sum(
        1 for key in set(keys) if key in after and (key not in before or before[key] != after[key])
    )


def _give_back_memory() -> None:
    """Return the heap's free pages to the system (glibc keeps them otherwise)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _write(path: Path, write_into: Callable[[IO[bytes]], None]) -> Path:
    """Write a file whole or not at all (a half-written page is worse than the old one)."""
    temp = path.with_name(f".{path.name}.part")
    try:
        with temp.open("wb") as target:
            write_into(target)
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path.resolve()
