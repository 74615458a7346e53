"""Fetching a file the traveller sent, whoever hosts it: how often to try and what to retry.

The chat side supplies one attempt (asking its server for the file and streaming it to a path);
this module decides which failures deserve another try and how long to wait between them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.errors import MediaRejected
from bot.i18n import _

log = logging.getLogger(__name__)

DOWNLOAD_ATTEMPTS = 3
FIRST_PAUSE = 0.5  # seconds before the second attempt, doubled before each one after it

Sleep = Callable[[float], Awaitable[None]]
Fetch = Callable[[Path], Awaitable[None]]  # downloads one file to a path


class DownloadInterrupted(Exception):
    """One attempt broke off (connection lost, timed out, server hiccup): another may work.

    `str(e)` is only the kind of failure: the URL of a file can hold a secret (Telegram's
    carries the bot token), so it is never part of the message or the log.
    """

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


# Broken connections and local I/O hiccups are retried; anything else (a refusal, a file too
# big, a bug) fails at once.
RETRIED: tuple[type[Exception], ...] = (DownloadInterrupted, OSError)


def retrying(
    attempt: Fetch,
    *,
    source: str,
    attempts: int = DOWNLOAD_ATTEMPTS,
    sleep: Sleep = asyncio.sleep,
) -> Fetch:
    """`attempt` tried up to `attempts` times while it breaks off; MediaRejected if none works."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")

    async def fetch(dest: Path) -> None:
        for n in range(attempts):
            try:
                await attempt(dest)
                return
            except RETRIED as e:
                # The kind of failure only: an exception's text may quote the file's URL.
                log.warning("Download failed (%s), attempt %d", _kind(e), n + 1)
                if n + 1 < attempts:
                    await sleep(FIRST_PAUSE * 2**n)
        # Raised outside the handler on purpose: no chained exception carries a URL along.
        raise MediaRejected(
            _("I could not download this file from %(source)s. Please send it again.")
            % {"source": source},
            reason="download_failed",
        )

    return fetch


def _kind(error: Exception) -> str:
    return error.kind if isinstance(error, DownloadInterrupted) else type(error).__name__
