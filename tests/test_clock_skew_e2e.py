"""One replica's clock 30 s ahead: one acknowledgement, one story (issue 21, test e).

Two webhook replicas on one PostgreSQL and one bucket; replica 1 runs under Debian's
libfaketime (installed by scripts/test-system-deps), its wall clock 30 s ahead of the other's
and of the database's. A burst of eight photos spread over both, then /story: one
acknowledgement message (edits allowed) counting eight, no photo counted twice, one story.
Whatever a replica's own clock says, it must not decide who runs a chat's work.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.gemini_api import FakeGemini, Reply, image_parts
from tests.fakes.gemini_api import texts as request_texts
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import ANA, acks, ever_said, said
from tests.image_files import jpeg
from tests.replicas import Replicas
from tests.s3_server import Bucket

SKEW = 30  # seconds replica 1's clock is ahead
PHOTOS = 8
TIMEOUT = 90.0  # on main the skewed lease alone holds the chat for ~45 s
CLOSING = "And then we flew home."  # the story's last message
QUESTION, ANSWER = "Which photo shows the tram?", "The tram is in photo 1."


def _skewed_environment() -> dict[str, str]:
    """What `faketime` sets to run a program SKEW seconds ahead (LD_PRELOAD of libfaketime,
    FAKETIME, ...): read from the tool itself, so its library is found wherever it is. The
    monotonic clock is left alone, as on a machine whose wall clock is merely wrong."""
    command = ["faketime", "-m", "--exclude-monotonic", "-f", f"+{SKEW}s", "env", "-0"]
    try:
        done = subprocess.run(command, capture_output=True, check=True, timeout=30)
    except FileNotFoundError:
        pytest.fail("faketime is not installed: run scripts/test-system-deps (apt faketime)")
    variables = dict(entry.split("=", 1) for entry in done.stdout.decode().split("\0") if entry)
    # Not FAKETIME_SHARED: it names the wrapper's shared memory, gone once `faketime` exits.
    wanted = ("LD_PRELOAD", "FAKETIME", "FAKETIME_DONT_FAKE_MONOTONIC")
    faked = {k: v for k, v in variables.items() if k in wanted}
    assert "faketime" in faked.get("LD_PRELOAD", ""), faked
    return faked


def _python_time(env: dict[str, str]) -> float:
    """time.time() in a Python child with `env` added."""
    code = "import time; print(time.time())"
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
        text=True, check=True, timeout=30,
    )  # fmt: skip
    return float(done.stdout)


def _first_log_time(log: Path) -> float:
    """When the replica's first log line says it was written, by the replica's own clock."""
    stamp = log.read_text(errors="replace").split(" INFO ", 1)[0].strip()
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _acknowledged(tg: FakeTelegram, chat_id: int) -> bool:
    return any(f"{PHOTOS} photos" in text for text in acks(tg, chat_id))


def _story() -> dict[str, Any]:
    return {
        "title": "Lisbon",
        "intro": "Trams and tiles.",
        "sections": [{"heading": "Trams", "text": "Yellow trams.", "media": [1, PHOTOS]}],
        "closing": CLOSING,
    }


@pytest.mark.timeout(300)  # a few waits of TIMEOUT on a busy machine
async def test_a_replica_with_its_clock_30s_ahead_makes_one_acknowledgement_and_one_story(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, postgres_url: str, s3_bucket: Bucket
) -> None:
    skewed = _skewed_environment()
    ahead = _python_time(skewed) - time.time()
    assert SKEW - 5 < ahead < SKEW + 5, f"faketime shifted Python's clock by {ahead:.1f} s"

    replicas = Replicas(
        tg, gemini, tmp_path, 2, database_url=postgres_url, media_env=s3_bucket.env("media/")
    )
    replicas.processes[1].env.update(skewed)
    started = time.time()
    async with replicas:
        # The replica's own log shows the clock it runs on.
        logged = _first_log_time(replicas.processes[1].log) - started
        assert SKEW - 5 < logged < SKEW + 15, f"replica 1 logs {logged:.1f} s ahead"
        assert -5 < _first_log_time(replicas.processes[0].log) - started < 15

        ana = tg.user(user_id=ANA, first_name="Ana", language_code="en")
        chat = tg.private_chat(ana)
        for n in range(PHOTOS):
            tg.send_photo(chat, ana, jpeg(n), media_group_id="lisbon")
        deliveries = await replicas.deliver(order="round-robin")
        assert [d.replica for d in deliveries] == [0, 1] * (PHOTOS // 2)  # spread over both
        await tg.wait_for(lambda: _acknowledged(tg, chat["id"]), timeout=TIMEOUT)

        gemini.enqueue(
            Reply(json=_story()),
            Reply(text=ANSWER, match=lambda body: any(QUESTION in t for t in request_texts(body))),
        )
        tg.send_command(chat, ana, "/story")
        await replicas.deliver(order="round-robin")
        await tg.wait_for(lambda: said(tg, chat["id"], CLOSING), timeout=TIMEOUT)
        # A question after the story: the chat's order puts its answer after anything either
        # replica still did for the burst or the story.
        tg.send_text(chat, ana, QUESTION)
        await replicas.deliver(order="round-robin")
        await tg.wait_for(lambda: said(tg, chat["id"], ANSWER), timeout=TIMEOUT)
        codes = await replicas.stop()

    chat_id = chat["id"]
    every_ack = [t for t in ever_said(tg, chat_id) if t.startswith("📸")]  # deleted ones too
    assert len(every_ack) == 1, every_ack  # one acknowledgement message
    assert _acknowledged(tg, chat_id)
    assert not [t for t in ever_said(tg, chat_id) if "already in the album" in t]  # none twice
    story, question = gemini.generate_requests()  # one story asked for, one question
    assert len(image_parts(story)) == PHOTOS
    assert any(QUESTION in t for t in request_texts(question))
    assert len([t for t in ever_said(tg, chat_id) if CLOSING in t]) == 1  # one story posted
    assert len([t for t in ever_said(tg, chat_id) if ANSWER in t]) == 1
    assert codes == [0, 0], replicas.output(0)[-3000:] + replicas.output(1)[-3000:]
