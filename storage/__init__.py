"""What the product keeps: albums, media, conversation, usage, uploads, received updates
and the jobs that handle them.

Callers use the records (`storage.records`), the protocols and the `Storage` bundle
(`storage.protocols`) and `open_storage`; which engine holds the data is decided here, once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from storage.protocols import BlobStore, Storage


async def open_storage(
    data_dir: Path,
    db_path: Path,
    blobs: BlobStore | None = None,
    database_url: str | None = None,
    new_album_name: Callable[[], str] = lambda: "My trip",
    job_stall: float = 15.0,
) -> Storage:
    """Open the configured engine: PostgreSQL at `database_url` when given, else SQLite at
    `db_path`; media in `blobs` (from `storage.blobs.open_blobs`), or files under
    `data_dir/media` when not given. A chat's first album is named `new_album_name()`. On
    PostgreSQL, the jobs of a replica silent for `job_stall` seconds pass to another."""
    from storage.sql import open_postgres, open_sqlite  # SQLAlchemy loads with the engine

    if database_url:
        return await open_postgres(database_url, data_dir, blobs, new_album_name, job_stall)
    return await open_sqlite(db_path, data_dir, blobs, new_album_name)


__all__ = ["Storage", "open_storage"]
