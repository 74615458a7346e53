"""Forward-only schema migrations. Never edit a shipped migration: append a new one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storage.sqlite.db import Tx

Migration = Callable[["Tx"], Awaitable[None]]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    """Register a migration; they run in the order they are defined, once each."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


async def apply_migrations(tx: Tx) -> list[str]:
    """Run the migrations this database has not seen yet; return their names."""
    await tx.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {row["name"] for row in await tx.fetchall("SELECT name FROM _migrations")}
    ran = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        await fn(tx)
        await tx.execute(
            "INSERT INTO _migrations (name, applied_at) VALUES (?, datetime('now'))", (name,)
        )
        ran.append(name)
    return ran


@migration
async def m001_initial(tx: Tx) -> None:
    await tx.executescript(
        """
        -- One row per Telegram chat: which album new media goes to.
        CREATE TABLE chats (
            chat_id INTEGER PRIMARY KEY,
            current_album_id INTEGER,
            created_at TEXT NOT NULL
        );

        CREATE TABLE albums (
            id INTEGER PRIMARY KEY,
            chat_id INTEGER NOT NULL,
            name TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX albums_by_chat ON albums (chat_id, id);

        -- A file under DATA_DIR/media, named by the sha256 of its bytes: the same photo sent
        -- twice, or to two albums, is stored once.
        CREATE TABLE blobs (
            sha256 TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            mime_type TEXT NOT NULL,
            created_at TEXT NOT NULL
        );

        -- A burst of media (or notes) acknowledged by one message; what /undo takes back.
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            album_id INTEGER NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
            created_at TEXT NOT NULL
        );

        CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            album_id INTEGER NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
            batch_id INTEGER REFERENCES batches (id) ON DELETE SET NULL,
            -- The number the traveller and the model use ("photo 7"); never reused in an album.
            position INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('photo', 'video')),
            source_sha256 TEXT NOT NULL REFERENCES blobs (sha256),
            -- What the model gets: a small upright JPEG for photos, the file itself for videos.
            model_sha256 TEXT NOT NULL REFERENCES blobs (sha256),
            model_mime_type TEXT NOT NULL,
            -- Telegram's ids: file_unique_id spots a repeat before downloading it again;
            -- file_id lets the bot download the original again.
            file_unique_id TEXT,
            file_id TEXT,
            file_name TEXT,
            mime_type TEXT,
            caption TEXT,
            chat_message_id INTEGER,
            media_group_id TEXT,
            sender_id INTEGER,
            sender_name TEXT,
            width INTEGER,
            height INTEGER,
            duration REAL,
            -- When and where, from EXIF or the container; message_date is the fallback.
            taken_at TEXT,
            time_source TEXT,
            latitude REAL,
            longitude REAL,
            altitude REAL,
            place TEXT,
            camera TEXT,
            message_date TEXT,
            -- Set when the model service could not process the file; it is then left out.
            model_failed TEXT,
            created_at TEXT NOT NULL,
            UNIQUE (album_id, source_sha256),
            UNIQUE (album_id, position)
        );
        CREATE INDEX items_by_unique_id ON items (album_id, file_unique_id);
        CREATE INDEX items_by_message ON items (chat_message_id);

        -- What the traveller tells about the trip: plain text while collecting, /note.
        CREATE TABLE notes (
            id INTEGER PRIMARY KEY,
            album_id INTEGER NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
            batch_id INTEGER REFERENCES batches (id) ON DELETE SET NULL,
            text TEXT NOT NULL,
            sender_id INTEGER,
            sender_name TEXT,
            created_at TEXT NOT NULL
        );

        -- One question and its answer, stored together once the answer is complete, so a
        -- failed call leaves no half turn behind.
        CREATE TABLE exchanges (
            id INTEGER PRIMARY KEY,
            album_id INTEGER NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            prompt TEXT NOT NULL,
            user_text TEXT,
            focus_item_id INTEGER REFERENCES items (id) ON DELETE SET NULL,
            answer_text TEXT NOT NULL,
            -- The model's turn as the SDK returned it (keeps thought signatures for re-sending).
            answer_content TEXT,
            sender_id INTEGER,
            created_at TEXT NOT NULL
        );
        CREATE INDEX exchanges_by_album ON exchanges (album_id, id);

        -- Files uploaded to the model's File API, reused until shortly before they expire.
        CREATE TABLE uploads (
            sha256 TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            uri TEXT NOT NULL,
            mime_type TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            created_at TEXT NOT NULL
        );

        -- Tokens per model call, per user and chat: budgets, /usage and /stats.
        CREATE TABLE usage (
            id INTEGER PRIMARY KEY,
            user_id INTEGER,
            chat_id INTEGER NOT NULL,
            album_id INTEGER,
            kind TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            thinking_tokens INTEGER NOT NULL DEFAULT 0,
            cached_tokens INTEGER NOT NULL DEFAULT 0,
            total_tokens INTEGER NOT NULL DEFAULT 0,
            by_modality TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX usage_by_user ON usage (user_id, created_at);
        CREATE INDEX usage_by_chat ON usage (chat_id, created_at);
        """
    )


@migration
async def m002_item_telegram_type(tx: Tx) -> None:
    # How the file reached Telegram (photo, video, video_note, animation, document) decides how
    # the illustrated story can post it again: by file_id, or by uploading our own copy.
    await tx.execute("ALTER TABLE items ADD COLUMN telegram_type TEXT")


@migration
async def m003_inbox(tx: Tx) -> None:
    # Updates are written here as soon as they are fetched and deleted once handled: Telegram
    # forgets an update as soon as the next poll confirms it, so without this a process killed
    # between fetching and handling would lose photos that were never acknowledged.
    await tx.executescript(
        """
        CREATE TABLE inbox (
            update_id INTEGER PRIMARY KEY,
            payload TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            received_at TEXT NOT NULL
        );
        """
    )


@migration
async def m004_model_copy_pending(tx: Tx) -> None:
    # A photo is acknowledged once its original is stored and checked; the model's small copy
    # is made in the background (0 = not yet: model_sha256 still names the original).
    await tx.execute("ALTER TABLE items ADD COLUMN model_ready INTEGER NOT NULL DEFAULT 1")


@migration
async def m005_item_blob_sizes(tx: Tx) -> None:
    # An item carries its two files whole (hash, size, type), so reading an album needs no join
    # with `blobs`; rows from before are filled from there.
    await tx.executescript(
        """
        ALTER TABLE items ADD COLUMN source_size INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE items ADD COLUMN source_mime TEXT NOT NULL DEFAULT '';
        ALTER TABLE items ADD COLUMN model_size INTEGER NOT NULL DEFAULT 0;
        UPDATE items SET
            source_size = COALESCE((SELECT size FROM blobs WHERE sha256 = items.source_sha256), 0),
            source_mime = COALESCE(
                (SELECT mime_type FROM blobs WHERE sha256 = items.source_sha256),
                items.mime_type, ''),
            model_size = COALESCE((SELECT size FROM blobs WHERE sha256 = items.model_sha256), 0);
        """
    )


@migration
async def m006_context_caches(tx: Tx) -> None:
    # The album's context cached at the model service (cachedContents): follow-ups name it
    # instead of sending the album again. Kept here so a restarted bot reuses it, and deleted
    # with the album; `key` is what it holds, so a changed album is noticed.
    await tx.executescript(
        """
        CREATE TABLE context_caches (
            album_id INTEGER PRIMARY KEY REFERENCES albums (id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            key TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            tokens INTEGER NOT NULL,
            created_at TEXT NOT NULL
        );
        """
    )
