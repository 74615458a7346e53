"""How google-genai failures are recognised: transient or not, stale file, retry delay."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import httpx
from google.genai import errors as genai_errors

TRANSIENT_CODES = frozenset({408, 429, 500, 502, 503, 504})


def transport_errors() -> tuple[type[BaseException], ...]:
    """Exceptions the SDK's transports raise for timeouts and broken connections."""
    return (
        TimeoutError,
        asyncio.TimeoutError,
        aiohttp.ClientError,
        httpx.HTTPError,
        ConnectionError,
    )


def is_timeout(exc: BaseException) -> bool:
    """A transport timeout (the model took longer than GEMINI_TIMEOUT_SECONDS)."""
    return isinstance(exc, TimeoutError | asyncio.TimeoutError | httpx.TimeoutException)


def is_transient(exc: genai_errors.APIError) -> bool:
    """Worth retrying: rate limits and server-side trouble."""
    return exc.code in TRANSIENT_CODES


def is_stale_file(exc: genai_errors.APIError) -> bool:
    """A request referenced an upload the API no longer has (expired after 48 h, or deleted)."""
    if exc.code not in (403, 404):
        return False
    message = (exc.message or "").lower()
    return "file" in message or exc.status in ("PERMISSION_DENIED", "NOT_FOUND")


def is_file_not_ready(exc: genai_errors.APIError) -> bool:
    """A request referenced a video the API is still processing."""
    return exc.code == 400 and (
        exc.status == "FAILED_PRECONDITION"
        or "not in an active state" in (exc.message or "").lower()
    )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def retry_delay(exc: genai_errors.APIError) -> float | None:
    """The delay a 429 asks for (google.rpc.RetryInfo.retryDelay, e.g. "17s"), if any."""
    details = exc.details
    if isinstance(details, dict):
        details = details.get("error", details).get("details")
    if not isinstance(details, list):
        return None
    for entry in details:
        if isinstance(entry, dict) and "retryDelay" in entry:
            match = _DURATION.match(str(entry["retryDelay"]))
            if match:
                return float(match.group(1))
    return None


def is_stale_cache(exc: genai_errors.APIError) -> bool:
    """A request named a cachedContents entry the API no longer holds (expired or deleted)."""
    message = (exc.message or "").lower().replace(" ", "")
    return exc.code in (403, 404) and "cachedcontent" in message
