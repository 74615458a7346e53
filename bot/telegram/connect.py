"""Reaching Telegram at start-up: wait out a network that is not there yet, stop at a bad token.

A service starts before its network more often than one would think (systemd ordering, a
container that comes up before DNS, a firewall being opened). Each failed try is one sentence
in the log and the next comes after a capped exponential wait (tenacity's wait_exponential), so
the bot goes on starting by itself once Telegram answers; a SIGTERM cancels the wait. A token
Telegram rejects never gets better by waiting: it ends the start-up at once as TokenRejected.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from telegram.error import InvalidToken, NetworkError, RetryAfter, TelegramError, TimedOut
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_exponential,
)

from bot.errors import TelegramUnreachable, TokenRejected

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_WAIT = 60.0  # seconds between two tries, at most
# Words for the errno values a refused or impossible connection carries.
_ERRNO_WORDS = {
    "ECONNREFUSED": "connection refused",
    "ECONNRESET": "connection reset",
    "ENETUNREACH": "network unreachable",
    "EHOSTUNREACH": "host unreachable",
    "ETIMEDOUT": "timed out",
}


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying: `attempts` tries (0: forever), waits from `first_wait` doubling."""

    attempts: int = 0
    first_wait: float = 1.0
    max_wait: float = MAX_WAIT


async def reach_telegram(
    call: Callable[[], Awaitable[T]], what: str, api_url: str, policy: RetryPolicy
) -> T:
    """Run one start-up call to the Bot API (`what`, e.g. "getMe"), retrying while it cannot
    get through; raise TokenRejected on a rejected token, TelegramUnreachable on giving up."""

    def say(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "Cannot reach Telegram at %s (%s); retrying in %s",
            api_url,
            reason(error),
            _seconds(delay),
        )

    retrying = AsyncRetrying(
        # A 429 reaches here only after the rate limiter waited it out three times.
        retry=retry_if_exception_type((NetworkError, RetryAfter)),
        wait=wait_exponential(multiplier=policy.first_wait, max=policy.max_wait),
        stop=stop_after_attempt(policy.attempts) if policy.attempts else stop_never,
        before_sleep=say,
    )

    async def attempt() -> T:  # a coroutine function: tenacity would not await a lambda's result
        return await call()

    try:
        return await retrying(attempt)
    except InvalidToken as e:
        raise TokenRejected(_rejected(e, what)) from None
    except RetryError as e:
        last = e.last_attempt.exception()
        raise TelegramUnreachable(
            f"Could not reach Telegram at {api_url} in {policy.attempts} tries "
            f"({reason(last)}); giving up (TELEGRAM_CONNECT_ATTEMPTS={policy.attempts})."
        ) from None


def reason(error: BaseException | None) -> str:
    """Why a call did not get through, in a few words (never a traceback, never a URL)."""
    causes = _chain(error)
    for cause in causes:
        if isinstance(cause, socket.gaierror):
            return "name not resolved"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS error: {cause.verify_message or 'certificate not trusted'}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause.strerror or 'handshake failed'}"
    for cause in causes:
        if isinstance(cause, TimedOut | TimeoutError):
            return "timed out"
        if isinstance(cause, OSError) and cause.errno is not None:
            name = errno.errorcode.get(cause.errno, "")
            return _ERRNO_WORDS.get(name) or cause.strerror or name or "network error"
    if isinstance(error, RetryAfter):
        return "flood control (429 Too Many Requests)"
    if isinstance(error, NetworkError) and isinstance(error.__cause__, TelegramError | None):
        # Telegram (or a proxy in front of it) answered with an HTTP error (its body unreadable).
        return f"the server answered {error.message.split('. Parsing')[0]}"
    if error is None:
        return "no answer"
    below = [c for c in causes if not isinstance(c, TelegramError)] or causes
    return str(below[0]) or type(below[0]).__name__


def _chain(error: BaseException | None) -> list[BaseException]:
    """The error and what caused it, outermost first, also where a library chose not to show
    it (httpcore raises `from None`; anyio groups its per-address errors)."""
    seen: list[BaseException] = []
    todo = [error]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend([current.__cause__, current.__context__])
        todo.extend(getattr(current, "exceptions", ()))
    return seen


def _rejected(error: InvalidToken, what: str) -> str:
    # Bot.initialize's message quotes the whole token; the answer it wraps is Telegram's own.
    wrapped = error.__cause__ if isinstance(error.__cause__, InvalidToken) else error
    answer = wrapped.message.split(". Parsing")[0]  # not the body of a page that is not JSON
    # Telegram answers 404 to a malformed token, and so does a server that is not the Bot API.
    elsewhere = ""
    if "Not Found" in answer:
        elsewhere = " (or TELEGRAM_API_URL is not a Bot API server)"
    return (
        f"Telegram rejected TELEGRAM_BOT_TOKEN ({what}: {answer}): it is mistyped or "
        f"was revoked{elsewhere}. Get the bot's current token from @BotFather in Telegram "
        "(/mybots, your bot, API Token) and set TELEGRAM_BOT_TOKEN to it."
    )


def _seconds(value: float) -> str:
    return f"{value:.3g} s"
