"""What only the SQLite engine does: migrations recorded in the file, WAL, upgrades in place.

The behaviour every engine shares is in test_storage_contract.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from storage.sql import open_sqlite
from storage.sql.migrations import MIGRATIONS


async def test_migrations_run_once_and_are_recorded(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    for _ in range(2):
        storage = await open_sqlite(path, tmp_path)
        await storage.close()
        await storage.close()  # safe twice
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert names == [name for name, _ in MIGRATIONS]
    assert mode == "wal"


async def test_items_stored_before_sizes_were_kept_get_them_from_their_blobs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"
    await (await open_sqlite(path, tmp_path)).close()
    a, b = "a" * 64, "b" * 64
    with sqlite3.connect(path) as conn:  # a database as the release before m005 left it
        conn.execute("DELETE FROM _migrations WHERE name = 'm005_item_blob_sizes'")
        for column in ("source_size", "source_mime", "model_size"):
            conn.execute(f"ALTER TABLE items DROP COLUMN {column}")
        conn.execute("INSERT INTO albums VALUES (1, 1, 'Old', 'x', 'x')")
        conn.execute(
            "INSERT INTO blobs VALUES (?, 5000, 'image/heic', 'x'), (?, 80, 'image/jpeg', 'x')",
            (a, b),
        )
        conn.execute(
            "INSERT INTO items (album_id, position, kind, source_sha256, model_sha256,"
            " model_mime_type, created_at) VALUES (1, 1, 'photo', ?, ?, 'image/jpeg', 'x')",
            (a, b),
        )
    storage = await open_sqlite(path, tmp_path)
    try:
        (item,) = await storage.media.items(1)
    finally:
        await storage.close()
    assert (item.media.source.size, item.media.source.mime_type) == (5000, "image/heic")
    assert (item.media.model.size, item.media.model.mime_type) == (80, "image/jpeg")
