"""The model's copies of photos, made in the background after the photo is acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from bot.errors import MediaRejected
from bot.i18n import N_
from bot.service.intake import PhotoLimits, make_model_copy
from storage.pins import delete_unused
from storage.protocols import Storage
from storage.records import Item

log = logging.getLogger(__name__)


class ModelCopies:
    """A queue of photos whose small upright JPEG for the model is still to be made.

    Shrinking is most of the CPU a photo costs; doing it after the acknowledgement keeps a
    burst of albums answered quickly. Anything that asks the model first waits for its
    album's copies (`ready`). Items left pending by a restart are queued again at start.
    """

    def __init__(self, storage: Storage, limits: PhotoLimits, workers: int) -> None:
        self.media = storage.media
        self.blobs = storage.blobs
        self.limits = limits
        self.workers = max(1, workers)
        # Soonest first: (0 for an album someone is waiting for, else 1; order of arrival).
        self._queue: asyncio.PriorityQueue[tuple[int, int, Item]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._pending: defaultdict[int, dict[int, Item]] = defaultdict(dict)  # album -> items
        self._hurried: set[int] = set()  # albums whose copies were moved to the front
        self._making: set[int] = set()  # item ids a worker is on
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._executor = ThreadPoolExecutor(
            self.workers, thread_name_prefix="model-copy", initializer=_yield_to_others
        )

    async def start(self, resume: bool = True) -> None:
        """Queue what an earlier run left unmade (`resume`; replicas on one database instead
        take up a chat's copies as they take the chat, `take_up`) and start the workers."""
        if resume:
            for item in await self.media.pending_copies():
                self.add(item)
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def close(self) -> None:
        """Stop the workers (what is left is made after the next start)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._executor.shutdown(wait=False, cancel_futures=True)

    def add(self, item: Item) -> None:
        """Make this photo's copy soon."""
        self._pending[item.album_id][item.id] = item
        first = 0 if item.album_id in self._hurried else 1
        self._queue.put_nowait((first, next(self._order), item))

    async def take_up(self, chat_id: int) -> None:
        """Queue the chat's copies left unmade by the replica that held the chat before."""
        for item in await self.media.pending_copies(chat_id):
            if item.id not in self._pending.get(item.album_id, {}):
                self.add(item)

    def waiting(self, album_id: int) -> int:
        """How many of the album's copies are not made yet."""
        return len(self._pending.get(album_id, ()))

    async def ready(self, album_id: int) -> None:
        """Wait until every copy of the album's photos is made; they go before other albums'
        (someone is waiting for these, the others are only being collected)."""
        if album_id not in self._hurried and self._pending.get(album_id):
            self._hurried.add(album_id)
            for item in self._pending[album_id].values():
                self._queue.put_nowait((0, next(self._order), item))  # the old entry is skipped
        try:
            async with self._changed:
                await self._changed.wait_for(lambda: not self._pending.get(album_id))
        finally:
            self._hurried.discard(album_id)

    async def _work(self) -> None:
        while True:
            _, _, item = await self._queue.get()
            if item.id not in self._pending.get(item.album_id, {}) or item.id in self._making:
                continue  # made already (it was queued twice when its album was hurried)
            self._making.add(item.id)
            try:
                await self._make(item)
            except Exception:
                log.exception("Could not make the model copy of item %s", item.id)
                # Left as it is, the photo would silently never reach the model; marked, the
                # story says it was left out and why.
                with contextlib.suppress(Exception):
                    await self.media.mark_model_failed(
                        item.id, N_("its copy for the model could not be made")
                    )
            finally:
                self._making.discard(item.id)
                async with self._changed:
                    pending = self._pending.get(item.album_id)
                    if pending is not None:
                        pending.pop(item.id, None)
                        if not pending:
                            del self._pending[item.album_id]
                    self._changed.notify_all()

    async def _make(self, item: Item) -> None:
        # Blocking: from a bucket, a download when the cached copy is gone.
        source = await asyncio.to_thread(self.blobs.path_for, item.media.source.sha256)
        if not await asyncio.to_thread(source.is_file):
            return  # taken back meanwhile
        loop = asyncio.get_running_loop()
        try:
            sha, size = await loop.run_in_executor(
                self._executor, make_model_copy, source, self.blobs, self.limits
            )
        except MediaRejected as e:
            # It passed the checks but will not shrink (very rare: a HEIF libheif rejects):
            # the model leaves it out and the story says so.
            log.warning("The model copy of item %s could not be read: %s", item.id, e.reason)
            await self.media.mark_model_failed(item.id, N_("the picture could not be read"))
            return
        try:
            recorded = await self.media.set_model_copy(item.id, sha, size, "image/jpeg")
        finally:
            self.blobs.release(sha)
        if not recorded:
            await delete_unused(self.media, self.blobs, [sha])


def _yield_to_others() -> None:
    """Run this worker thread at a lower CPU priority (Linux schedules threads one by one).

    Copies can wait; the event loop answering people and acknowledging photos cannot. In a
    burst of albums the copies then use what CPU is left instead of slowing every reply.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
