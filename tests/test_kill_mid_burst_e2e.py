"""SIGKILL mid-burst loses no acknowledged photo and stores none twice (issue 21, test d).

A traveller sends an album of ten photos; one photo's download is held, so the process is
surely mid-burst when it is killed: some photos acknowledged, the rest downloading or still
arriving. Every photo the acknowledgement counted before the kill is in the album then, with
its number and its blob; once a process runs again (the same one restarted on its DATA_DIR, or
the other replica), every photo sent is in the album exactly once and the last acknowledgement
counts them all.
"""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import aiohttp
import psycopg

from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import ANA, BotProcess, Harness, acks, pg_rows, said
from tests.image_files import jpeg
from tests.replicas import SECRET, SECRET_HEADER, Replicas
from tests.s3_server import Bucket

PHOTOS = 10
HELD = 4  # the fifth photo's download hangs until the process is dead
LEASE = 2.0  # seconds before a dead replica's chats pass on (the product's default is 15)
ARRIVED_BEFORE_THE_KILL = 7  # the replica's posts answered before it dies; the rest after
RESEND_SECONDS = 0.2  # how long Telegram waits before it posts an unanswered update again
TIMEOUT = 90.0
JSON = dict[str, object]


def _acknowledged(tg: FakeTelegram, chat_id: int) -> int:
    """How many photos the latest acknowledgement says the album holds (0: none yet)."""
    counts = [re.search(r"”: (\d+) photos?", text) for text in acks(tg, chat_id)]
    return int(counts[-1].group(1)) if counts and counts[-1] is not None else 0


