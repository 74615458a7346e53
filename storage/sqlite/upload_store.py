"""Which blobs the model service already holds (File API uploads) and until when, in SQLite."""

from __future__ import annotations

from storage.records import Upload, now_iso
from storage.sqlite.db import Database
from storage.sqlite.rows import record


class SqliteUploadStore:
    """Remembers File API uploads by blob hash, so follow-ups reference instead of re-sending."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, sha256: str) -> Upload | None:
        """The recorded upload of a blob, if any."""
        row = await self.db.fetchone("SELECT * FROM uploads WHERE sha256 = ?", (sha256,))
        return record(Upload, row) if row else None

    async def get_many(self, sha256s: list[str]) -> dict[str, Upload]:
        """The recorded uploads of several blobs, by hash (one query)."""
        found: dict[str, Upload] = {}
        for start in range(0, len(sha256s), 500):  # stay under SQLite's variable limit
            chunk = sha256s[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await self.db.fetchall(f"SELECT * FROM uploads WHERE sha256 IN ({marks})", chunk)
            found.update((row["sha256"], record(Upload, row)) for row in rows)
        return found

    async def put(self, upload: Upload) -> None:
        """Record (or replace) the upload of a blob."""
        await self.db.execute(
            "INSERT INTO uploads (sha256, name, uri, mime_type, expires_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO UPDATE SET"
            " name = excluded.name, uri = excluded.uri, mime_type = excluded.mime_type,"
            " expires_at = excluded.expires_at, created_at = excluded.created_at",
            (
                upload.sha256,
                upload.name,
                upload.uri,
                upload.mime_type,
                upload.expires_at,
                now_iso(),
            ),
        )

    async def drop(self, sha256: str) -> None:
        """Forget an upload (expired, deleted, or its blob is gone)."""
        await self.db.execute("DELETE FROM uploads WHERE sha256 = ?", (sha256,))
