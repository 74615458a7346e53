"""The SQL engines: every store written once (SQLAlchemy Core), run on SQLite or PostgreSQL.

SQLite is one file (WAL) next to the media; PostgreSQL is a server named by a postgresql://
address. Media are a BlobStore of their own: local files, or a bucket (`storage.blobs`).
Nothing outside `storage/` sees SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path

from storage.jobs import JobQueue
from storage.local_blobs import LocalBlobStore
from storage.protocols import BlobStore, Storage
from storage.sql.album_store import DEFAULT_ALBUM_NAME, NameFor, SqlAlbumStore
from storage.sql.arrival_store import SqlArrivalStore
from storage.sql.burst_store import SqlBurstStore
from storage.sql.cache_store import SqlContextCacheStore
from storage.sql.conversation_store import SqlConversationStore
from storage.sql.database import Database, PostgresDatabase, SqliteDatabase, postgres_url
from storage.sql.inbox_store import SqlInboxStore
from storage.sql.media_store import SqlMediaStore
from storage.sql.migrations import apply_migrations
from storage.sql.privacy_store import SqlPrivacyStore
from storage.sql.result_store import SqlResultStore
from storage.sql.sent_store import SqlSentStore
from storage.sql.upload_store import SqlUploadStore
from storage.sql.usage_store import SqlUsageStore


async def open_sqlite(
    db_path: Path,
    media_root: Path,
    blobs: BlobStore | None = None,
    new_album_name: NameFor = lambda: DEFAULT_ALBUM_NAME,
) -> Storage:
    """Open (creating and migrating) the database file; media in `blobs` (prepared), else in
    the media folder under `media_root`; a chat's first album is named `new_album_name()`."""
    from storage.jobs.local import LocalQueue  # it builds on this package's modules

    db = SqliteDatabase(db_path)
    return await _open(db, lambda: LocalQueue(db), media_root, blobs, new_album_name)


async def open_postgres(
    url: str,
    media_root: Path,
    blobs: BlobStore | None = None,
    new_album_name: NameFor = lambda: DEFAULT_ALBUM_NAME,
    job_stall: float = 15.0,
) -> Storage:
    """Open (migrating) the PostgreSQL database at a postgresql:// address; media in `blobs`
    (prepared), else in the media folder under `media_root`; first albums as open_sqlite."""
    from storage.jobs.postgres import PostgresQueue  # procrastinate, only for PostgreSQL

    db = PostgresDatabase(postgres_url(url))

    def queue() -> PostgresQueue:
        # This replica, as the other replicas' logs and procrastinate's workers table name it.
        name = f"{socket.gethostname()}:{os.getpid()}"
        heartbeat = max(0.5, job_stall / 5)
        return PostgresQueue(
            db, url, name=name, heartbeat=heartbeat, stalled_after=job_stall, polling=0.25
        )

    return await _open(db, queue, media_root, blobs, new_album_name)


async def _open(
    db: Database,
    new_queue: Callable[[], JobQueue],
    media_root: Path,
    blobs: BlobStore | None,
    new_album_name: NameFor,
) -> Storage:
    await db.open()
    try:
        await db.write(apply_migrations)
    except BaseException:
        await db.close()
        raise
    if blobs is None:
        blobs = LocalBlobStore(media_root)
        blobs.prepare()

    jobs = new_queue()

    async def close() -> None:
        await jobs.stop()
        await db.close()
        await asyncio.to_thread(blobs.pins.close)

    albums = SqlAlbumStore(db, new_album_name)
    return Storage(
        albums=albums,
        media=SqlMediaStore(db),
        conversation=SqlConversationStore(db),
        usage=SqlUsageStore(db),
        uploads=SqlUploadStore(db),
        caches=SqlContextCacheStore(db),
        inbox=SqlInboxStore(db, jobs),
        arrivals=SqlArrivalStore(db, jobs, albums),
        privacy=SqlPrivacyStore(db),
        sent=SqlSentStore(db),
        results=SqlResultStore(db),
        bursts=SqlBurstStore(db),
        blobs=blobs,
        jobs=jobs,
        closer=close,
    )


__all__ = ["open_postgres", "open_sqlite"]
