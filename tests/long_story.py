"""A story of any length in the Markdown the model writes, for the formatter's tests and bench."""

from __future__ import annotations


def paragraph(n: int, words: int = 60) -> str:
    """A paragraph of `words` distinct words (p{n}w0 ...), easy to find in a rendered chunk."""
    return " ".join(f"p{n}w{k}" for k in range(words)) + "."


def long_story(days: int) -> str:
    """One section per day with every kind of markup; 100 days make over 30,000 characters."""
    return "\n\n".join(
        f"## Day {n}\n\nWe walked **{n} km** along the _coast_, saw [this](https://e.x/{n}) "
        f"and file_{n}.jpg 😀.\n- a bullet\n> a quote\n" + paragraph(n, 40)
        for n in range(days)
    )
