"""Scenario 1's story as Telegram messages: the formatter's speed on a 30,000-character story.

Measured in the benchmark's own process, after the bots have stopped: the Markdown the model
writes (tests/long_story.py, every kind of markup) rendered to Telegram HTML and split into
messages by `render_chunks`, as /story does before it posts. The tests guard only against a
blow-up (tests/test_formatting.py counts the work); the speed is judged here.
"""

from __future__ import annotations

import time

from bench.report import Row, median, ms, verdict
from bot.telegram.splitting import render_chunks
from tests.long_story import long_story

DAYS = 100  # over 30,000 characters
RUNS = 20
TARGET = 0.05  # seconds; the story is one of several things /story does before it posts


def rows(scenario: str) -> list[Row]:
    """Render the story RUNS times after one warm-up; one row with the median."""
    md = long_story(DAYS)
    chunks = render_chunks(md)  # the first call compiles what later ones reuse
    seconds = []
    for _ in range(RUNS):
        started = time.perf_counter()
        render_chunks(md)
        seconds.append(time.perf_counter() - started)
    value = median(seconds)
    return [
        Row(
            scenario,
            f"a {len(md):,}-character story rendered as {len(chunks)} Telegram messages, "
            f"median of {RUNS}",
            ms(value),
            f"< {ms(TARGET)}",
            verdict(value < TARGET),
            {"seconds": seconds, "characters": len(md), "messages": len(chunks)},
        )
    ]
