"""What a run does (the full or the quick plan) and one bot process with fresh fakes around it."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bench import media
from bench.chats import Traveller, Watcher
from bench.process import Memory, Process, environment, wait_polling
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import API_KEY, TOKEN

RESULTS = Path(__file__).resolve().parent / "results"
EXPERIMENTS_DIR = Path(__file__).resolve().parent / "experiments"
EXPERIMENTS = (
    "no-rate-limiter", "no-places", "inbox-off", "copies-wait", "switch-interval", "two-workers",
    "many-workers",
    "loop-lag", "db-wait", "job-steps", "classic-story", "no-language-read", "s3-calls",
    "media-workers-4",
)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """The sizes of every scenario."""

    name: str
    chats: int  # 1: chats at once
    album: int  # 1: photos per album
    questions: int  # 1: follow-ups per chat
    big_photos: int  # 2: photos sent as files
    big_kind: media.PhotoKind
    video_seconds: int  # 2: the big video
    video_bytes: int
    sample_big: int  # 3: how many big photos to measure beside the real ones
    resend_photos: int  # 4: the album's photos (the real ones included) ...
    resend_questions: int  # ... and follow-ups
    isolation_questions: int  # 5: chat B's questions per batch
    slow_call: float  # 5: seconds chat A's model call takes
    startup_runs: int  # 6
    debounce: float  # ACK_DEBOUNCE_SECONDS, set explicitly
    # How long a chat stays quiet after an acknowledgement before a traveller trusts it counts
    # everything: longer than the debounce plus one file's processing, which may edit it.
    ack_quiet: float


FULL = Plan(
    name="full",
    chats=50,
    album=10,
    questions=3,
    big_photos=100,
    big_kind=media.TWELVE_MP,
    video_seconds=10,
    video_bytes=int(19.5 * 2**20),  # under the cloud Bot API's 20 MB download limit
    sample_big=10,
    resend_photos=50,
    resend_questions=3,
    isolation_questions=10,
    slow_call=5.0,
    startup_runs=5,
    debounce=1.0,
    ack_quiet=2.0,
)
QUICK = Plan(
    name="quick",
    chats=5,
    album=10,
    questions=3,
    big_photos=10,
    big_kind=media.TWO_MP,
    video_seconds=3,
    video_bytes=2 * 2**20,
    sample_big=3,
    resend_photos=10,
    resend_questions=2,
    isolation_questions=3,
    slow_call=2.0,
    startup_runs=1,
    debounce=0.3,  # the quick run judges nothing: shorter waits
    ack_quiet=0.8,
)


@dataclass(frozen=True)
class Context:
    """The plan and where the run writes its logs (and profiles, with --profile)."""

    plan: Plan
    results: Path
    profile: bool = False
    profile_burst: int = 0  # scenario 8: seconds profiled from the burst's start
    experiments: tuple[str, ...] = ()  # proposed fixes patched into the bot at start-up

    @property
    def debounce(self) -> float:
        return self.plan.debounce


class Session:
    """Fresh fakes on loopback, a fresh DATA_DIR, and `python -m bot` (or the echo) polling them."""

    def __init__(
        self,
        ctx: Context,
        name: str,
        module: str = "bot",
        **env: str,
    ) -> None:
        self.ctx = ctx
        self.name = name
        self.module = module
        self.extra_env = env
        self.tg = FakeTelegram(token=TOKEN)
        self.gemini = FakeGemini(api_key=API_KEY)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self.data_dir = self.workdir / "data"
        self.process: Process | None = None
        self.watcher = Watcher(self.tg)
        self.ready_at = 0.0  # when the first getUpdates arrived
        self.exit_code: int | None = None
        self.cpu_seconds = 0.0  # CPU the last process used, read just before it was stopped
        self.wall_seconds = 0.0  # and how long it ran
        self._next_user = 10_000

    async def __aenter__(self) -> Session:
        await self.tg.start()
        await self.gemini.start()
        await self.watcher.__aenter__()
        await self.spawn()
        return self

    async def spawn(self) -> float:
        """Start the process and wait until it polls; return the seconds that took."""
        env = environment(self.tg, self.gemini, self.data_dir, self.ctx.debounce, **self.extra_env)
        if self.ctx.experiments:
            env["BENCH_EXPERIMENT"] = ",".join(self.ctx.experiments)
            env["PYTHONPATH"] = os.pathsep.join([str(EXPERIMENTS_DIR), env["PYTHONPATH"]])
        index = len(self.tg.requests)
        profile = None
        if self.ctx.profile:
            profile = self.ctx.results / "profiles" / f"{self.name}-{time.strftime('%H%M%S')}.txt"
        self.process = Process(
            self.module,
            env,
            cwd=self.workdir,
            log_path=self.ctx.results / "logs" / f"{self.name}.log",
            profile_to=profile,
        )
        await self.process.start()
        self.ready_at = await wait_polling(self.tg, index, self.process)
        return self.ready_at - self.process.started_at

    async def stop_process(self) -> int:
        """Stop the process (SIGTERM); raise if it did not exit cleanly."""
        if self.process is None:
            return 0
        process, self.process = self.process, None
        if process.memory is not None:
            self.cpu_seconds = process.memory.cpu_seconds()
            self.wall_seconds = time.monotonic() - process.started_at
        code = await process.stop()
        self.exit_code = code
        if code != 0:
            raise RuntimeError(f"python -m {self.module} exited with {code}:\n{process.log_tail()}")
        return code

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.process is not None:
                process, self.process = self.process, None
                self.exit_code = await process.stop()
        finally:
            await self.watcher.__aexit__(None, None, None)
            await self.tg.stop()
            await self.gemini.stop()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def traveller(self, name: str | None = None) -> Traveller:
        """A new user in a private chat with the bot."""
        self._next_user += 1
        return Traveller(self.tg, self.watcher, self._next_user, name or f"User{self._next_user}")

    @property
    def memory(self) -> Memory:
        """The process's memory watcher."""
        assert self.process is not None and self.process.memory is not None
        return self.process.memory

    @property
    def db_path(self) -> Path:
        return self.data_dir / "photostory.sqlite3"

    async def stored(self, timeout: float = 180.0) -> None:
        """Wait until every file the bot received is downloaded, checked and stored with its
        model copy (the acknowledgement counts a file once received, before any of that)."""
        deadline = time.monotonic() + timeout
        while True:
            conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
            try:
                (left,) = conn.execute(UNSTORED).fetchone()
            finally:
                conn.close()
            if not left:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{left} file(s) still not stored after {timeout:.0f} s")
            await asyncio.sleep(0.05)


# Files received and not yet stored, and stored ones whose model copy is still to be made.
UNSTORED = (
    "SELECT (SELECT COUNT(*) FROM arrivals)"
    " + (SELECT COUNT(*) FROM items WHERE model_ready = 0 AND model_failed IS NULL)"
)
