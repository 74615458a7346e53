"""What the product keeps: albums, media, conversation, usage, uploads, the update inbox.

Callers use the records (`storage.records`), the protocols and the `Storage` bundle
(`storage.protocols`) and `open_storage`; which engine holds the data is decided here, once.
"""

from __future__ import annotations

from pathlib import Path

from storage.protocols import BlobStore, Storage
from storage.sqlite import open_sqlite


async def open_storage(data_dir: Path, db_path: Path, blobs: BlobStore | None = None) -> Storage:
    """Open the configured engine: today SQLite at `db_path`; media in `blobs` (from
    `storage.blobs.open_blobs`), or files under `data_dir/media` when not given."""
    return await open_sqlite(db_path, data_dir, blobs)


__all__ = ["Storage", "open_storage"]
