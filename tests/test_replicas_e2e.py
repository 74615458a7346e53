"""Two `python -m bot` replicas in webhook mode on one PostgreSQL and one bucket.

The fake Telegram delivers each update to one replica, round-robin (tests/replicas.py), as a
proxy in front of the replicas would; a chat's updates go one after the other, as Telegram
sends them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.fakes.gemini_api import FakeGemini, Reply, image_parts
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import ANA, acks, pg_rows, said, texts
from tests.image_files import jpeg
from tests.replicas import Replicas
from tests.s3_server import Bucket

LEASE = 2.0  # seconds before a dead replica's chats pass on (the product's default is 15)
TIMEOUT = 60.0


def _story(count: int) -> dict[str, Any]:
    return {
        "title": "Lisbon",
        "intro": "Trams and tiles.",
        "sections": [{"heading": "Trams", "text": "Yellow trams.", "media": [1, count]}],
        "closing": "And then we flew home.",
    }


def _held_job(database_url: str, position: int) -> int | None:
    """The ingest job of the album's photo `position` while a worker runs it, if one does."""
    rows = pg_rows(
        database_url,
        "SELECT id FROM procrastinate_jobs WHERE task_name = 'ingest' AND status = 'doing'"
        " AND (args->>'position')::int = ?",
        (position,),
    )
    return int(rows[0]["id"]) if rows else None


def _runner(replicas: Replicas, job_id: int) -> int | None:
    """Which replica started the job (the job queue logs each job it starts), if one did."""
    started = f"Job {job_id} (ingest) started"
    return next((i for i in range(len(replicas)) if started in replicas.output(i)), None)


async def test_a_burst_spread_over_two_replicas_is_one_album_answered_in_order(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, postgres_url: str, s3_bucket: Bucket
) -> None:
    replicas = Replicas(
        tg, gemini, tmp_path, 2, database_url=postgres_url, media_env=s3_bucket.env("media/")
    )
    async with replicas:
        ana = tg.user(user_id=ANA, first_name="Ana")
        chat = tg.private_chat(ana)
        for n in range(10):
            tg.send_photo(chat, ana, jpeg(n), media_group_id="lisbon")
        deliveries = await replicas.deliver(order="round-robin")
        assert [d.replica for d in deliveries] == [0, 1] * 5  # the album landed on both
        await tg.wait_for(lambda: said(tg, chat["id"], "10 photos"), timeout=TIMEOUT)

        # Renames spread over both replicas take effect in the order sent.
        for name in ("Porto", "Faro", "Lisbon 2026"):
            tg.send_command(chat, ana, f"/rename {name}")
        await replicas.deliver(order="round-robin")
        await tg.wait_for(lambda: said(tg, chat["id"], "Lisbon 2026"), timeout=TIMEOUT)
        renamed = [t for t in texts(tg, chat["id"]) if "is now called" in t]
        assert renamed == [
            "✏️ The album is now called Porto.",
            "✏️ The album is now called Faro.",
            "✏️ The album is now called Lisbon 2026.",
        ]
        # One acknowledgement for the burst, with the full count, whoever received each photo.
        assert len(acks(tg, chat["id"])) == 1
        assert "10 photos" in acks(tg, chat["id"])[0]
        assert len(tg.calls("sendMessage")) == 4  # the acknowledgement and three renames

        gemini.enqueue(Reply(json=_story(10)))
        tg.send_command(chat, ana, "/story")
        await replicas.deliver(order="round-robin")
        await tg.wait_for(lambda: gemini.generate_requests() != [], timeout=TIMEOUT)
        [request] = gemini.generate_requests()
        assert len(image_parts(request)) == 10  # /story saw every photo
        items = pg_rows(postgres_url, "SELECT position, chat_message_id FROM items")
        assert sorted(r["position"] for r in items) == list(range(1, 11))
        assert tg.calls("getUpdates") == []
        codes = await replicas.stop()
    assert codes == [0, 0], replicas.output(0) + replicas.output(1)


