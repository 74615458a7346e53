"""Counting things in messages: "1 photo", "3 photos"."""

from __future__ import annotations


def count(number: int, noun: str, plural: str | None = None) -> str:
    """The number with its noun, plural unless exactly one."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
