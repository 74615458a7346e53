"""Which blobs the model service already holds (File API uploads) and until when."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, delete, select

from storage.records import Upload, now_iso
from storage.sql.database import Database
from storage.sql.rows import every, one, record, run
from storage.sql.tables import uploads

_GET = select(uploads).where(uploads.c.sha256 == bindparam("sha"))
_GET_MANY = select(uploads).where(uploads.c.sha256.in_(bindparam("shas", expanding=True)))
_DROP = delete(uploads).where(uploads.c.sha256 == bindparam("sha"))
_CHUNK = 500  # hashes per query: well under either engine's limit on parameters


class SqlUploadStore:
    """Remembers File API uploads by blob hash, so follow-ups reference instead of re-sending."""

    def __init__(self, db: Database) -> None:
        self.db = db
        put = db.insert(uploads)
        self._put = put.on_conflict_do_update(
            index_elements=[uploads.c.sha256],
            set_={name: put.excluded[name] for name in
                  ("name", "uri", "mime_type", "expires_at", "created_at")},
        )  # fmt: skip

    async def get(self, sha256: str) -> Upload | None:
        """The recorded upload of a blob, if any."""
        return await self.db.read(_get, sha256)

    async def get_many(self, sha256s: list[str]) -> dict[str, Upload]:
        """The recorded uploads of several blobs, by hash (one trip)."""
        if not sha256s:
            return {}
        return await self.db.read(_get_many, sha256s)

    async def put(self, upload: Upload) -> None:
        """Record (or replace) the upload of a blob."""
        values = {"sha256": upload.sha256, "name": upload.name, "uri": upload.uri,
                  "mime_type": upload.mime_type, "expires_at": upload.expires_at,
                  "created_at": now_iso()}  # fmt: skip
        await self.db.write(run, self._put, values)

    async def drop(self, sha256: str) -> None:
        """Forget an upload (expired, deleted, or its blob is gone)."""
        await self.db.write(run, _DROP, {"sha": sha256})


def _get(conn: Connection, sha256: str) -> Upload | None:
    row = one(conn, _GET, {"sha": sha256})
    return record(Upload, row) if row else None


def _get_many(conn: Connection, sha256s: list[str]) -> dict[str, Upload]:
    found: dict[str, Upload] = {}
    for start in range(0, len(sha256s), _CHUNK):
        rows = every(conn, _GET_MANY, {"shas": sha256s[start : start + _CHUNK]})
        found.update((row["sha256"], record(Upload, row)) for row in rows)
    return found
