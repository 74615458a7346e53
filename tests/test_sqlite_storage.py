"""What only the SQLite engine does: migrations recorded in the file, WAL, upgrades in place.

The behaviour every engine shares is in test_storage_contract.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, event
from sqlalchemy.pool import StaticPool

from storage.jobs import CHAT, JSON, MEDIA, Attempt, Job, Task
from storage.records import Blob, Media, MediaFacts, Origin
from storage.sql import open_sqlite
from storage.sql.database import Rollback, SqliteDatabase
from storage.sql.migrations import MIGRATIONS, Migrator


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


async def _database_before(path: Path, migration: str) -> None:
    """A database as the release before `migration` left it: the earlier migrations only."""
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute("PRAGMA foreign_keys=ON")  # as the bot's connections have it
        engine = create_engine("sqlite://", creator=lambda: raw, poolclass=StaticPool)
        with engine.connect() as conn:
            raw.execute("BEGIN IMMEDIATE")
            conn.exec_driver_sql(
                "CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
            )
            migrator = Migrator(conn)
            for name, fn in MIGRATIONS:
                if name == migration:
                    break
                fn(migrator)
                conn.exec_driver_sql("INSERT INTO _migrations VALUES (?, 'x')", (name,))
            raw.execute("COMMIT")
    finally:
        raw.close()


async def test_a_database_from_before_audio_upgrades_with_its_rows_ids_and_links_intact(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"
    await _database_before(path, "m006_audio_items")
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys=ON")
        with pytest.raises(sqlite3.IntegrityError):  # what m006 is for
            conn.execute(
                "INSERT INTO items (album_id, position, kind, source_sha256, model_sha256,"
                " model_mime_type, created_at) VALUES (1, 1, 'audio', 'x', 'x', 'x', 'x')"
            )
        conn.execute("INSERT INTO albums VALUES (1, 7, 'Lisbon', 'x', 'x')")
        conn.execute("INSERT INTO chats VALUES (7, 1, 'x')")
        conn.execute("INSERT INTO batches VALUES (4, 1, 'x')")
        conn.execute(
            "INSERT INTO blobs VALUES (?, 5000, 'image/heic', 'x'), (?, 80, 'image/jpeg', 'x'),"
            " (?, 900, 'video/mp4', 'x')",
            (a, b, c),
        )
        conn.execute(
            "INSERT INTO items (id, album_id, batch_id, position, kind, source_sha256,"
            " model_sha256, model_mime_type, file_unique_id, caption, chat_message_id,"
            " telegram_type, model_ready, source_size, source_mime, model_size, created_at)"
            " VALUES (10, 1, 4, 1, 'photo', ?, ?, 'image/jpeg', 'u1', 'Belém', 31, 'document',"
            " 1, 5000, 'image/heic', 80, 'x'),"
            " (12, 1, 4, 2, 'video', ?, ?, 'video/mp4', 'u2', NULL, 32, 'video', 1, 900,"
            " 'video/mp4', 900, 'x')",
            (a, b, c, c),
        )
        conn.execute(
            "INSERT INTO exchanges (id, album_id, kind, prompt, focus_item_id, answer_text,"
            " created_at) VALUES (3, 1, 'question', 'What is this?', 12, 'A pier.', 'x')"
        )
        before = [tuple(r) for r in conn.execute("SELECT * FROM items ORDER BY id")]

    storage = await open_sqlite(path, tmp_path)
    try:
        items = await storage.media.items(1)
        [exchange] = await storage.conversation.exchanges(1)
        spoken = Media(
            "audio",
            Blob("d" * 64, 700, "audio/ogg"),
            Blob("d" * 64, 700, "audio/ogg"),
            Origin(file_unique_id="u3", telegram_type="voice"),
            MediaFacts(duration=42.0),
        )
        added = await storage.media.add(1, 4, spoken, max_items=300)
        summary = await storage.albums.summary(7, 1)
        by_message = await storage.media.by_message(7, 32)
    finally:
        await storage.close()

    with sqlite3.connect(path) as conn:
        after = [tuple(r) for r in conn.execute("SELECT * FROM items WHERE id IN (10, 12)")]
        indexes = {r[1] for r in conn.execute("PRAGMA index_list(items)")}
        links = {(r[2], r[3], r[4]) for r in conn.execute("PRAGMA foreign_key_list(items)")}
        broken = list(conn.execute("PRAGMA foreign_key_check"))
        names = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
        columns = [r[1] for r in conn.execute("PRAGMA table_info(items)")]
    assert sorted(after) == sorted(
        tuple(row[columns.index(c)] for c in columns) for row in before
    )  # every column of every row, in the rebuilt table's column order
    assert [(i.id, i.position, i.kind, i.label) for i in items] == [
        (10, 1, "photo", "photo 1"), (12, 2, "video", "video 2"),
    ]  # fmt: skip
    assert items[0].media.origin.caption == "Belém" and items[0].media.source.size == 5000
    assert exchange.focus_item_id == 12  # the rebuild did not cut the question from its video
    assert by_message is not None and by_message.id == 12
    assert added.item is not None and added.item.label == "voice note 3"
    assert summary is not None and (summary.photos, summary.videos, summary.voice_notes) == (
        1, 1, 1,
    )  # fmt: skip
    assert {"items_by_unique_id", "items_by_message"} <= indexes
    assert ("albums", "album_id", "id") in links and ("blobs", "source_sha256", "sha256") in links
    assert ("batches", "batch_id", "id") in links and broken == []
    assert names == [name for name, _ in MIGRATIONS]


async def test_updates_pending_at_the_upgrade_to_received_updates_are_known_as_received(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"
    await _database_before(path, "m010_received_updates")
    with sqlite3.connect(path) as conn:  # a pending update, journaled by the release before
        conn.execute("INSERT INTO inbox VALUES (41, '{\"update_id\": 41}', 0, 'x', 7)")
    storage = await open_sqlite(path, tmp_path)
    try:
        again = Job("update", {"update": {"update_id": 41}}, lock="chat:7")
        assert not await storage.inbox.receive(41, again)  # Telegram sent it again
        assert not await storage.inbox.handled(41)  # still to be handled: m015 made it a job
        with sqlite3.connect(path) as conn:
            jobs = list(conn.execute("SELECT task, lock, queue, status FROM jobs"))
        assert jobs == [("update", "chat:7", CHAT, "todo")]  # in its chat's order
        ran: list[JSON] = []

        async def update(attempt: Attempt, args: JSON) -> None:
            ran.append(args)

        storage.jobs.register(Task("update", update))
        await storage.jobs.start({CHAT: 1, MEDIA: 1})
        assert await storage.jobs.wait_idle(20.0)
        assert ran == [{"update": {"update_id": 41}}]  # the upgraded file runs it, once
    finally:
        await storage.close()


async def _group_db(tmp_path: Path) -> tuple[SqliteDatabase, list[str]]:
    db = SqliteDatabase(tmp_path / "group.sqlite3")
    await db.open()
    commits: list[str] = []
    event.listen(db._sa, "commit", lambda conn: commits.append("commit"))
    await db.write(lambda conn: conn.exec_driver_sql("CREATE TABLE t (v INTEGER)"))
    return db, commits


async def _queued_behind_a_held_call(db: SqliteDatabase, *calls: Any) -> list[Any]:
    """Run `calls` (coroutines of the database) while the connection's thread is held by
    another call, so that they queue up together; their outcomes, exceptions included."""
    held, release = threading.Event(), threading.Event()

    def hold(conn: Connection) -> None:
        held.set()
        assert release.wait(10)

    holder = asyncio.ensure_future(db.write(hold))
    assert await asyncio.to_thread(held.wait, 10)
    tasks = [asyncio.ensure_future(call) for call in calls]
    for _ in range(100):  # each task submits its call at its first step
        if db._calls.qsize() >= len(calls):
            break
        await asyncio.sleep(0)
    release.set()
    await holder
    return await asyncio.gather(*tasks, return_exceptions=True)


def _insert(value: int) -> Callable[[Connection], int]:
    def work(conn: Connection) -> int:
        conn.exec_driver_sql(f"INSERT INTO t VALUES ({value})")
        return value

    return work


def _values(conn: Connection) -> list[int]:
    return [row[0] for row in conn.exec_driver_sql("SELECT v FROM t ORDER BY v")]


async def test_calls_queued_together_commit_once_and_each_fails_or_rolls_back_alone(
    tmp_path: Path,
) -> None:
    db, commits = await _group_db(tmp_path)

    def fails(conn: Connection) -> None:
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        raise ValueError("this one only")

    def rolls_back(conn: Connection) -> None:
        conn.exec_driver_sql("INSERT INTO t VALUES (3)")
        raise Rollback("undone")

    try:
        commits.clear()
        outcomes = await _queued_behind_a_held_call(
            db,
            db.write(_insert(1)),
            db.write(fails),
            db.write(rolls_back),
            db.read(_values),  # sees what was written before it in its group
            db.write(_insert(4)),
        )
        assert outcomes[0] == 1
        assert isinstance(outcomes[1], ValueError)
        assert outcomes[2] == "undone"
        assert outcomes[3] == [1]
        assert outcomes[4] == 4
        # The held call's transaction, then one for the five queued behind it.
        assert commits == ["commit", "commit"]
        assert await db.read(_values) == [1, 4]
    finally:
        await db.close()


async def test_a_call_alone_keeps_its_own_transaction(tmp_path: Path) -> None:
    db, commits = await _group_db(tmp_path)
    try:
        commits.clear()
        assert await db.write(_insert(1)) == 1
        with pytest.raises(ValueError):
            await db.write(lambda conn: (_insert(2)(conn), int("x")))
        assert commits == ["commit"]  # the failed one rolled back
        assert await db.read(_values) == [1]
    finally:
        await db.close()
