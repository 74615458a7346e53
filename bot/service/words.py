"""Counting things in messages: "1 photo", "3 photos"; durations: "0:42"."""

from __future__ import annotations


def count(number: int, noun: str, plural: str | None = None) -> str:
    """The number with its noun, plural unless exactly one."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def clock(seconds: float) -> str:
    """A duration as a player shows it: '0:42', '12:05', '1:02:09' (at least a second)."""
    total = max(1, round(seconds))
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
