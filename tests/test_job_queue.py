"""The job queue's contract (storage.jobs.JobQueue), the same for every runner in
tests/job_queues.py: order per lock, retries in place, queueing locks, delays, transactional
defers, jobs of a dead process run again, given-up jobs reported once, independent queues, a
graceful stop.

Tasks record what they do in a `Log`; tests wait on conditions with a timeout, never a sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Connection, update

from storage.jobs import CHAT, GAVE_UP_ATTEMPTS, JSON, MEDIA, Attempt, Job, Task, current_attempt
from storage.sql.database import Rollback
from storage.sql.tables import job_turns
from tests.job_queues import RUNNERS, Runner

WAIT = 20.0  # seconds: a limit far above any machine's, for waits that must succeed


@pytest.fixture(params=list(RUNNERS))
async def runner(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runner]:
    async with RUNNERS[request.param](tmp_path) as runner:
        yield runner


class Log:
    """What tasks did, in order: (event, name, attempt number)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []
        self.running: Counter[str] = Counter()  # running jobs per lock
        self.most: Counter[str] = Counter()  # the most that ever ran at once per lock
        self.given_up: list[tuple[str, JSON]] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.times: dict[str, float] = {}  # when each job last started (time.time())
        self._changed = asyncio.Condition()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until `condition` holds, looking after each event; fail after WAIT seconds."""
        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(condition)

    async def _note(self, event: str, job: str, number: int) -> None:
        self.events.append((event, job, number))
        async with self._changed:
            self._changed.notify_all()

    def started(self, name: str) -> list[int]:
        return [n for event, job, n in self.events if event == "start" and job == name]

    def ended(self, name: str) -> bool:
        return any(event == "end" and job == name for event, job, _ in self.events)

    def order(self, event: str = "start") -> list[str]:
        return [job for e, job, _ in self.events if e == event]

    def gate(self, name: str) -> asyncio.Event:
        """An event a job named `name` waits for before it ends."""
        return self.gates.setdefault(name, asyncio.Event())

    async def tell(self, task: str, args: JSON) -> None:
        self.given_up.append((task, args))

    def task(self, name: str = "t", attempts: int = 3, retry_wait: float = 0.05) -> Task:
        """A task that records its runs; args: name, lock (for counting), fail_first (how
        many attempts raise), gated (waits for its gate), partner (waits until it started)."""

        async def run(attempt: Attempt, args: JSON) -> None:
            job, lock = args["name"], args.get("lock", "")
            assert current_attempt() is attempt
            self.times[job] = time.time()
            await self._note("start", job, attempt.number)
            self.running[lock] += 1
            self.most[lock] = max(self.most[lock], self.running[lock])
            try:
                if "partner" in args:  # proves the two run side by side
                    await self.until(lambda: bool(self.started(args["partner"])))
                if args.get("gated"):
                    await self.gate(job).wait()
                if attempt.number < args.get("fail_first", 0):
                    raise RuntimeError(f"{job} fails attempt {attempt.number}")
            finally:
                self.running[lock] -= 1
            await self._note("end", job, attempt.number)

        return Task(name, run, attempts=attempts, retry_wait=retry_wait)


def job(
    name: str,
    lock: str | None = None,
    queueing_lock: str | None = None,
    delay: float = 0.0,
    queue: str = CHAT,
    **args: object,
) -> Job:
    """A job of the task "t", its lock also passed in its args (for the log)."""
    args = {"name": name, "lock": lock or "", **args}
    return Job("t", args, lock=lock, queueing_lock=queueing_lock, delay=delay, queue=queue)


async def test_jobs_of_a_lock_run_one_at_a_time_in_order_and_locks_side_by_side(
    runner: Runner,
) -> None:
    log = Log()
    queue = await runner.start([log.task()])

    def defer(conn: Connection) -> None:  # all at once: the runner sees them all waiting
        for n in range(6):  # interleaved; each waits for its twin of the other lock to start
            queue.defer_in(conn, job(f"a{n}", "chat:a", partner=f"b{n}"))
            queue.defer_in(conn, job(f"b{n}", "chat:b", partner=f"a{n}"))

    await runner.db.write(defer)
    assert await queue.wait_idle(WAIT)
    assert [j for j in log.order() if j[0] == "a"] == [f"a{n}" for n in range(6)]
    assert [j for j in log.order() if j[0] == "b"] == [f"b{n}" for n in range(6)]
    assert log.most == {"chat:a": 1, "chat:b": 1}
    assert len(log.order("end")) == 12


def turned(name: str, lock: str, keep: float = WAIT) -> Job:
    return replace(job(name, lock), keep_turn=keep)


async def test_a_locks_jobs_deferred_close_together_keep_its_turn(runner: Runner) -> None:
    # Two chats' bursts come interleaved; one worker takes the first chat's burst before the
    # second's, each chat in its order. A job without a turn goes first.
    log = Log()
    queue = await runner.start([log.task()], workers={CHAT: 0})  # nothing runs yet

    def burst(conn: Connection) -> None:
        for name, lock in [("a0", "chat:a"), ("b0", "chat:b"), ("a1", "chat:a")]:
            queue.defer_in(conn, turned(name, lock))
        queue.defer_all_in(conn, [turned("b1", "chat:b"), job("plain", "chat:c")])

    await runner.db.write(burst)
    await runner.db.write(lambda conn: queue.defer_in(conn, turned("a2", "chat:a")))
    await runner.stop()
    queue = await runner.start([log.task()], workers={CHAT: 1})
    assert await queue.wait_idle(WAIT)
    assert log.order() == ["plain", "a0", "a1", "a2", "b0", "b1"]


async def test_a_lapsed_turn_goes_behind_the_turns_taken_since(runner: Runner) -> None:
    log = Log()
    queue = await runner.start([log.task()], workers={CHAT: 0})
    await queue.defer(turned("a0", "chat:a", keep=1.0))
    # A minute goes by (the turn's end moved back a minute: no waiting in a test).
    minute = update(job_turns).where(job_turns.c.lock == "chat:a")
    await runner.db.write(lambda conn: conn.execute(minute.values(until=job_turns.c.until - 60)))
    await queue.defer(turned("b0", "chat:b"))
    await queue.defer(turned("a1", "chat:a"))  # a new burst of chat a: after chat b's
    await queue.defer(turned("b1", "chat:b"))
    await runner.stop()
    queue = await runner.start([log.task()], workers={CHAT: 1})
    assert await queue.wait_idle(WAIT)
    assert log.order() == ["a0", "b0", "b1", "a1"]


async def test_a_failing_job_is_retried_in_its_place(runner: Runner) -> None:
    log = Log()
    queue = await runner.start([log.task(retry_wait=0.2)])
    for n in range(4):
        await queue.defer(job(f"j{n}", "chat:1", fail_first=1 if n == 1 else 0))
    assert await queue.wait_idle(WAIT)
    assert [(j, n) for e, j, n in log.events if e == "start"] == [
        ("j0", 0), ("j1", 0), ("j1", 1), ("j2", 0), ("j3", 0)
    ]  # fmt: skip
    assert log.order("end") == ["j0", "j1", "j2", "j3"]
    assert log.given_up == []


async def test_a_queueing_lock_refuses_a_second_waiting_job_but_not_one_while_one_runs(
    runner: Runner,
) -> None:
    log = Log()
    queue = await runner.start([log.task()])
    ack = "ack:1"
    assert await queue.defer(job("ack1", "chat:1", gated=True, queueing_lock=ack))
    await log.until(lambda: bool(log.started("ack1")))
    assert await queue.defer(
        job("ack2", "chat:1", queueing_lock=ack)
    )  # one may wait while one runs
    assert not await queue.defer(job("ack3", "chat:1", queueing_lock=ack))  # but only one
    log.gate("ack1").set()
    assert await queue.wait_idle(WAIT)
    assert log.order("end") == ["ack1", "ack2"]
    assert await queue.defer(job("ack4", "chat:1", queueing_lock=ack))  # none waits any more
    assert await queue.wait_idle(WAIT)
    assert log.order("end") == ["ack1", "ack2", "ack4"]


async def test_a_job_retried_while_one_waits_under_its_queueing_lock_takes_its_place(
    runner: Runner,
) -> None:
    # An acknowledgement job fails while the chat's next one waits (deferred while it ran). It
    # waits again in that one's place, with its arguments and its own id (what it sent is known
    # to its next try): one run more, not two.
    log = Log()
    queue = await runner.start([log.task()])
    ack = "ack:1"
    assert await queue.defer(job("ack1", ack, gated=True, fail_first=1, queueing_lock=ack))
    await log.until(lambda: bool(log.started("ack1")))
    assert await queue.defer(job("ack2", ack, queueing_lock=ack))
    log.gate("ack1").set()
    assert await queue.wait_idle(WAIT)
    assert [(j, n) for e, j, n in log.events if e == "start"] == [("ack1", 0), ("ack2", 1)]
    assert log.order("end") == ["ack2"]
    assert log.given_up == []


async def test_a_delayed_job_starts_after_jobs_deferred_later_without_delay(
    runner: Runner,
) -> None:
    log = Log()
    queue = await runner.start([log.task()])
    deferred = time.time()
    await queue.defer(job("late", delay=2.0))
    await queue.defer(job("soon"))
    assert await queue.wait_idle(WAIT)
    assert log.order() == ["soon", "late"]
    assert log.times["late"] >= deferred + 2.0 - 0.05  # a lower bound: load only adds to it


async def test_sooner_brings_a_waiting_job_forward(runner: Runner) -> None:
    log = Log()
    queue = await runner.start([log.task()])
    assert await queue.defer(job("tomorrow", queueing_lock="k", delay=86400))
    assert not await runner.db.write(queue.sooner_in, "other")  # none waits under that key
    assert await runner.db.write(queue.sooner_in, "k", 0.0)
    await log.until(lambda: log.ended("tomorrow"))


async def test_a_job_deferred_in_a_transaction_exists_only_if_it_commits(runner: Runner) -> None:
    log = Log()
    queue = await runner.start([log.task()])

    def undone(conn: Connection) -> None:
        assert queue.defer_in(conn, job("undone"))
        raise Rollback()

    def kept(conn: Connection) -> None:
        assert queue.defer_in(conn, job("kept"))

    await runner.db.write(undone)
    await runner.db.write(kept)
    assert await queue.wait_idle(WAIT)
    assert log.order("end") == ["kept"]


async def test_a_job_whose_process_died_runs_again_as_its_second_attempt(
    runner: Runner,
) -> None:
    log = Log()
    queue = await runner.start([log.task()])
    await queue.defer(job("j", "chat:1", gated=True))
    await queue.defer(job("next", "chat:1"))
    await log.until(lambda: bool(log.started("j")))
    await runner.die()
    log.gate("j").set()
    queue = await runner.start([log.task()])
    assert await queue.wait_idle(WAIT)
    assert [(j, n) for e, j, n in log.events if e == "end"] == [("j", 1), ("next", 0)]
    assert log.given_up == []


async def test_a_job_that_killed_its_process_too_often_is_given_up(runner: Runner) -> None:
    log = Log()
    queue = await runner.start([log.task(attempts=1)], given_up=log.tell)
    await queue.defer(job("j", gated=True, n=7))
    await log.until(lambda: bool(log.started("j")))
    await runner.die()
    queue = await runner.start([log.task(attempts=1)], given_up=log.tell)
    assert await queue.wait_idle(WAIT)
    assert log.started("j") == [0]
    assert log.given_up == [("t", {"name": "j", "lock": "", "gated": True, "n": 7})]


async def test_a_job_failing_every_attempt_is_given_up_once_with_its_args(
    runner: Runner,
) -> None:
    log = Log()
    queue = await runner.start([log.task(attempts=3, retry_wait=0.01)], given_up=log.tell)
    await queue.defer(job("j", "chat:1", fail_first=99))
    await queue.defer(job("after", "chat:1"))
    assert await queue.wait_idle(WAIT)
    assert log.started("j") == [0, 1, 2]
    assert log.given_up == [("t", {"name": "j", "lock": "chat:1", "fail_first": 99})]
    assert log.order("end") == ["after"]  # the lock moves on after a given-up job


async def test_a_job_of_an_unknown_task_is_given_up_and_the_others_run(runner: Runner) -> None:
    log = Log()
    queue = await runner.start([log.task()], given_up=log.tell)
    await queue.defer(Job("gone", {"x": 1}, lock="chat:1"))
    await queue.defer(job("next", "chat:1"))
    assert await queue.wait_idle(WAIT)
    assert log.given_up == [("gone", {"x": 1})]
    assert log.order("end") == ["next"]


async def test_the_telling_of_a_job_given_up_outlives_the_process_that_gave_it_up(
    runner: Runner,
) -> None:
    """The telling is a job kept with the failure: a process stopped while telling leaves it
    to the next start, which tells."""
    log = Log()
    telling = asyncio.Event()

    async def tell_and_hang(task: str, args: JSON) -> None:
        telling.set()
        await asyncio.Event().wait()  # the process is stopped before it is done

    queue = await runner.start([log.task(attempts=1)], given_up=tell_and_hang)
    await queue.defer(job("j", "chat:1", fail_first=99))
    async with asyncio.timeout(WAIT):
        await telling.wait()
    await runner.die()
    queue = await runner.start([log.task(attempts=1)], given_up=log.tell)
    assert await queue.wait_idle(WAIT)
    assert log.started("j") == [0]
    assert log.given_up == [("t", {"name": "j", "lock": "chat:1", "fail_first": 99})]


async def test_a_telling_that_fails_is_tried_again_and_a_telling_given_up_tells_nothing(
    runner: Runner,
) -> None:
    log = Log()
    calls: list[str] = []

    async def tell(task: str, args: JSON) -> None:
        calls.append(str(args["name"]))
        if args["name"] == "j" and calls.count("j") == 1:
            raise RuntimeError("Telegram is away for a moment")
        if args["name"] == "k":
            raise RuntimeError("never told")

    queue = await runner.start([log.task(attempts=1)], given_up=tell)
    await queue.defer(job("j", fail_first=99))
    await queue.defer(job("k", fail_first=99))
    assert await queue.wait_idle(WAIT)
    assert calls.count("j") == 2  # the second try told
    assert calls.count("k") == GAVE_UP_ATTEMPTS  # tried as often as a telling is, then left


async def test_a_stuck_media_job_does_not_hold_up_chat_jobs(runner: Runner) -> None:
    log = Log()
    queue = await runner.start([log.task()], workers={CHAT: 1, MEDIA: 1})
    await queue.defer(job("m1", gated=True, queue=MEDIA))
    await queue.defer(job("m2", queue=MEDIA))
    await log.until(lambda: bool(log.started("m1")))
    for n in range(3):
        await queue.defer(job(f"c{n}", queue=CHAT))
    await log.until(lambda: all(log.ended(f"c{n}") for n in range(3)))
    assert not log.started("m2")  # one media worker, busy
    log.gate("m1").set()
    assert await queue.wait_idle(WAIT)
    assert log.order("end")[-2:] == ["m1", "m2"]


async def test_stop_lets_a_running_job_finish_and_it_does_not_run_again(
    runner: Runner,
) -> None:
    log = Log()
    queue = await runner.start([log.task()])
    await queue.defer(job("j", gated=True))
    await log.until(lambda: bool(log.started("j")))
    stopping = asyncio.create_task(runner.stop(timeout=WAIT))
    for _ in range(50):  # let stop() get to waiting for the job (yields, no time passes)
        await asyncio.sleep(0)
    assert not stopping.done()
    log.gate("j").set()
    await stopping
    assert log.ended("j")
    queue = await runner.start([log.task()])
    assert await queue.wait_idle(WAIT)
    assert log.started("j") == [0]
