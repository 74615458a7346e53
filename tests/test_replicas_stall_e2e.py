"""A replica frozen while it holds a chat's work, past the takeover time, then woken: every
update handled once, the chat's order kept (issue 21, test a).

Two webhook replicas on one PostgreSQL and one bucket. Replica 0 receives the album and
/story; whichever replica runs the story's job (the holder) is frozen (SIGSTOP) while its story
request waits on Gemini. Telegram sends the chat's next question to the other, which must take
the chat's work over (the story, then the question) without the holder. The holder is then
woken (SIGCONT) with its Gemini answer waiting for it: it must find out that its work was taken
over before it posts anything.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.gemini_api import FakeGemini, Reply
from tests.fakes.gemini_api import texts as request_texts
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import ANA, acks, ever_said, pg_rows
from tests.image_files import jpeg
from tests.replicas import Replicas
from tests.s3_server import Bucket

TAKEOVER_SETTING = "JOB_STALL_SECONDS"  # how long a silent replica keeps its chats' work
TAKEOVER_SECONDS = 2.0  # short, so the test is quick (the product's default is longer)
PHOTOS = 3
TIMEOUT = 60.0
CLOSING = "And then we flew home."  # the story's last message
STORY_HELD = "The tram climbed to the castle."  # the holder's story, answered once it is frozen
STORY_TAKEN_OVER = "The river was wide and blue."  # the story the replica taking over gets
FIRST_QUESTION, FIRST_ANSWER = "Which photo shows the tram?", "The tram is in photo 1."
SECOND_QUESTION, SECOND_ANSWER = "Was it sunny?", "Yes, sunny all day."
JSON = dict[str, Any]


def _kind(body: JSON) -> str:
    """What a generate request asks: one of the two questions, else the story."""
    said = "\n".join(request_texts(body))
    if SECOND_QUESTION in said:
        return "second question"
    if FIRST_QUESTION in said:
        return "first question"
    return "story"


def _story(text: str) -> dict[str, Any]:
    return {
        "title": "Lisbon",
        "intro": text,
        "sections": [{"heading": "Trams", "text": "Yellow trams.", "media": [1, PHOTOS]}],
        "closing": CLOSING,
    }


def _requests(gemini: FakeGemini, kind: str) -> int:
    return sum(1 for body in gemini.generate_requests() if _kind(body) == kind)


def _running_the_story(replicas: Replicas, database_url: str) -> int:
    """The replica whose worker runs the /story update's job now (the job queue logs each job
    it starts)."""
    [row] = pg_rows(
        database_url,
        "SELECT id FROM procrastinate_jobs WHERE status = 'doing' AND task_name = 'update'",
    )
    started = f"Job {row['id']} (update) started"
    return next(i for i in range(len(replicas)) if started in replicas.output(i))


def _state(pid: int) -> str:
    """The process's scheduling state from /proc: "T" is stopped by a signal."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def _index(tg: FakeTelegram, chat_id: int, needle: str) -> list[int]:
    """The positions (in the order sent) of the bot's messages that say `needle` (deleted
    ones too: the traveller saw them)."""
    return [i for i, text in enumerate(ever_said(tg, chat_id)) if needle in text]


