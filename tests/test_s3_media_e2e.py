"""The real bot with its media in an S3 bucket (moto's server on loopback): MEDIA_URL set."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import BotProcess, Harness
from tests.image_files import jpeg
from tests.s3_server import Bucket

PREFIX = "photostory/media/"


@pytest.fixture
async def s3_bot(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, s3_bucket: Bucket
) -> AsyncIterator[Harness]:
    harness = Harness(tg, gemini, tmp_path / "data", **s3_bucket.env(PREFIX))
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def test_photos_live_in_the_bucket_from_acknowledgement_to_forget(
    s3_bot: Harness, s3_bucket: Bucket
) -> None:
    bot, tg, chat, ana = s3_bot, s3_bot.tg, s3_bot.chat, s3_bot.ana
    tg.send_photo(chat, ana, jpeg(1))
    tg.send_photo(chat, ana, jpeg(2))
    await bot.wait_text(chat["id"], "2 photos")
    await tg.wait_for(lambda: len(bot.rows("SELECT 1 FROM items WHERE model_ready = 1")) == 2)
    items = bot.rows("SELECT source_sha256, model_sha256 FROM items")
    shas = {row["source_sha256"] for row in items} | {row["model_sha256"] for row in items}
    assert len(shas) == 4  # two originals, two model copies
    assert s3_bucket.keys() == sorted(f"{PREFIX}{sha[:2]}/{sha}" for sha in shas)
    assert {p.name for p in bot.media_files()} == shas
    assert not (bot.data_dir / "media").exists()  # nothing on the local media folder
    original = bot.blob_bytes(items[0]["source_sha256"])
    assert (
        original is not None and hashlib.sha256(original).hexdigest() == items[0]["source_sha256"]
    )

    # A cold cache (another replica, a new machine): /story reads the model copies back from
    # the bucket, and Gemini gets exactly the stored bytes.
    shutil.rmtree(bot.data_dir / "media-cache")
    tg.send_command(chat, ana, "/story")
    await bot.wait_text(chat["id"], "Seen 2 images")
    sent = {hashlib.sha256(f.data).hexdigest() for f in bot.gemini.uploads()}
    assert sent == {row["model_sha256"] for row in items}

    tg.send_command(chat, ana, "/forget")
    ask, yes = await bot.first_button(chat["id"], "Forget this chat?")
    tg.press_button(chat, ana, ask, yes)
    await bot.wait_text(chat["id"], "Done: deleted 1 album, 2 photos and videos")
    assert s3_bucket.keys() == [] and bot.media_files() == []
    cached = [p for p in (bot.data_dir / "media-cache").rglob("*") if p.is_file()]
    assert cached == []


async def test_a_missing_bucket_stops_the_bot_with_a_sentence(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, s3_bucket: Bucket
) -> None:
    env = {**s3_bucket.env(), "MEDIA_URL": "s3://no-such-bucket/media"}
    bot = BotProcess(tg, gemini, tmp_path / "data", tmp_path / "bot.log", **env)
    await bot.start()
    assert await bot.wait(timeout=60) == 2
    output = bot.output()
    assert "photostory cannot start." in output
    assert "The bucket 'no-such-bucket' at http://127.0.0.1:" in output and "create it" in output
    assert "Traceback" not in output and env["AWS_SECRET_ACCESS_KEY"] not in output
