"""Media messages are taken in before received files are processed, in each process.

A burst of albums is two kinds of work in one interpreter: each media message's update job
(number the file, count it, have the acknowledgement due) and each file's ingest job
(download, decode, hash, store, shrink). The first is a few quick database trips; the second
is CPU and, with a bucket, much Python in worker threads, which holds the interpreter's lock
between those trips. Run side by side, every update job waits for the lock at each trip, and
the acknowledgements of the last chats come seconds late.

So an ingest job starts only when this process has handled no media message for a short
`quiet` moment, and never waits longer than `longest` (files are not starved by a long
stream of messages). Only media messages count: a /story or a question, which may wait for
the files themselves, never holds them up. Nothing here is shared between processes, and
nothing needs to be: each process only orders its own work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

QUIET = 0.2  # seconds without a media message before files are processed again
LONGEST = 5.0  # the longest an ingest job waits for the intake to go quiet


class IntakeFirst:
    """Counts the media messages being taken in; lets file processing wait for a lull."""

    def __init__(self, quiet: float = QUIET, longest: float = LONGEST) -> None:
        self.quiet = quiet
        self.longest = longest
        self._taking = 0
        self._last = -float("inf")  # time.monotonic() of the last message taken in
        self._lull = asyncio.Event()
        self._lull.set()

    @contextlib.contextmanager
    def taking(self) -> Iterator[None]:
        """Around the handling of one media message."""
        self._taking += 1
        self._lull.clear()
        try:
            yield
        finally:
            self._taking -= 1
            self._last = time.monotonic()
            if self._taking == 0:
                self._lull.set()

    async def lull(self) -> None:
        """Wait until no media message is being taken in and none was for `quiet` seconds,
        or `longest` seconds at most."""
        deadline = time.monotonic() + self.longest
        while True:
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                return
            if self._taking:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await self._lull.wait()
                continue
            quiet_for = now - self._last
            if quiet_for >= self.quiet:
                return
            await asyncio.sleep(min(self.quiet - quiet_for, left))
