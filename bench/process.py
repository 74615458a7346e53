"""A bot (or the echo bot) in its own process, started like production, its memory watched.

The bot runs as `python -m bot` configured only by environment variables, so its memory is its
own (psutil samples the RSS; /proc/<pid>/status gives the kernel's high-water mark VmHWM) and
the fakes' CPU does not share its event loop.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import psutil

from bot.config import declared
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import bot_env

ROOT = Path(__file__).resolve().parent.parent
# The harness's fast test timings; the benchmark runs the product's defaults instead.
TEST_TIMINGS = (  # and other test-only settings: the bench runs the product's
    "RICH_STORY",
    "GEMINI_BACKOFF_SECONDS",
    "GEMINI_CACHE_TTL_SECONDS",
    "GEMINI_FILE_POLL_SECONDS",
    "GEMINI_FILE_TIMEOUT_SECONDS",
    "GEMINI_TIMEOUT_SECONDS",
    "DRAFT_INTERVAL_SECONDS",
    "EDIT_INTERVAL_SECONDS",
)
SAMPLE_EVERY = 0.01  # seconds between RSS samples
# Variables the bot reads (declared in bot/config.py) and the Gemini SDK's own (GOOGLE_*): the
# shell's values must not leak into a run.
SETTING_NAMES = frozenset(name for _, d in declared() for name in (d.env, *d.also))


def environment(
    tg: FakeTelegram, gemini: FakeGemini, data_dir: Path, debounce: float, **extra: str
) -> dict[str, str]:
    """The bot's environment: the fakes, everyone allowed, the product's timings otherwise."""
    env = {k: v for k, v in os.environ.items() if not _is_setting(k)}
    env.update(bot_env(tg, gemini, data_dir))
    for name in TEST_TIMINGS:
        env.pop(name, None)
    env.update(
        ALLOWED_USERS="*",
        ACK_DEBOUNCE_SECONDS=f"{debounce:g}",
        LOG_LEVEL="INFO",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    env.update(extra)
    return env


def _is_setting(name: str) -> bool:
    return name in SETTING_NAMES or name.startswith("GOOGLE_")


def attach_profiler(pid: int, output: Path, seconds: int = 0) -> subprocess.Popen[bytes]:
    """py-spy samples every thread of `pid` (the image work runs in worker threads) until it
    exits, or for `seconds`, into `output` (collapsed stacks, read by `python -m bench.profile`).
    """
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--rate", "250", "--threads",
         "--format", "raw", "--output", str(output), "--nonblocking",
         *(["--duration", str(seconds)] if seconds else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


class Memory:
    """Samples a process's RSS in a thread (the event loop may be busy) and reads its VmHWM."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            process = psutil.Process(self.pid)
            while not self._stop.is_set():
                self.samples.append((time.monotonic(), process.memory_info().rss))
                self._stop.wait(SAMPLE_EVERY)
        except psutil.Error:
            return  # the process is gone

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(timeout=2)

    def rss(self) -> int:
        """The RSS right now, in bytes."""
        return int(psutil.Process(self.pid).memory_info().rss)

    def peak(self, since: float = 0.0, until: float = float("inf")) -> int:
        """The highest sampled RSS in a time window (monotonic seconds)."""
        return max((rss for t, rss in list(self.samples) if since <= t <= until), default=0)

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used so far."""
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def high_water_mark(self) -> int:
        """The kernel's VmHWM: the largest RSS the process ever had, in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc/<pid>/status")


class Process:
    """`python -m <module>` with an environment; stopped with SIGTERM like a host stops it."""

    def __init__(
        self,
        module: str,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        profile_to: Path | None = None,
    ) -> None:
        self.module = module
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.profile_to = profile_to
        self.process: asyncio.subprocess.Process | None = None
        self.memory: Memory | None = None
        self.started_at = 0.0
        self._log: IO[bytes] | None = None
        self._profiler: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        """Spawn the process and start watching its memory."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.started_at = time.monotonic()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module,
            cwd=self.cwd, env=self.env, stdout=self._log, stderr=self._log,
        )  # fmt: skip
        self.memory = Memory(self.process.pid)
        if self.profile_to is not None:
            self._attach_profiler(self.process.pid, self.profile_to)

    def _attach_profiler(self, pid: int, output: Path) -> None:
        self._profiler = attach_profiler(pid, output)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for a clean exit (kill after `timeout`); return the exit code."""
        process = self.process
        if process is None:
            return 0
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self.memory is not None:
            self.memory.stop()
        if self._profiler is not None:
            try:
                self._profiler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._profiler.kill()
        if self._log is not None:
            self._log.close()
        assert process.returncode is not None
        return process.returncode

    def log_tail(self, lines: int = 20) -> str:
        """The end of the process's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


async def wait_polling(
    tg: FakeTelegram, since: int, process: Process, timeout: float = 30
) -> float:
    """Wait for the first getUpdates after request index `since`; return when it arrived."""
    deadline = time.monotonic() + timeout
    while True:
        for call in tg.requests[since:]:
            if call.method.lower() == "getupdates":
                return call.time
        if process.process is not None and process.process.returncode is not None:
            raise RuntimeError(
                f"python -m {process.module} exited with {process.process.returncode}:\n"
                + process.log_tail()
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"python -m {process.module} did not poll within {timeout} s")
        await asyncio.sleep(0.002)
