"""The service's download retries: which failures are tried again, how often, what is logged."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import MediaRejected
from bot.service.downloads import DOWNLOAD_ATTEMPTS, DownloadInterrupted, retrying

SECRET_URL = "https://api.telegram.org/file/bot123:SECRET/photos/file_1.jpg"


class Attempts:
    """A single attempt that fails with the given errors in turn, then saves the file."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.saved: list[Path] = []

    async def __call__(self, dest: Path) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        self.saved.append(dest)


class Pauses:
    """Records the pauses instead of sleeping."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


async def test_a_broken_connection_is_tried_again(tmp_path: Path) -> None:
    attempt, pauses = Attempts(DownloadInterrupted("ReadError"), OSError("reset")), Pauses()
    await retrying(attempt, source="Telegram", sleep=pauses)(tmp_path / "f")
    assert attempt.calls == 3
    assert pauses.seconds == [0.5, 1.0]
    assert attempt.saved == [tmp_path / "f"]


async def test_after_the_last_attempt_the_file_is_rejected(tmp_path: Path) -> None:
    errors = [DownloadInterrupted("TimedOut") for _ in range(DOWNLOAD_ATTEMPTS + 1)]
    attempt, pauses = Attempts(*errors), Pauses()
    with pytest.raises(MediaRejected) as caught:
        await retrying(attempt, source="Telegram", sleep=pauses)(tmp_path / "f")
    assert attempt.calls == DOWNLOAD_ATTEMPTS == 3
    assert len(pauses.seconds) == DOWNLOAD_ATTEMPTS - 1  # no pause after the last one
    assert caught.value.reason == "download_failed"
    assert str(caught.value) == (
        "I could not download this file from Telegram. Please send it again."
    )
    assert caught.value.__context__ is None and caught.value.__cause__ is None


async def test_the_number_of_attempts_is_the_callers(tmp_path: Path) -> None:
    attempt = Attempts(*[OSError("x")] * 5)
    with pytest.raises(MediaRejected):
        await retrying(attempt, source="S", attempts=5, sleep=Pauses())(tmp_path / "f")
    assert attempt.calls == 5


@pytest.mark.parametrize(
    "error",
    [
        MediaRejected("Telegram says this file is too big", reason="too_big"),
        ValueError("a bug"),
        RuntimeError("something else"),
    ],
)
async def test_other_failures_are_not_retried(tmp_path: Path, error: Exception) -> None:
    attempt, pauses = Attempts(error), Pauses()
    with pytest.raises(type(error)) as caught:
        await retrying(attempt, source="Telegram", sleep=pauses)(tmp_path / "f")
    assert caught.value is error
    assert attempt.calls == 1 and pauses.seconds == []


async def test_the_log_names_the_failure_but_never_the_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    attempt = Attempts(OSError(f"cannot open {SECRET_URL}"), DownloadInterrupted("ConnectError"))
    with caplog.at_level("WARNING"):
        await retrying(attempt, source="Telegram", sleep=Pauses())(tmp_path / "f")
    assert "SECRET" not in caplog.text
    assert "OSError" in caplog.text and "ConnectError" in caplog.text
    assert str(DownloadInterrupted("ConnectError")) == "ConnectError"
