"""Keeping files and rows in step: the start-up sweep of files no item refers to."""

from __future__ import annotations

import asyncio
import logging
import time

from storage.pins import delete_unused
from storage.protocols import Storage

log = logging.getLogger(__name__)

ORPHAN_AGE = 3600.0  # a younger file may belong to a process still finishing (a deploy)


async def sweep_orphan_blobs(storage: Storage, now: float | None = None) -> int:
    """Delete stored files no item refers to, left by a process killed between storing a file
    and committing its row; return how many. Run before anything else of the process.

    Works on any BlobStore: local files or a bucket's objects (their LastModified is the age).
    """
    blobs = storage.blobs
    stored = await asyncio.to_thread(blobs.stored)
    used = await storage.media.used_blobs()
    if stored and not used:
        # Files but an empty album table: a new or restored database next to old media.
        # Deleting them all could not be undone; leave that to the owner.
        log.warning("%d stored files but no album refers to any: none deleted", len(stored))
        return 0
    old = (time.time() if now is None else now) - ORPHAN_AGE
    orphans = [sha for sha in stored - used if (await asyncio.to_thread(blobs.modified, sha)) < old]
    deleted = await delete_unused(storage.media, blobs, orphans)
    if deleted:
        log.info("Deleted %d stored file(s) that no album refers to", len(deleted))
    return len(deleted)
