"""A burst where one file's download fails every time: the acknowledgement counts what was
received, the failure is named to the traveller once, nothing else is lost (issue 21, test c).

Ana sends five photos; the fake Bot API answers every download of the third one with a 500.
One acknowledgement counts the five received; photo 3 is named, with the reason, in that
message or in one follow-up, exactly once; the four others are stored (rows and blobs); a later
/story sees the four and is posted. Run on one process (SQLite, polling) and on two webhook
replicas (PostgreSQL and a bucket).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.gemini_api import FakeGemini, Reply, image_parts
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import ANA, BotProcess, Harness, acks, ever_said, texts
from tests.image_files import jpeg
from tests.replicas import Replicas
from tests.s3_server import Bucket

PHOTOS = 5
FAILING = 3  # the third photo sent: "photo 3" to the traveller
TIMEOUT = 60.0
CLOSING = "And then we flew home."  # the story's last message
JSON = dict[str, Any]


def _acknowledged(tg: FakeTelegram, chat_id: int) -> int:
    """How many photos the latest acknowledgement says the burst received (0: none yet): its
    "added N photos" (the album's total beside it counts what could be stored)."""
    counts = [re.search(r"added (\d+) photos?", text) for text in acks(tg, chat_id)]
    return int(counts[-1].group(1)) if counts and counts[-1] is not None else 0


def _naming_the_failure(said: list[str]) -> list[str]:
    """The messages (of `said`) that name the failed photo with the reason: "photo 3" and
    that it could not be downloaded."""
    named = re.compile(rf"\bphoto {FAILING}\b", re.IGNORECASE)
    return [t for t in said if named.search(t) and "download" in t.lower()]


def _burst(tg: FakeTelegram, chat: JSON, ana: JSON) -> tuple[list[int], str]:
    """Ana sends the photos; every download of the FAILING-th answers 500. Their message ids
    and the failing file's id."""
    sent, failing = [], ""
    for n in range(1, PHOTOS + 1):
        photo = tg.send_photo(chat, ana, jpeg(n), media_group_id="lisbon")
        if n == FAILING:
            failing = str(photo["photo"][-1]["file_id"])
            tg.fail_download(failing, mode="500", times=10_000)
        sent.append(int(photo["message_id"]))
    return sent, failing


def _failed_at_the_fake(tg: FakeTelegram, file_id: str) -> bool:
    """Whether the bot tried to download the file (and got the fake's 500)."""
    paths = {
        c.result["file_path"]
        for c in tg.calls("getFile")
        if c.params.get("file_id") == file_id and c.result
    }
    return bool(paths) and any(path in paths for path in tg.downloads())


async def _told(tg: FakeTelegram, chat_id: int) -> None:
    """Wait until the burst is acknowledged with every photo received and the failure named."""
    await tg.wait_for(lambda: _acknowledged(tg, chat_id) == PHOTOS, timeout=TIMEOUT)
    await tg.wait_for(lambda: _naming_the_failure(texts(tg, chat_id)), timeout=TIMEOUT)


def _story() -> dict[str, Any]:
    return {
        "title": "Lisbon",
        "intro": "Trams and tiles.",
        "sections": [{"heading": "Trams", "text": "Yellow trams.", "media": [1, 2]}],
        "closing": CLOSING,
    }


def _check(
    tg: FakeTelegram,
    gemini: FakeGemini,
    store: Harness,
    chat_id: int,
    sent: list[int],
    failing: str,
) -> None:
    """One acknowledgement, the failure named once, the four others stored, /story saw four."""
    assert _failed_at_the_fake(tg, failing)  # the fault did happen
    every = ever_said(tg, chat_id)  # deleted messages too: the traveller saw them
    assert len([t for t in every if t.startswith("📸")]) == 1, every
    assert _acknowledged(tg, chat_id) == PHOTOS
    assert len(_naming_the_failure(every)) == 1, every
    rows = store.rows("SELECT chat_message_id, source_sha256, model_sha256 FROM items")
    kept = {int(r[0]): (r[1], r[2]) for r in rows}
    failed = sent[FAILING - 1]
    for message in (m for m in sent if m != failed):
        assert message in kept, f"photo message {message} is not in the album"
        source, model = kept[message]
        assert store.blob_bytes(str(source)) is not None, f"photo {message}'s file is lost"
        assert store.blob_bytes(str(model)) is not None, f"photo {message}'s copy is lost"
    if failed in kept:  # an item may stand for it, but no file was ever stored for it
        assert kept[failed][0] is None or store.blob_bytes(str(kept[failed][0])) is None
    [request] = gemini.generate_requests()
    assert len(image_parts(request)) == PHOTOS - 1  # /story saw the four photos
    assert len([t for t in every if CLOSING in t]) == 1


@pytest.mark.timeout(300)  # a few waits of TIMEOUT on a busy machine
async def test_one_process_names_a_failed_download_once_and_keeps_the_rest(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    store = Harness(tg, gemini, data)  # reads the bot's SQLite file and DATA_DIR/media
    bot = BotProcess(tg, gemini, data, tmp_path / "bot.log")
    await bot.start()
    await tg.wait_for(lambda: tg.polling, timeout=TIMEOUT)
    ana = tg.user(user_id=ANA, first_name="Ana", language_code="en")
    chat = tg.private_chat(ana)
    sent, failing = _burst(tg, chat, ana)
    await _told(tg, chat["id"])

    gemini.enqueue(Reply(json=_story()))
    tg.send_command(chat, ana, "/story")
    await tg.wait_for(lambda: any(CLOSING in t for t in texts(tg, chat["id"])), timeout=TIMEOUT)
    assert await bot.stop() == 0, bot.output()[-3000:]
    _check(tg, gemini, store, chat["id"], sent, failing)


@pytest.mark.timeout(300)  # a few waits of TIMEOUT on a busy machine
async def test_two_replicas_name_a_failed_download_once_and_keep_the_rest(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, postgres_url: str, s3_bucket: Bucket
) -> None:
    media = s3_bucket.env("media/")
    store = Harness(tg, gemini, tmp_path / "reader", DATABASE_URL=postgres_url, **media)
    replicas = Replicas(tg, gemini, tmp_path, 2, database_url=postgres_url, media_env=media)
    async with replicas:
        ana = tg.user(user_id=ANA, first_name="Ana", language_code="en")
        chat = tg.private_chat(ana)
        sent, failing = _burst(tg, chat, ana)
        deliveries = await replicas.deliver(order="round-robin")
        assert {d.replica for d in deliveries} == {0, 1}  # the burst landed on both
        await _told(tg, chat["id"])

        gemini.enqueue(Reply(json=_story()))
        tg.send_command(chat, ana, "/story")
        await replicas.deliver(order="round-robin")
        await tg.wait_for(lambda: any(CLOSING in t for t in texts(tg, chat["id"])), timeout=TIMEOUT)
        codes = await replicas.stop()
    assert codes == [0, 0], replicas.output(0)[-3000:] + replicas.output(1)[-3000:]
    _check(tg, gemini, store, chat["id"], sent, failing)
