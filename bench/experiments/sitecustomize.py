"""Proposed fixes tried on the unchanged product: `python -m bench --experiment NAME[,NAME]`.

With --experiment, the benchmark puts this folder on the bot's PYTHONPATH, so Python imports
this module at start-up and it patches the named behaviour in before the bot runs. The product
code stays as it is; docs/performance.md quotes what each experiment changed.

- progress-unlimited: AIORateLimiter leaves sendChatAction and sendMessageDraft alone (they
  are not messages), so progress signals do not queue behind other chats' messages.
- no-rate-limiter: AIORateLimiter lets everything through (an upper bound, not a proposal).
- streamed-download: Telegram files are streamed to disk in 64 KB pieces instead of read
  whole into memory by PTB's File.download_to_drive.
- no-places: no offline place lookup (to weigh reverse_geocode's in-memory index).
- malloc-arenas: glibc keeps at most 2 malloc arenas (MALLOC_ARENA_MAX=2), so memory freed
  by the many worker threads is reused instead of each thread's arena keeping its own.
- inbox-off: updates are not journaled in the inbox (to weigh its cost; not a proposal).
- inbox-connection: the inbox journal gets its own SQLite connection (and lock), so writing an
  update down does not queue behind the album work on the shared one.

Two more only measure, to find where time goes; they write JSON lines to BENCH_DIAG_FILE:
- loop-lag: how late a 10 ms sleep of the event loop wakes up, every 10 ms.
- db-wait: for every database call, how long it waited for the one connection's lock and how
  long it then held it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

NAMES = {n.strip() for n in os.environ.get("BENCH_EXPERIMENT", "").split(",") if n.strip()}
PROGRESS = frozenset({"sendChatAction", "sendMessageDraft"})


def _limiter(exempt: frozenset[str] | None) -> None:
    from telegram.ext import AIORateLimiter

    limited = AIORateLimiter.process_request

    async def process_request(self: Any, callback: Any, args: Any, kwargs: Any, endpoint: str,
                              data: Any, rate_limit_args: Any) -> Any:  # fmt: skip
        if exempt is None or endpoint in exempt:
            return await callback(*args, **kwargs)
        return await limited(self, callback, args, kwargs, endpoint, data, rate_limit_args)

    AIORateLimiter.process_request = process_request  # type: ignore[method-assign]


def _streamed_download() -> None:
    import httpx
    from telegram import File

    whole = File.download_to_drive

    async def download_to_drive(self: File, custom_path: Any = None, **kwargs: Any) -> Path:
        if custom_path is None or not self.file_path or self.file_path.startswith("/"):
            return await whole(self, custom_path, **kwargs)
        async with httpx.AsyncClient(timeout=120) as client:
            async with client.stream("GET", self._get_encoded_url()) as response:
                response.raise_for_status()
                with open(custom_path, "wb") as out:  # noqa: ASYNC230 - as PTB writes it
                    async for piece in response.aiter_bytes(64 * 1024):
                        out.write(piece)
        return Path(custom_path)

    File.download_to_drive = download_to_drive  # type: ignore[method-assign]


def _no_places() -> None:
    import bot.service.intake

    bot.service.intake._place = lambda facts: None


_lines: list[str] = []


def _diag_writer() -> Any:
    import atexit
    import json

    if not _lines:
        path = Path(os.environ.get("BENCH_DIAG_FILE", "bench-diag.jsonl"))
        atexit.register(lambda: path.write_text("\n".join(_lines[1:]) + "\n"))
        _lines.append("")  # registered
    return lambda record: _lines.append(json.dumps(record))


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
        if "/storage/" in name and not name.endswith("/db.py"):
            return f"{Path(name).stem}.{frame.f_code.co_qualname}"
        frame = frame.f_back  # type: ignore[assignment]
    return "?"


def _db_wait() -> None:
    import asyncio
    import time

    import storage.db

    write = _diag_writer()

    class TimedLock(asyncio.Lock):
        async def acquire(self) -> Literal[True]:
            self.bench_who = _caller()
            asked = time.monotonic()
            got = await super().acquire()
            self.bench_since = time.monotonic()
            self.bench_wait = self.bench_since - asked
            return got

        def release(self) -> None:
            held = time.monotonic() - self.bench_since
            write({"t": time.time(), "wait": self.bench_wait, "held": held, "who": self.bench_who})
            super().release()

    opened = storage.db.Database.__init__

    def init(self: Any, path: Any) -> None:
        opened(self, path)
        self._lock = TimedLock()

    storage.db.Database.__init__ = init  # type: ignore[method-assign]


def _inbox_off() -> None:
    import storage.inbox

    async def nothing(self: Any, *args: Any) -> None:
        return None

    for name in ("keep", "done"):
        setattr(storage.inbox.InboxStore, name, nothing)


def _inbox_connection() -> None:
    import storage.db
    import storage.inbox

    shared = storage.inbox.InboxStore.__init__

    def init(self: Any, db: Any) -> None:
        shared(self, db)
        self.db = storage.db.Database(db.path)
        self.bench_opened = False

    def own(method: Any) -> Any:
        async def call(self: Any, *args: Any) -> Any:
            if not self.bench_opened:
                self.bench_opened = True
                await self.db.open()
            return await method(self, *args)

        return call

    storage.inbox.InboxStore.__init__ = init  # type: ignore[method-assign]
    for name in ("keep", "done", "unfinished"):
        setattr(storage.inbox.InboxStore, name, own(getattr(storage.inbox.InboxStore, name)))


def _malloc_arenas() -> None:
    import ctypes

    m_arena_max = -8  # from glibc's malloc.h
    ctypes.CDLL("libc.so.6").mallopt(m_arena_max, 2)


PATCHES = {
    "progress-unlimited": lambda: _limiter(PROGRESS),
    "no-rate-limiter": lambda: _limiter(None),
    "streamed-download": _streamed_download,
    "no-places": _no_places,
    "malloc-arenas": _malloc_arenas,
    "inbox-off": _inbox_off,
    "inbox-connection": _inbox_connection,
    "loop-lag": _loop_lag,
    "db-wait": _db_wait,
}

for _name in sorted(NAMES):
    if _name in PATCHES:
        PATCHES[_name]()
