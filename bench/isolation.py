"""5. Isolation: chat B's questions while chat A waits seconds for the model.

Both chats have an album and a story. Chat B asks a batch of questions with A idle, another
while A's question is held by the fake Gemini (a scripted reply that takes seconds), and a
third once A is answered; B's latency is the question-to-final-answer time. The idle batches
come before and after the loaded one because B's latency grows a little with every exchange
(the whole conversation is sent each time). B pauses between questions like a person: asked
back to back, its four requests per answer fill the bot's 30-per-second AIORateLimiter
bucket within ten questions and every later request waits its turn, which is not A's doing.
"""

from __future__ import annotations

import asyncio

from bench import media
from bench.chats import Answer, Traveller, prepare_photos
from bench.report import Row, median, ms, verdict
from bench.session import Context, Session
from tests.fakes.gemini_api import Recorded, Reply, texts

SCENARIO = "5 isolation"
FACTOR = 1.2
SLOW = "slow-chat-A"
PAUSE = 0.3  # seconds B waits after an answer before asking again


async def run(ctx: Context) -> list[Row]:
    """Idle, loaded and idle again: B's latencies."""
    plan = ctx.plan
    photos = media.photos(media.COMPRESSED, 6, first=20_000)
    prepare_photos(photos)
    async with Session(ctx, "isolation") as session:
        a, b = session.traveller("Ana"), session.traveller("Bob")
        await asyncio.gather(_prepare(ctx, a, photos[:3]), _prepare(ctx, b, photos[3:]))

        idle = [await _ask(b, n) for n in range(plan.isolation_questions)]

        def slow(body: dict[str, object]) -> bool:
            found = texts(body)
            return bool(found) and SLOW in found[-1]

        session.gemini.enqueue(Reply(text="A slow answer.", delay=plan.slow_call, match=slow))
        asked = len(session.gemini.requests)
        session.tg.send_text(a.chat, a.user, f"What is the slowest photo? ({SLOW})")
        await session.gemini.wait_for(lambda: _slow_call(session.gemini.requests[asked:]), 30)
        loaded = [await _ask(b, n) for n in range(plan.isolation_questions)]
        held = _slow_call(session.gemini.requests[asked:])
        a_still_waiting = held is not None and not held.answered
        await a.watcher.wait(
            lambda: next(
                (c for c in a.watcher.calls(a.chat_id, 0, frozenset({"sendmessage"}))
                 if "slow answer" in str(c.params.get("text", "")).lower()),
                None,
            ),
            a.chat_id,
        )  # fmt: skip
        idle += [await _ask(b, n) for n in range(plan.isolation_questions)]
        await session.stop_process()

    idle_final, loaded_final = median([x.final for x in idle]), median([x.final for x in loaded])
    ratio = loaded_final / idle_final
    return [
        Row(
            SCENARIO,
            f"chat B question to answer, median: A idle / A's model call taking "
            f"{plan.slow_call:g} s",
            f"{ms(idle_final)} / {ms(loaded_final)} ({ratio:.2f}x)",
            f"<= {FACTOR:g}x",
            verdict(ratio <= FACTOR and a_still_waiting),
            {
                "idle": [x.final for x in idle],
                "loaded": [x.final for x in loaded],
                "a_still_waiting": a_still_waiting,
            },
        ),
        Row(
            SCENARIO,
            "chat B question to first reply, median: A idle / A waiting",
            f"{ms(median([x.first for x in idle]))} / {ms(median([x.first for x in loaded]))}",
        ),
    ]


async def _prepare(ctx: Context, user: Traveller, photos: list[bytes]) -> None:
    await user.acknowledged(user.send_photos(photos), ctx.plan.ack_quiet)
    await user.story("short")


def _slow_call(requests: list[Recorded]) -> Recorded | None:
    for r in requests:
        if r.kind in ("generate", "stream") and isinstance(r.body, dict):
            found = texts(r.body)
            if found and SLOW in found[-1]:
                return r
    return None


async def _ask(user: Traveller, number: int) -> Answer:
    answer = await user.ask(f"What is in photo {number % 3 + 1}? (chat B, question {number})")
    await asyncio.sleep(PAUSE)
    return answer
