"""What the product keeps: albums, media, conversation, usage, uploads, the update inbox.

Callers use the records (`storage.records`), the protocols and the `Storage` bundle
(`storage.protocols`) and `open_storage`; which engine holds the data is decided here, once.
"""

from __future__ import annotations

from pathlib import Path

from storage.protocols import Storage
from storage.sqlite import open_sqlite


async def open_storage(data_dir: Path, db_path: Path) -> Storage:
    """Open the configured engine: today SQLite at `db_path` and media files under `data_dir`."""
    return await open_sqlite(db_path, data_dir)


__all__ = ["Storage", "open_storage"]
