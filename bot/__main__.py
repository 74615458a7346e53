"""`python -m bot`: read the settings, then poll Telegram (or serve its webhook) until stopped."""

from __future__ import annotations

import asyncio
import ctypes
import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dotenv import load_dotenv

from bot.config import Settings
from bot.errors import ConfigError, TelegramUnreachable, TokenRejected
from bot.logs import redact_standard_streams, setup_logging

log = logging.getLogger("bot")
M_ARENA_MAX = -8  # glibc's mallopt parameter number
# Worker threads with media in a bucket (measured in `make bench` scenario 8: two replicas'
# album acknowledgement p95 12.8 s with six, 9.9 s with 24 on this 2-core machine).
BUCKET_WORKERS = 16
# Exit statuses (README "When Telegram cannot be reached"): 0 stopped by a signal; 2 the
# configuration is wrong; 3 Telegram rejected the token; 4 gave up reaching Telegram
# (TELEGRAM_CONNECT_ATTEMPTS). Different from 1 (a crash), so a supervisor can tell them apart.
EXIT_CONFIG = 2
EXIT_TOKEN_REJECTED = 3
EXIT_UNREACHABLE = 4


def main() -> int:
    """Run the bot; exit 2, 3 or 4 with one readable message when it cannot start."""
    _limit_malloc_arenas()
    # A .env file in the working directory fills in what the environment does not set.
    load_dotenv(Path.cwd() / ".env", override=False)
    try:
        settings = Settings.from_env()
    except ConfigError as e:
        print(f"photostory cannot start.\n{e}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level, settings.secrets)
    redact_standard_streams(settings.secrets)
    # `kill -USR1 PID`: every thread's stack to stderr, from C, so also when the event loop is
    # stuck (code locations only: nothing of the data, so no secret).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    from bot.telegram.app import build_application  # after logging: imports may log
    from bot.telegram.serving import PollingServing, Serving

    app = build_application(settings)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    if settings.media_bucket is not None:
        # Worker threads then also wait on the bucket (each photo's upload, each cache miss):
        # with asyncio's six, files queue for a thread while others wait on the network.
        loop.set_default_executor(ThreadPoolExecutor(BUCKET_WORKERS, thread_name_prefix="asyncio"))
    log.info("Starting; data in %s", settings.data_dir.resolve())
    serving: Serving
    if settings.webhook_url is not None:
        from bot.telegram.webhook import WebhookServing

        serving = WebhookServing(app, settings)
    else:
        serving = PollingServing(app, settings)
    _stop_on_signals(loop, serving.stop)
    try:
        serving.run(loop)
    except TokenRejected as e:  # waiting would not help: a sentence, no traceback, no retry
        print(f"photostory cannot start.\n{e}", file=sys.stderr)
        return EXIT_TOKEN_REJECTED
    except TelegramUnreachable as e:
        print(f"photostory cannot start.\n{e}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except ConfigError as e:  # found while opening (the media bucket): a sentence, no traceback
        print(f"photostory cannot start.\n{e}", file=sys.stderr)
        return EXIT_CONFIG
    log.info("Stopped cleanly")
    return 0


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (not on Windows), else asyncio's own.

    Under a burst a replica's event loop is its limit, and every trip to PostgreSQL is a few
    of its callbacks (psycopg waits on its socket with `add_reader`): libuv's loop made a
    replica's acknowledgements of a 50-album burst 6-9% sooner (docs/performance.md)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _limit_malloc_arenas() -> None:
    """Keep glibc from giving every worker thread its own malloc arena.

    Image decoding and uploads run in many threads; with an arena each, memory they free stays
    with the thread (measured: 550 MB peak during a 100-photo story instead of about 360 MB).
    Same as MALLOC_ARENA_MAX=2, but applies however the bot is started.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: nothing to tune
    libc.mallopt(M_ARENA_MAX, 2)


def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
    """First SIGTERM/SIGINT: finish what is in flight, then stop. A second one: stop now.

    PTB's own handler raises SystemExit on every signal, so a second signal in the middle of a
    graceful shutdown would abandon it with the database thread still alive and the process
    would never exit. Updates not finished by then are replayed from the inbox on restart.

    The second signal is caught by a plain handler, not the event loop's: that one runs only
    while the loop runs, and the shutdown runs its steps one `run_until_complete` at a time,
    then closes the loop (which hands the signal back to its default); a signal that came
    between two steps, or a step that holds the loop, would leave the process running. A plain
    handler runs whenever the main thread runs Python code.
    """

    def on_signal(number: int) -> None:
        log.info(
            "%s received: finishing what is in flight, then stopping", signal.Signals(number).name
        )
        for other in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(other)
            signal.signal(other, _exit_now)
        stop()

    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, on_signal, number)


def _exit_now(number: int, frame: object) -> None:
    """A second SIGTERM/SIGINT: exit without waiting (written straight to stderr: a signal
    handler must not wait for the logging lock)."""
    name = signal.Signals(number).name
    os.write(2, f"Second {name}: exiting without waiting\n".encode())
    os._exit(128 + number)


if __name__ == "__main__":
    sys.exit(main())
