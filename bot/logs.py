"""Logging set-up that never lets the bot token or the API key out.

A Telegram file URL contains the bot token, and library tracebacks can quote URLs (PTB's
InvalidToken even quotes the whole token), so secrets are masked in the final formatted text
(message, arguments and traceback alike). What does not come through a logger on its own is
sent through one (warnings, uncaught exceptions in any thread, unraisable ones), and in the
service the standard streams themselves mask what is written to them (a library's print).
"""

from __future__ import annotations

import io
import logging
import re
import sys
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import TextIO, cast

MASK = "***"
# Any bot token, even one that is not ours (a misconfiguration should not leak either).
_TOKEN_PATTERN = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}\b")


class RedactingFormatter(logging.Formatter):
    """A formatter that masks the given secrets and anything shaped like a bot token."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


def redact(text: str, secrets: Iterable[str]) -> str:
    """The text with every secret, and every token-shaped string, masked."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return _TOKEN_PATTERN.sub(MASK, text)


def setup_logging(level: str, secrets: Iterable[str]) -> None:
    """Log to stderr through the redacting formatter; warnings and uncaught exceptions too."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", list(secrets))
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request URL at INFO, and Bot API URLs carry the token; boto3 logs every
    # request's signed headers at DEBUG.
    for name in (
        "httpx", "httpcore", "aiohttp.access", "apscheduler",
        "boto3", "botocore", "s3transfer", "urllib3",
    ):  # fmt: skip
        logging.getLogger(name).setLevel(logging.WARNING)
    # procrastinate's worker logs each job's start and end at INFO with its arguments (a whole
    # update: the user's own words); the job queue logs a short line of its own instead.
    logging.getLogger("procrastinate.worker").setLevel(logging.WARNING)
    # PTB logs json.loads's traceback with every answer that is not JSON (a proxy's HTML error
    # page while Telegram is away): its message already says all there is.
    logging.getLogger("telegram.request.BaseRequest").addFilter(_without_traceback)
    logging.captureWarnings(True)
    _route_uncaught_exceptions()


def _without_traceback(record: logging.LogRecord) -> bool:
    record.exc_info = None
    record.exc_text = None
    return True


def _route_uncaught_exceptions() -> None:
    """Tracebacks Python would print itself go through the (redacting) log instead."""
    log = logging.getLogger("bot")

    def on_uncaught(
        kind: type[BaseException], error: BaseException, tb: TracebackType | None
    ) -> None:
        log.critical("Uncaught exception", exc_info=(kind, error, tb))

    def on_thread(args: threading.ExceptHookArgs) -> None:
        if issubclass(args.exc_type, SystemExit):
            return  # as threading's own hook: a thread may end itself this way
        name = args.thread.name if args.thread is not None else "?"
        exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
        log.error("Uncaught exception in thread %s", name, exc_info=exc_info)

    def on_unraisable(args: sys.UnraisableHookArgs) -> None:
        exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
        log.error("%s: %r", args.err_msg or "Exception ignored in", args.object, exc_info=exc_info)

    sys.excepthook = on_uncaught
    threading.excepthook = on_thread
    sys.unraisablehook = on_unraisable


class RedactingStream(io.TextIOBase):
    """A text stream that masks secrets in whole lines before passing them on."""

    def __init__(self, stream: TextIO, secrets: Iterable[str]) -> None:
        self.stream = stream
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)
        self._pending = ""  # the start of a line: a secret may continue in the next write
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        """Pass on every completed line, masked; keep the unfinished one."""
        with self._lock:
            lines, newline, self._pending = (self._pending + text).rpartition("\n")
            if newline:
                self.stream.write(redact(lines + newline, self.secrets))
        return len(text)

    def flush(self) -> None:
        """Pass on the unfinished line too, masked."""
        with self._lock:
            if self._pending:
                self.stream.write(redact(self._pending, self.secrets))
                self._pending = ""
        self.stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.stream.encoding


def redact_standard_streams(secrets: Iterable[str]) -> None:
    """Mask secrets in anything written to sys.stdout and sys.stderr from now on."""
    secrets = list(secrets)
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, RedactingStream):
            stream = stream.stream
        setattr(sys, name, cast(TextIO, RedactingStream(stream, secrets)))
