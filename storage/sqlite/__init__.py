"""The embedded engine: every store on one SQLite file (WAL), media on the local disk."""

from __future__ import annotations

from pathlib import Path

from storage.local_blobs import LocalBlobStore
from storage.protocols import Storage
from storage.sqlite.album_store import SqliteAlbumStore
from storage.sqlite.cache_store import SqliteContextCacheStore
from storage.sqlite.conversation_store import SqliteConversationStore
from storage.sqlite.db import Database
from storage.sqlite.inbox_store import SqliteInboxStore
from storage.sqlite.media_store import SqliteMediaStore
from storage.sqlite.privacy_store import SqlitePrivacyStore
from storage.sqlite.upload_store import SqliteUploadStore
from storage.sqlite.usage_store import SqliteUsageStore


async def open_sqlite(db_path: Path, media_root: Path) -> Storage:
    """Open (creating and migrating) the database file and the media folder under `media_root`."""
    db = Database(db_path)
    await db.open()
    # The update inbox writes for every update: its own connection, so it never waits behind
    # an album's transaction.
    inbox_db = Database(db_path)
    await inbox_db.open()
    blobs = LocalBlobStore(media_root)
    blobs.prepare()

    async def close() -> None:
        await inbox_db.close()
        await db.close()

    return Storage(
        albums=SqliteAlbumStore(db),
        media=SqliteMediaStore(db),
        conversation=SqliteConversationStore(db),
        usage=SqliteUsageStore(db),
        uploads=SqliteUploadStore(db),
        caches=SqliteContextCacheStore(db),
        inbox=SqliteInboxStore(inbox_db),
        privacy=SqlitePrivacyStore(db),
        blobs=blobs,
        closer=close,
    )