async def test_a_replica_killed_mid_burst_loses_no_photo_and_the_other_answers(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, postgres_url: str, s3_bucket: Bucket
) -> None:
    replicas = Replicas(
        tg, gemini, tmp_path, 2, database_url=postgres_url, media_env=s3_bucket.env("media/"),
        JOB_STALL_SECONDS=f"{LEASE:g}",
    )  # fmt: skip
    async with replicas:
        ana = tg.user(user_id=ANA, first_name="Ana")
        chat = tg.private_chat(ana)
        slow = asyncio.Event()
        for n in range(6):
            sent = tg.send_photo(chat, ana, jpeg(n), media_group_id="first")
            if n == 3:
                tg.hold_download(sent["photo"][-1]["file_id"], slow)
        await replicas.deliver(order="round-robin")
        # Every photo Telegram got a 200 for is in PostgreSQL, numbered (and may have been
        # acknowledged already). The replica whose worker downloads photo 4 is stuck on it,
        # and is killed then, mid-burst.
        await tg.wait_for(lambda: len(tg.downloads()) == 6, timeout=TIMEOUT)
        held = await tg.wait_for(lambda: _held_job(postgres_url, 4), timeout=TIMEOUT)
        await tg.wait_for(lambda: _runner(replicas, held) is not None, timeout=TIMEOUT)
        holder = _runner(replicas, held)
        assert holder is not None
        survivor = 1 - holder
        assert await replicas.kill(holder) == -9
        slow.set()

        for n in range(6, 10):
            tg.send_photo(chat, ana, jpeg(n), media_group_id="second")
        gemini.enqueue(Reply(text="The yellow tram is in photo 3."))
        tg.send_text(chat, ana, "Which photo shows the tram?")
        await replicas.deliver(to=[survivor])
        await tg.wait_for(
            lambda: said(tg, chat["id"], "The yellow tram is in photo 3."), timeout=TIMEOUT
        )
        await tg.wait_for(
            lambda: any("10 photos" in t for t in acks(tg, chat["id"])), timeout=TIMEOUT
        )
        # The dead replica's job was taken over by the survivor (stalled-job recovery).
        assert f"Job {held} (ingest) started" in replicas.output(survivor)

        items = pg_rows(postgres_url, "SELECT position, chat_message_id FROM items")
        assert sorted(r["position"] for r in items) == list(range(1, 11))  # none lost
        assert len({r["chat_message_id"] for r in items}) == 10  # none stored twice
        # No update was handled twice: no photo counted as sent again, one question answered.
        assert not any("already in the album" in t for t in acks(tg, chat["id"]))
        answers = [t for t in texts(tg, chat["id"]) if t == "The yellow tram is in photo 3."]
        assert len(answers) == 1
        assert len(gemini.generate_requests()) == 1
        # Every update marked handled: the mark commits with its job's end, just after the
        # job's last message went out.
        pending = "SELECT update_id FROM received_updates WHERE handled_at IS NULL"
        await tg.wait_for(lambda: pg_rows(postgres_url, pending) == [], timeout=TIMEOUT)
        codes = await replicas.stop()
    assert codes[survivor] == 0, replicas.output(survivor)


async def test_an_update_the_database_cannot_take_is_refused_with_503_and_taken_when_resent(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, postgres_url: str, s3_bucket: Bucket
) -> None:
    replicas = Replicas(
        tg, gemini, tmp_path, 1, database_url=postgres_url, media_env=s3_bucket.env("media/")
    )
    async with replicas:
        ana = tg.user(user_id=ANA, first_name="Ana")
        chat = tg.private_chat(ana)
        # The database refuses to journal anything (as when it is full, or read-only).
        pg_rows(postgres_url, REFUSE_INBOX)
        tg.send_photo(chat, ana, jpeg(1))
        [update] = tg.take_updates()
        [refused] = await replicas.deliver(updates=[update], check=False)
        assert refused.status == 503  # Telegram sends it again later
        assert pg_rows(postgres_url, "SELECT id FROM items") == []

        pg_rows(postgres_url, "DROP TRIGGER refuse ON received_updates")
        [taken] = await replicas.deliver(updates=[update])
        assert taken.status == 200
        await tg.wait_for(lambda: said(tg, chat["id"], "1 photo"), timeout=TIMEOUT)
        # Acknowledged once received; stored by its ingest job just after.
        stored = lambda: len(pg_rows(postgres_url, "SELECT id FROM items")) == 1  # noqa: E731
        await tg.wait_for(stored, timeout=TIMEOUT)
        assert len(acks(tg, chat["id"])) == 1
        codes = await replicas.stop()
    assert codes == [0], replicas.output(0)


REFUSE_INBOX = """
CREATE OR REPLACE FUNCTION refuse_inbox() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'no room to journal'; END $$ LANGUAGE plpgsql;
CREATE TRIGGER refuse BEFORE INSERT ON received_updates FOR EACH ROW EXECUTE FUNCTION refuse_inbox();
"""
