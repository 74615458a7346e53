"""Model copies in the background: an album someone is waiting for goes first."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest

from bot.service import copies as copies_module
from bot.service.copies import ModelCopies
from bot.service.intake import PhotoLimits
from storage.protocols import BlobStore
from storage.sql import open_sqlite
from tests.test_export import make_items


async def test_the_album_a_story_waits_for_is_copied_before_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = await open_sqlite(tmp_path / "db.sqlite3", tmp_path)
    blobs = storage.blobs
    template = make_items(blobs)[0]
    made: list[int] = []  # album ids in the order their copies were made

    def slow_copy(source: Path, store: BlobStore, limits: PhotoLimits) -> tuple[str, int]:
        time.sleep(0.02)
        made.append(int(source.read_bytes().split(b":")[0]))
        return "f" * 64, 1

    monkeypatch.setattr(copies_module, "make_model_copy", slow_copy)
    copies = ModelCopies(storage, PhotoLimits(1024, 150_000, 10**8), workers=1)
    await copies.start()
    try:
        for n, album in enumerate([1] * 8 + [2] * 2, start=1):
            sha, _ = blobs.put_bytes(f"{album}:{n}".encode())
            source = dataclasses.replace(template.media.source, sha256=sha)
            media = dataclasses.replace(template.media, source=source)
            copies.add(dataclasses.replace(template, id=n, album_id=album, media=media))
        await asyncio.wait_for(copies.ready(2), timeout=10)  # /story in album 2
        assert made.count(2) == 2 and len(made) <= 4  # not after all eight of album 1
        await asyncio.wait_for(copies.ready(1), timeout=10)
        assert sorted(made) == [1] * 8 + [2] * 2  # each made once
    finally:
        await copies.close()
        await storage.close()
