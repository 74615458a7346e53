"""Progress of the folder command on the terminal: one bar per stage, on stderr.

Bars show only on a terminal and not with --json (rich's `disable`), so scripts and logs get
only the result. The conversation service reports through its `Progress` protocol; `Steps`
turns that into the current stage's description.
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from bot.i18n import ngettext


class Bars:
    """The stages of one run (reading, preparing, uploading, writing), each a bar or spinner."""

    def __init__(self, enabled: bool) -> None:
        self.console = Console(stderr=True)
        show = enabled and sys.stderr.isatty()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            disable=not show,
            transient=False,
        )

    def __enter__(self) -> Bars:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def stage(self, description: str, total: int | None) -> Stage:
        """A new stage: a bar when the amount of work is known, a spinner when not."""
        return Stage(self.progress, self.progress.add_task(description, total=total), total)


class Stage:
    """One stage's bar."""

    def __init__(self, progress: Progress, task: TaskID, total: int | None) -> None:
        self.progress = progress
        self.task = task
        self.total = total

    def advance(self, steps: int = 1) -> None:
        """Some of the work is done."""
        self.progress.advance(self.task, steps)

    def set(self, completed: int) -> None:
        """This much of the work is done."""
        self.progress.update(self.task, completed=completed)

    def describe(self, text: str) -> None:
        """Say what is happening now."""
        self.progress.update(self.task, description=text)

    def finish(self) -> None:
        """The stage is over: a full bar (a spinner becomes 1/1)."""
        total = self.total if self.total is not None else 1
        self.progress.update(self.task, total=total, completed=total)


class Steps:
    """The conversation service's `Progress`, shown as the description of one stage."""

    def __init__(self, stage: Stage, what: str) -> None:
        self.stage = stage
        self.what = what

    async def status(self, text: str) -> None:
        """A line on what the service is doing ("Preparing photos for Gemini: 3 of 10…")."""
        self.stage.describe(f"{self.what}: {text.rstrip('.…')}")

    async def text(self, so_far: str) -> None:
        """The answer so far: its length is the sign of life."""
        words = len(so_far.split())
        self.stage.describe(
            f"{self.what}: "
            + ngettext("%(count)d word", "%(count)d words", words) % {"count": words}
        )
