"""The project's own exceptions, in one place.

    PhotostoryError
    ├── ConfigError              a setting is missing or invalid (start-up only)
    │   └── TokenRejected        Telegram answered 401/404 to TELEGRAM_BOT_TOKEN
    ├── TelegramUnreachable      start-up gave up reaching Telegram (TELEGRAM_CONNECT_ATTEMPTS)
    ├── UserError                something the user can act on; `str(e)` is one plain sentence
    │   ├── MediaRejected        a file we cannot take (type, size, corrupt, decompression bomb)
    │   ├── AlbumFull            the album reached its size cap
    │   ├── NothingToDo          empty album, nothing to undo, unknown album...
    │   └── BudgetExceeded       the user's daily token budget is spent
    └── ModelError               the model call failed; the album and history are unchanged
        ├── ModelUnavailable     429, 5xx, timeout, network: try again later
        ├── ModelBlocked         safety / recitation / other block: rephrase
        ├── ModelEmptyAnswer     the model answered nothing
        └── MediaNotProcessed    the model cannot process some of the request's files (the
                                 File API's FAILED state): nothing was asked; the conversation
                                 leaves them out and asks again

Handlers turn `UserError` and `ModelError` into a sentence in the chat; anything else is
logged with its traceback and the user gets a short apology.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class PhotostoryError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(PhotostoryError):
    """A setting is missing or invalid; the message says how to fix it.

    `problems` holds each problem as one sentence (the message lists them all)."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems) or (message,)


class TokenRejected(ConfigError):
    """Telegram rejected the bot token at start-up; the message says where to get one."""


class TelegramUnreachable(PhotostoryError):
    """Start-up tried TELEGRAM_CONNECT_ATTEMPTS times and Telegram never answered."""


class UserError(PhotostoryError):
    """An error the user can act on; the message is shown to them as is."""


class MediaRejected(UserError):
    """A file that cannot join an album. `reason` is a short machine-readable code."""

    def __init__(self, message: str, reason: str = "unsupported") -> None:
        super().__init__(message)
        self.reason = reason


class AlbumFull(UserError):
    """The album already holds as many items as allowed."""


class NothingToDo(UserError):
    """The request has nothing to act on (empty album, nothing to undo...)."""


class BudgetExceeded(UserError):
    """The user's daily token budget is spent."""


class ModelError(PhotostoryError):
    """A model call failed. The message is one plain sentence for the user."""


class ModelUnavailable(ModelError):
    """The model service is busy, failing or too slow; the same request can be retried."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelBlocked(ModelError):
    """The model refused to answer (safety, recitation...). `reason` is the API's reason."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ModelEmptyAnswer(ModelError):
    """The model returned no text."""


class MediaNotProcessed(ModelError):
    """The model service cannot process some files (File API state FAILED); nothing was asked.

    `refused` maps each such file's key (its sha256) to the service's reason."""

    def __init__(self, message: str, refused: Mapping[str, str]) -> None:
        super().__init__(message)
        self.refused = dict(refused)