def _album(store: Harness) -> list[tuple[int, int, str, str]]:
    """The album's items: position, the traveller's message, source and model blobs."""
    rows = store.rows(
        "SELECT position, chat_message_id, source_sha256, model_sha256 FROM items ORDER BY position"
    )
    return [(int(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in rows]


def _burst(tg: FakeTelegram, chat: JSON, ana: JSON, gate: asyncio.Event) -> tuple[list[int], str]:
    """Ana sends the album; the held photo's download waits for `gate`. The message ids and
    the held photo's file_id."""
    sent, held = [], ""
    for n in range(PHOTOS):
        photo = tg.send_photo(chat, ana, jpeg(n), media_group_id="lisbon")
        if n == HELD:
            held = str(photo["photo"][-1]["file_id"])
            tg.hold_download(held, gate)
        sent.append(int(photo["message_id"]))
    return sent, held


def _downloading(tg: FakeTelegram, file_id: str) -> bool:
    """Whether the bot asked for the file's bytes (held: it waits for them)."""
    paths = [
        c.result["file_path"]
        for c in tg.calls("getFile")
        if c.params.get("file_id") == file_id and c.result
    ]
    return any(path in tg.downloads() for path in paths)


async def _mid_burst(tg: FakeTelegram, chat_id: int, held: str) -> None:
    """Wait until some photos are acknowledged while the held one is still downloading."""
    await tg.wait_for(lambda: _acknowledged(tg, chat_id) >= 1, timeout=TIMEOUT)
    await tg.wait_for(lambda: _downloading(tg, held), timeout=TIMEOUT)


def _numbered(store: Harness) -> dict[int, int]:
    """The traveller's message of every photo the album numbered, stored (an item) or still
    to be downloaded (an arrival), with its number."""
    rows = store.rows(
        "SELECT chat_message_id, position FROM items"
        " UNION ALL SELECT chat_message_id, position FROM arrivals"
    )
    return {int(r[0]): int(r[1]) for r in rows}


async def _settled(tg: FakeTelegram, store: Harness) -> None:
    """Wait until every update received is handled and every file received is stored."""
    pending = "SELECT 1 FROM received_updates WHERE handled_at IS NULL"
    await tg.wait_for(lambda: store.rows(pending) == [], timeout=TIMEOUT)
    await store.wait_stored(timeout=TIMEOUT)


def _check_kept(store: Harness, sent: list[int], acknowledged: int) -> dict[int, int]:
    """Every acknowledged photo is in the album under the number it was given (numbers follow
    the order sent), stored or numbered to be; the numbers the traveller saw. (Their blobs are
    checked once a process runs again: a photo counted before its download ends is fetched
    again by then.)"""
    kept = _numbered(store)
    assert [kept.get(m) for m in sent[:acknowledged]] == list(range(1, acknowledged + 1))
    return {m: kept[m] for m in sent[:acknowledged]}


def _check_complete(
    tg: FakeTelegram, store: Harness, chat_id: int, sent: list[int], before: dict[int, int]
) -> None:
    """Every photo sent is in the album once, the acknowledged ones under their first number,
    and the last acknowledgement counts them all."""
    album = _album(store)
    assert [position for position, _, _, _ in album] == list(range(1, PHOTOS + 1))
    assert sorted(message for _, message, _, _ in album) == sorted(sent)  # each once
    after = {message: position for position, message, _, _ in album}
    assert {m: after[m] for m in before} == before  # the numbers the traveller saw stay
    for _, message, source, model in album:
        assert store.blob_bytes(source) is not None, f"photo {message}'s file is not stored"
        assert store.blob_bytes(model) is not None, f"photo {message}'s model copy is not stored"
    assert _acknowledged(tg, chat_id) == PHOTOS
    # No photo counted twice: a photo handled again after the kill says nothing more.
    assert not said(tg, chat_id, "already in the album")


async def test_a_process_killed_mid_burst_loses_no_acknowledged_photo(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    data, log = tmp_path / "data", tmp_path / "bot.log"
    store = Harness(tg, gemini, data)  # reads the bot's SQLite file and DATA_DIR/media
    bot = BotProcess(tg, gemini, data, log)
    await bot.start()
    await tg.wait_for(lambda: tg.polling, timeout=TIMEOUT)
    ana = tg.user(user_id=ANA, first_name="Ana", language_code="en")
    chat = tg.private_chat(ana)
    gate = asyncio.Event()
    sent, held = _burst(tg, chat, ana, gate)

    await _mid_burst(tg, chat["id"], held)
    assert await bot.stop(signal.SIGKILL) == -signal.SIGKILL
    acknowledged = _acknowledged(tg, chat["id"])  # its last edit before it died included
    before = _check_kept(store, sent, acknowledged)

    gate.set()
    again = BotProcess(tg, gemini, data, log)
    await again.start()
    await tg.wait_for(lambda: _acknowledged(tg, chat["id"]) == PHOTOS, timeout=TIMEOUT)
    await _settled(tg, store)
    assert await again.stop() == 0, again.output()
    _check_complete(tg, store, chat["id"], sent, before)


async def _post(session: aiohttp.ClientSession, urls: list[str], update: JSON) -> int:
    """POST an update as Telegram does: one not answered 200 is sent again a moment later;
    the proxy in front of the replicas passes it to the next replica when one is down.
    Returns the replica that answered."""
    attempt = 0
    while True:
        replica = attempt % len(urls)
        attempt += 1
        try:
            async with session.post(urls[replica], json=update) as response:
                await response.read()
                if response.status == 200:
                    return replica
        except aiohttp.ClientError:
            pass  # refused or cut: unanswered
        assert attempt < 600, f"update {update['update_id']} was never answered"
        await asyncio.sleep(RESEND_SECONDS)  # Telegram's pause before it resends


async def _post_all(
    session: aiohttp.ClientSession, urls: list[str], updates: list[JSON]
) -> list[int]:
    """Post a chat's updates in order, each once answered; the replicas that answered."""
    return [await _post(session, urls, update) for update in updates]


def _receiving(database_url: str) -> bool:
    """Whether a replica's journaling of a received update waits on the table's lock."""
    sql = (
        "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND query LIKE '%%received_updates%%' AND query LIKE '%%DO NOTHING RETURNING%%'"
    )  # %% is psycopg's %
    return bool(pg_rows(database_url, sql))


async def test_a_replica_killed_mid_burst_loses_no_acknowledged_photo(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, postgres_url: str, s3_bucket: Bucket
) -> None:
    media = s3_bucket.env("media/")
    store = Harness(tg, gemini, tmp_path / "reader", DATABASE_URL=postgres_url, **media)
    replicas = Replicas(
        tg, gemini, tmp_path, 2, database_url=postgres_url, media_env=media,
        JOB_STALL_SECONDS=f"{LEASE:g}",
    )  # fmt: skip
    async with replicas, aiohttp.ClientSession(headers={SECRET_HEADER: SECRET}) as session:
        ana = tg.user(user_id=ANA, first_name="Ana", language_code="en")
        chat = tg.private_chat(ana)
        gate = asyncio.Event()
        sent, held = _burst(tg, chat, ana, gate)
        updates = tg.take_updates()
        arrived = ARRIVED_BEFORE_THE_KILL
        # Telegram posts the chat's updates one after the other; replica 0 answers them.
        answered = [await _post(session, replicas.urls, update) for update in updates[:arrived]]
        assert answered == [0] * arrived
        await _mid_burst(tg, chat["id"], held)

        # The next post is under way when replica 0 dies: it is still journaling it (held
        # on the table's lock), so Telegram never gets its answer and sends it again.
        with psycopg.connect(postgres_url) as locker:
            locker.execute("LOCK TABLE received_updates IN EXCLUSIVE MODE")
            rest = asyncio.create_task(_post_all(session, replicas.urls, updates[arrived:]))
            await tg.wait_for(lambda: _receiving(postgres_url), timeout=TIMEOUT)
            assert await replicas.kill(0) == -signal.SIGKILL
            locker.rollback()
        acknowledged = _acknowledged(tg, chat["id"])  # its last edit before it died included
        before = _check_kept(store, sent, acknowledged)

        gate.set()
        answered += await asyncio.wait_for(rest, timeout=TIMEOUT)
        assert answered == [0] * arrived + [1] * (PHOTOS - arrived)  # the rest went to replica 1
        await tg.wait_for(lambda: _acknowledged(tg, chat["id"]) == PHOTOS, timeout=TIMEOUT)
        await _settled(tg, store)
        codes = await replicas.stop()
    assert codes[1] == 0, replicas.output(1)
    _check_complete(tg, store, chat["id"], sent, before)
