"""Experiments on the unchanged bot: `python -m bench --experiment NAME[,NAME]`.

With --experiment, the benchmark puts this folder on the bot's PYTHONPATH, so Python imports
this module at start-up and it patches the named behaviour in before the bot runs. The product
code stays as it is. (The fixes first tried here, progress signals outside the rate limiter,
streamed downloads, two malloc arenas and the inbox on its own connection, are now in the bot.)

Each weighs one part of the bot by taking it away; none is a proposal:
- no-rate-limiter: the rate limiter lets every request through (an upper bound on what flood
  control costs).
- no-places: no offline place lookup (to weigh the place index).
- inbox-off: updates are not journaled in received_updates: each one's job is deferred alone,
  and a second delivery is not recognised (to weigh the journal's cost).
- copies-wait: model copies are not made while any file is being received (taken in by its
  update, or downloaded and checked by its ingest job): the ingest job ends without its copy,
  made later in the background (to weigh what making them during a burst costs the
  acknowledgements).
- switch-interval: the GIL is handed over every 0.5 ms instead of 5 ms (does the event loop
  wait for worker threads to let go of it?).
- two-workers: asyncio's default thread pool has two threads, one per core, instead of six
  (do more threads than cores only add GIL contention?).
- many-workers: 24 threads instead of six (do files wait for a thread while others wait on
  the network, as with media in a bucket?).
- no-language-read: the chat's language is not read before the handlers (the writer's
  Telegram language is spoken): to weigh that read transaction, one per update.
- media-workers-4: four files downloaded and checked at once per process (MEDIA queue
  workers), instead of one per core (two on a 2-core machine).
- classic-story: /story goes the classic way (RICH_STORY=false: messages and albums instead of
  one rich message), for the story's requests and time before and after.

Two more only measure, to find where time goes; they write JSON lines to BENCH_DIAG_FILE:
- loop-lag: how late a 10 ms sleep of the event loop wakes up, every 10 ms.
- db-wait: for every database call, how long it waited for the SQLite connection's thread and
  how long it then held it.
- job-steps: on PostgreSQL, how long each step of a job takes: procrastinate's fetch, the
  task function, its finish, each read and write of ours (with the storage function calling).
- s3-calls: every call the bot makes to the bucket (its operation and how long it took).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

NAMES = {n.strip() for n in os.environ.get("BENCH_EXPERIMENT", "").split(",") if n.strip()}


def _no_rate_limiter() -> None:
    from telegram.ext import AIORateLimiter

    async def process_request(self: Any, callback: Any, args: Any, kwargs: Any, endpoint: str,
                              data: Any, rate_limit_args: Any) -> Any:  # fmt: skip
        return await callback(*args, **kwargs)

    AIORateLimiter.process_request = process_request  # type: ignore[method-assign]


def _no_places() -> None:
    import bot.service.intake

    bot.service.intake._with_place = lambda facts: facts


_lines: list[str] = []


def _diag_writer() -> Any:
    import atexit
    import json

    if not _lines:
        path = Path(os.environ.get("BENCH_DIAG_FILE", "bench-diag.jsonl"))

        def save() -> None:
            # Every process of a run (the bot, the echo bots) adds its own lines.
            with path.open("a") as out:
                out.writelines(line + "\n" for line in _lines[1:])

        atexit.register(save)
        _lines.append("")  # registered
    pid = os.getpid()
    return lambda record: _lines.append(json.dumps({"pid": pid, **record}))


def _loop_lag() -> None:
    import asyncio
    import time

    from telegram.ext import Application

    write = _diag_writer()
    start = Application.start

    async def watch() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            write({"t": time.time(), "lag": time.monotonic() - before - 0.01})

    async def started(self: Any) -> None:
        await start(self)
        self.bench_lag_task = asyncio.get_running_loop().create_task(watch())

    Application.start = started  # type: ignore[method-assign]


def _caller() -> str:
    """The first storage function (other than the database itself) on the stack."""
    import sys

    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if "/storage/" in name and not name.endswith("/database.py"):
            return f"{Path(name).stem}.{frame.f_code.co_qualname}"
        frame = frame.f_back  # type: ignore[assignment]
    return "?"


def _db_wait() -> None:
    import time

    import storage.sql.database

    write = _diag_writer()
    submit = storage.sql.database.SqliteDatabase._submit

    async def timed(self: Any, fn: Any, args: Any, writes: Any) -> Any:
        who = _caller()
        asked = time.monotonic()
        began: list[float] = []
        ended: list[float] = []

        def run(*inner: Any) -> Any:
            began.append(time.monotonic())
            try:
                return fn(*inner)
            finally:
                ended.append(time.monotonic())

        try:
            return await submit(self, run, args, writes)
        finally:
            if began and ended:
                held = ended[0] - began[0]
                write({"t": time.time(), "wait": began[0] - asked, "held": held, "who": who})

    storage.sql.database.SqliteDatabase._submit = timed  # type: ignore[method-assign,assignment]


def _job_steps() -> None:
    import time

    from procrastinate import manager

    import storage.jobs.postgres
    import storage.sql.database

    write = _diag_writer()

    def timed(owner: Any, name: str, step: str, who: bool = False) -> None:
        original = getattr(owner, name)

        async def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            began = time.monotonic()
            caller = _caller() if who else None
            result: Any = None
            try:
                result = await original(self, *args, **kwargs)
                return result
            finally:
                record = {"t": time.time(), "step": step, "d": time.monotonic() - began}
                if caller:
                    record["who"] = caller
                if step == "fetch":
                    record["found"] = result is not None
                write(record)

        setattr(owner, name, run)

    timed(manager.JobManager, "fetch_job", "fetch")
    timed(storage.jobs.postgres._FencedJobManager, "finish_job", "finish")
    timed(storage.sql.database.PostgresDatabase, "write", "write", who=True)
    timed(storage.sql.database.PostgresDatabase, "read", "read", who=True)
    register = storage.jobs.postgres.PostgresQueue.register

    def registered(self: Any, task: Any) -> None:
        function = task.function

        async def run(attempt: Any, args: Any) -> None:
            began = time.monotonic()
            try:
                await function(attempt, args)
            finally:
                took = time.monotonic() - began
                write({"t": time.time(), "step": f"task {task.name}", "d": took})

        register(self, type(task)(task.name, run, task.attempts, task.retry_wait))

    storage.jobs.postgres.PostgresQueue.register = registered  # type: ignore[method-assign]


def _inbox_off() -> None:
    from sqlalchemy import Connection

    import storage.sql.inbox_store
    from storage.jobs import Job

    store = storage.sql.inbox_store.SqlInboxStore

    def defer_only(self: Any, conn: Connection, update_id: int, job: Job) -> bool:
        self.jobs.defer_in(conn, job)
        return True

    async def nothing(self: Any, update_id: int) -> None:
        return None

    async def never(self: Any, update_id: int) -> bool:
        return False

    store._receive_new = defer_only  # type: ignore[method-assign]
    store.done = nothing  # type: ignore[method-assign]
    store.handled = never  # type: ignore[method-assign]


def _copies_wait() -> None:
    import asyncio
    import contextvars

    import bot.service.albums
    import bot.service.copies

    receiving = 0
    idle = asyncio.Event()
    idle.set()
    service = bot.service.albums.AlbumService
    copies = bot.service.copies.ModelCopies
    make = copies.make
    background: set[asyncio.Task[None]] = set()

    def counted(step: Any) -> Any:
        async def run(self: Any, *args: Any) -> Any:
            nonlocal receiving
            receiving += 1
            idle.clear()
            try:
                return await step(self, *args)
            finally:
                receiving -= 1
                if not receiving:
                    idle.set()

        return run

    async def make_when_idle(self: Any, item: Any) -> None:
        while not idle.is_set():
            await idle.wait()
            await asyncio.sleep(0.2)  # between two files of a burst
        await make(self, item)

    async def make_later(self: Any, item: Any, final: bool = True) -> None:
        # Outside the ingest job's context: the job is over when the copy is made.
        del final  # no job to try again: a copy that fails is marked (make's default)
        task = asyncio.create_task(make_when_idle(self, item), context=contextvars.Context())
        background.add(task)
        task.add_done_callback(background.discard)

    service.receive = counted(service.receive)  # type: ignore[method-assign]
    service._fetch_and_process = counted(service._fetch_and_process)  # type: ignore[method-assign]
    copies.make = make_later  # type: ignore[method-assign]


def _switch_interval() -> None:
    import sys

    sys.setswitchinterval(0.0005)


def _workers(count: int) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from telegram.ext import Application

    start = Application.start

    async def started(self: Any) -> None:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(count))
        await start(self)

    Application.start = started  # type: ignore[method-assign]


def _two_workers() -> None:
    _workers(2)


def _many_workers() -> None:
    _workers(24)


def _media_workers(count: int) -> None:
    import bot.telegram.app

    def media_workers() -> int:
        return count

    bot.telegram.app.media_workers = media_workers


def _four_media_workers() -> None:
    _media_workers(4)


def _classic_story() -> None:
    os.environ["RICH_STORY"] = "false"  # read by the bot's settings after this module ran


def _no_language_read() -> None:
    import bot.service.languages
    from bot.i18n import negotiate

    async def for_chat(self: Any, chat_id: int, telegram_code: str | None) -> Any:
        code = negotiate(telegram_code)
        return bot.service.languages.ChatLanguage(speaks=code, writes=telegram_code)

    bot.service.languages.LanguageService.for_chat = for_chat  # type: ignore[method-assign]


def _s3_calls() -> None:
    import time

    from botocore.client import BaseClient

    write = _diag_writer()
    original = getattr(BaseClient, "_make_api_call")  # noqa: B009 (botocore's private method)

    def call(self: Any, operation_name: str, api_params: Any) -> Any:
        began = time.monotonic()
        try:
            return original(self, operation_name, api_params)
        finally:
            write({"t": time.time(), "s3": operation_name, "d": time.monotonic() - began})

    setattr(BaseClient, "_make_api_call", call)  # noqa: B010


PATCHES = {
    "no-rate-limiter": _no_rate_limiter,
    "no-places": _no_places,
    "inbox-off": _inbox_off,
    "copies-wait": _copies_wait,
    "switch-interval": _switch_interval,
    "two-workers": _two_workers,
    "many-workers": _many_workers,
    "loop-lag": _loop_lag,
    "db-wait": _db_wait,
    "job-steps": _job_steps,
    "classic-story": _classic_story,
    "no-language-read": _no_language_read,
    "s3-calls": _s3_calls,
    "media-workers-4": _four_media_workers,
}

for _name in sorted(NAMES):
    if _name in PATCHES:
        PATCHES[_name]()
