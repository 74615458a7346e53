"""tests/replicas.py: two webhook replicas on one PostgreSQL database and one bucket."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import ANA, BOB, said
from tests.replicas import Replicas
from tests.s3_server import Bucket


async def test_two_replicas_serve_health_and_answer_what_they_are_given(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, postgres_url: str, s3_bucket: Bucket
) -> None:
    replicas = Replicas(
        tg, gemini, tmp_path, 2, database_url=postgres_url, media_env=s3_bucket.env("media/")
    )
    async with replicas:
        async with aiohttp.ClientSession() as session:
            for port in replicas.ports:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    assert response.status == 200
                    assert (await response.json()) == {"status": "ok"}
        ana = tg.user(user_id=ANA, first_name="Ana")
        bob = tg.user(user_id=BOB, first_name="Bob")
        chats = [tg.private_chat(ana), tg.private_chat(bob)]
        tg.send_command(chats[0], ana, "/help")
        tg.send_command(chats[1], bob, "/help")
        deliveries = await replicas.deliver(order="round-robin")
        assert [d.replica for d in deliveries] == [0, 1]  # one update each
        assert [d.chat_id for d in deliveries] == [c["id"] for c in chats]
        assert tg.pending_updates() == []
        await tg.wait_for(
            lambda: all(said(tg, c["id"], "Send me the photos") for c in chats), timeout=30
        )
        assert tg.calls("getUpdates") == []  # webhook mode: nobody polls
        codes = await replicas.stop()
    assert codes == [0, 0], replicas.output(0) + replicas.output(1)
    for index in range(2):
        assert "Stopped cleanly" in replicas.output(index)
        assert replicas.secret not in replicas.output(index)
