"""A job attempt made by hand, for tests of what code does while a job runs (no runner)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Connection

from storage.jobs import Ending, TakenOver, running


@dataclass(eq=False)
class HandAttempt:
    """One attempt of one job; its fence raises TakenOver once `taken_over` is set, and counts
    how often it was asked (each is a database trip)."""

    job_id: int
    task: str = "test"
    number: int = 0
    last: bool = False
    shared: bool = True
    taken_over: bool = False
    fences: int = 0
    endings: list[Ending] = field(default_factory=list)

    def at_end(self, work: Ending) -> None:
        """Keep `work` (a test runs it, or checks it was asked for)."""
        self.endings.append(work)

    def fence(self, conn: Connection) -> None:
        """Raise TakenOver when told to."""
        self.fences += 1
        if self.taken_over:
            raise TakenOver(f"job {self.job_id} was taken over")


@contextmanager
def attempt(attempt: HandAttempt) -> Iterator[HandAttempt]:
    """Run the block as `attempt` of its job (as a runner does around a task function)."""
    running(attempt)
    try:
        yield attempt
    finally:
        running(None)