@pytest.mark.timeout(600)  # several waits of TIMEOUT on a busy machine
async def test_a_replica_frozen_past_the_takeover_and_woken_does_nothing_twice(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, postgres_url: str, s3_bucket: Bucket
) -> None:
    # The frozen replica's story request must not time out on its own while it sleeps:
    # what is tested is what it does with the answer once it wakes.
    settings = {TAKEOVER_SETTING: f"{TAKEOVER_SECONDS:g}", "GEMINI_TIMEOUT_SECONDS": "300"}
    media = s3_bucket.env("media/")
    replicas = Replicas(tg, gemini, tmp_path, 2, database_url=postgres_url, media_env=media)
    for process in replicas.processes:
        process.env.update(settings)
    async with replicas:
        ana = tg.user(user_id=ANA, first_name="Ana", language_code="en")
        chat = tg.private_chat(ana)
        for n in range(PHOTOS):
            tg.send_photo(chat, ana, jpeg(n))
        await replicas.deliver(to=[0])
        await tg.wait_for(lambda: any(f"{PHOTOS} photos" in t for t in acks(tg, chat["id"])))

        # Replica 0 asks Gemini for the story; the answer is held.
        held = asyncio.Event()
        story = lambda body: _kind(body) == "story"  # noqa: E731
        gemini.enqueue(
            Reply(json=_story(STORY_HELD), gate=held, match=story),
            Reply(json=_story(STORY_TAKEN_OVER), match=story),
            Reply(text=FIRST_ANSWER, match=lambda body: _kind(body) == "first question"),
            Reply(text=SECOND_ANSWER, match=lambda body: _kind(body) == "second question"),
        )
        tg.send_command(chat, ana, "/story")
        await replicas.deliver(to=[0])
        await gemini.wait_for(lambda: _requests(gemini, "story") == 1, timeout=TIMEOUT)

        # Whichever replica runs the story's job (any may, whoever received the update) is
        # frozen while it waits; Telegram (or the proxy) sends the next question to the other.
        holder = _running_the_story(replicas, postgres_url)
        other = 1 - holder
        frozen = replicas.pid(holder)
        os.kill(frozen, signal.SIGSTOP)
        await tg.wait_for(lambda: _state(frozen) == "T", timeout=TIMEOUT)
        tg.send_text(chat, ana, FIRST_QUESTION)
        await replicas.deliver(to=[other])
        # Past the takeover time the other replica runs the chat's work: the story (asking Gemini
        # again: the frozen replica never got its answer), then the question, in that order.
        await tg.wait_for(lambda: _index(tg, chat["id"], FIRST_ANSWER), timeout=TIMEOUT)
        await tg.wait_for(lambda: _index(tg, chat["id"], CLOSING), timeout=TIMEOUT)
        assert _state(frozen) == "T"  # all that happened while the holder slept

        # Replica 0 wakes up with its story's answer waiting in its socket.
        held.set()
        await gemini.wait_for(lambda: all(r.answered for r in gemini.requests), timeout=TIMEOUT)
        os.kill(frozen, signal.SIGCONT)
        await tg.wait_for(lambda: _state(frozen) != "T", timeout=TIMEOUT)
        # The woken replica takes the chat's next question: the chat's order puts it after
        # whatever the woken replica still does for the chat.
        tg.send_text(chat, ana, SECOND_QUESTION)
        await replicas.deliver(to=[holder])
        await tg.wait_for(lambda: _index(tg, chat["id"], SECOND_ANSWER), timeout=TIMEOUT)
        codes = await replicas.stop()

    chat_id = chat["id"]
    counts = {
        kind: _requests(gemini, kind)
        for kind in ("story", "first question", "second question")
    }  # fmt: skip
    # The story was asked for twice: by the holder (frozen before its answer came) and by the
    # replica that took over; each question once.
    assert counts == {"story": 2, "first question": 1, "second question": 1}, counts
    assert len(_index(tg, chat_id, CLOSING)) == 1, "\n---\n".join(ever_said(tg, chat_id))
    # The woken replica sent nothing of its own story: no message, draft or edit, even one
    # taken back later (it found out it was taken over before it posted, not after).
    assert not [c.method for c in tg.requests if STORY_HELD in str(c.params)]
    assert len(_index(tg, chat_id, STORY_TAKEN_OVER)) == 1
    assert len([t for t in ever_said(tg, chat_id) if t.startswith("📸")]) == 1  # one ack
    [first] = _index(tg, chat_id, FIRST_ANSWER)
    [second] = _index(tg, chat_id, SECOND_ANSWER)
    [closing] = _index(tg, chat_id, CLOSING)
    assert closing < first < second  # answered in the order asked, after the story
    assert codes == [0, 0], replicas.output(0)[-3000:] + replicas.output(1)[-3000:]
