"""Storage: migrations, content-keyed media, batches and the conversation, read back from SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from storage.albums import AlbumStore
from storage.blobs import BlobStore
from storage.conversation import ConversationStore, NewExchange
from storage.db import Database
from storage.media import AddStatus, MediaStore, NewItem
from storage.migrations import MIGRATIONS


def _item(album_id: int, batch_id: int, sha: str) -> NewItem:
    return NewItem(
        album_id=album_id, batch_id=batch_id, kind="photo", source_sha256=sha, source_size=10,
        source_mime="image/jpeg", model_sha256=sha, model_size=10, model_mime_type="image/jpeg",
        file_unique_id=f"unique-{sha[:4]}",
    )  # fmt: skip


async def test_migrations_run_once_and_are_recorded(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    for _ in range(2):
        db = Database(path)
        await db.open()
        await db.close()
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert names == [name for name, _ in MIGRATIONS]
    assert mode == "wal"


async def test_same_content_is_stored_once_per_album_and_numbers_are_stable(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3")
    await db.open()
    albums, media = AlbumStore(db), MediaStore(db)
    album = await albums.current(1)
    batch = await media.new_batch(album.id)
    first = await media.add(_item(album.id, batch, "a" * 64), max_items=10)
    again = await media.add(_item(album.id, batch, "a" * 64), max_items=10)
    second = await media.add(_item(album.id, batch, "b" * 64), max_items=10)
    assert first.status is AddStatus.ADDED and again.status is AddStatus.DUPLICATE
    assert again.item == first.item
    assert second.item is not None and second.item.position == 2
    full = await media.add(_item(album.id, batch, "c" * 64), max_items=2)
    assert full.status is AddStatus.FULL
    known, count = await media.arrival(album.id, "unique-aaaa")
    assert known == first.item and count == 2
    assert await media.arrival(album.id, "never-sent") == (None, 2)
    assert await media.arrival(album.id, None) == (None, 2)
    await db.close()
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 2
        assert conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 2


async def test_albums_are_per_chat(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3")
    await db.open()
    albums = AlbumStore(db)
    mine = await albums.create(1, "Lisbon")
    assert await albums.switch(2, mine.id) is None  # another chat cannot take it
    assert await albums.get(2, mine.id) is None
    assert (await albums.current(1)).id == mine.id
    assert (await albums.current(2)).id != mine.id
    await db.close()


async def test_removing_a_batch_reports_orphan_blobs(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3")
    await db.open()
    albums, media = AlbumStore(db), MediaStore(db)
    one, two = await albums.create(1, "One"), await albums.create(1, "Two")
    b1, b2 = await media.new_batch(one.id), await media.new_batch(two.id)
    await media.add(_item(one.id, b1, "a" * 64), 10)
    await media.add(_item(one.id, b1, "b" * 64), 10)
    await media.add(_item(two.id, b2, "b" * 64), 10)  # shared with album Two
    removed = await media.remove_batch(one.id, b1)
    assert [i.source_sha256 for i in removed.items] == ["a" * 64, "b" * 64]
    assert removed.orphan_blobs == ["a" * 64]
    assert len(await media.items(two.id)) == 1
    await db.close()


async def test_exchanges_round_trip_in_order(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3")
    await db.open()
    album = await AlbumStore(db).current(1)
    talk = ConversationStore(db)
    for n in range(3):
        await talk.add(NewExchange(album.id, "question", f"q{n}", f"a{n}"))
    assert [e.prompt for e in await talk.exchanges(album.id)] == ["q0", "q1", "q2"]
    assert await talk.clear(album.id) == 3
    assert await talk.exchanges(album.id) == []
    await db.close()


def test_blob_store_is_content_addressed(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    blobs.prepare()
    sha1, size = blobs.put_bytes(b"hello")
    sha2, _ = blobs.put_bytes(b"hello")
    assert sha1 == sha2 and size == 5
    assert blobs.path_for(sha1).read_bytes() == b"hello"
    assert list(blobs.scratch.iterdir()) == []


def test_a_blob_on_its_way_into_a_row_is_not_deleted_until_released(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    blobs.prepare()
    sha, _ = blobs.put_bytes(b"photo")  # one chat stores it...
    again, _ = blobs.put_bytes(b"photo")  # ...and another the same bytes
    blobs.release(sha)
    blobs.delete(sha)  # the first gave it up: the second still needs it
    assert blobs.exists(sha)
    blobs.release(again)
    blobs.delete(sha)
    assert not blobs.exists(sha)
