"""The model's copies of photos: made once a photo is stored, on a thread of lower priority."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bot.errors import MediaRejected
from bot.i18n import N_
from bot.service.intake import PhotoLimits, model_picture
from storage.pins import delete_unused
from storage.protocols import BlobStore, Storage
from storage.records import Item

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2  # how often a question waiting for its album looks again
STUCK_SECONDS = 120.0  # a wait that sees no file get ready this long goes on without them


class ModelCopies:
    """Makes the small upright JPEG the model sees of a photo, and waits for an album's.

    Shrinking is most of the CPU a photo costs; it runs after the photo is acknowledged, in the
    photo's ingest job (any worker) or, for the folder command, beside the reading. Anything
    that asks the model first waits until its album's files are all ready (`ready`), judged
    from the database, so it does not matter which process makes them.
    """

    def __init__(self, storage: Storage, limits: PhotoLimits, workers: int) -> None:
        self.storage = storage
        self.limits = limits
        self.workers = max(1, workers)
        self._executor = ThreadPoolExecutor(
            self.workers, thread_name_prefix="model-copy", initializer=_yield_to_others
        )
        self._background: set[asyncio.Task[None]] = set()

    async def resume(self) -> None:
        """Make in the background the copies an earlier run left unmade (one process)."""
        for item in await self.storage.media.pending_copies():
            self.later(item)

    def later(self, item: Item) -> None:
        """Make this photo's copy in the background (the folder command reads on meanwhile)."""
        task = asyncio.create_task(self.make(item))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Stop making copies (what is left is made by the next run or the file's job)."""
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def ready(
        self, album_id: int, on_progress: Callable[[int], Awaitable[None]] | None = None
    ) -> None:
        """Wait until the model can see every file of the album (downloaded, checked, its copy
        made), telling `on_progress` how many are left as that changes. A wait that sees no
        file get ready for STUCK_SECONDS goes on with what is there."""
        left = await self.storage.arrivals.unready(album_id)
        loop = asyncio.get_running_loop()
        moved = loop.time()
        while left:
            if on_progress is not None:
                await on_progress(left)
            await asyncio.sleep(POLL_SECONDS)
            now_left = await self.storage.arrivals.unready(album_id)
            if now_left != left:
                moved = loop.time()
            elif loop.time() - moved > STUCK_SECONDS:
                log.warning("Album %s: %d file(s) still not ready; going on", album_id, left)
                return
            left = now_left

    async def make(self, item: Item, final: bool = True) -> None:
        """Make and record one photo's copy. A copy the picture does not give is marked, so
        the story says the photo was left out and why. A failure around it (the database busy
        a moment, the bucket away) raises unless this is the `final` try: the photo's job
        tries again, and its last try marks the copy too."""
        try:
            await self._make(item)
        except Exception:
            if not final:
                raise
            log.exception("Could not make the model copy of item %s", item.id)
            await self.storage.media.mark_model_failed(
                item.id, N_("its copy for the model could not be made")
            )

    async def _make(self, item: Item) -> None:
        blobs, media = self.storage.blobs, self.storage.media
        # Blocking: from a bucket, a download when the cached copy is gone.
        source = await asyncio.to_thread(blobs.path_for, item.media.source.sha256)
        if not await asyncio.to_thread(source.is_file):
            return  # taken back meanwhile
        loop = asyncio.get_running_loop()
        try:
            sha, size = await loop.run_in_executor(
                self._executor, _make_and_store, source, blobs, self.limits
            )
        except NotStored:
            raise  # no fault of the picture's: the photo's job tries again
        except MediaRejected as e:
            # It passed the checks but will not shrink (very rare: a HEIF libheif rejects):
            # the model leaves it out and the story says so.
            log.warning("The model copy of item %s could not be read: %s", item.id, e.reason)
            await media.mark_model_failed(item.id, N_("the picture could not be read"))
            return
        except Exception:  # the picture's own failure: trying again would give the same
            log.exception("Could not make the model copy of item %s", item.id)
            await media.mark_model_failed(item.id, N_("its copy for the model could not be made"))
            return
        try:
            recorded = await media.set_model_copy(item.id, sha, size, "image/jpeg")
        finally:
            blobs.release(sha)
        if not recorded:
            await delete_unused(media, blobs, [sha])


class NotStored(Exception):
    """A photo's copy was made but could not be stored (the disk, the bucket)."""


def _make_and_store(source: Path, blobs: BlobStore, limits: PhotoLimits) -> tuple[str, int]:
    """Make the copy and store it as a blob: (sha256, size). One call on the copies' thread:
    a second would queue behind every other photo's copy under a burst."""
    picture = model_picture(source, limits)
    try:
        return blobs.put_bytes(picture)
    except Exception as e:
        raise NotStored(f"the copy could not be stored: {e!r}") from e


def _yield_to_others() -> None:
    """Run this worker thread at a lower CPU priority (Linux schedules threads one by one).

    Copies can wait; the event loop answering people and acknowledging photos cannot. In a
    burst of albums the copies then use what CPU is left instead of slowing every reply.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
