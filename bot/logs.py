"""Logging set-up that never lets the bot token or the API key out.

A Telegram file URL contains the bot token, and library tracebacks can quote URLs, so secrets
are masked in the final formatted text (message, arguments and traceback alike).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

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
    """Log to stderr through the redacting formatter; keep chatty HTTP loggers quiet."""
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
