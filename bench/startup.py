"""6. Start-up: `photostory --help`, and from `python -m bot` to its first getUpdates.

`--help` runs as `python -m bot.cli --help` (what the installed `photostory` script runs), a
fresh process each time, from spawn to exit. Neither it nor the bot before its first poll
imports the Gemini SDK (bot/lazy_model.py); tests/test_startup_imports.py keeps it so.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from bench.process import ROOT
from bench.report import Row, median, ms, verdict
from bench.session import Context, Session

SCENARIO = "6 start-up"
TARGET = 2.0
HELP_TARGET = 0.5
HELP_RUNS = 5


async def run(ctx: Context) -> list[Row]:
    """Time --help, then start the bot several times over one DATA_DIR (the first creates it)."""
    helps = [await _help() for _ in range(HELP_RUNS)]
    times: list[float] = []
    stops: list[float] = []
    async with Session(ctx, "startup") as session:
        assert session.process is not None
        times.append(session.ready_at - session.process.started_at)
        for run_index in range(ctx.plan.startup_runs):
            started = time.monotonic()
            await session.stop_process()
            stops.append(time.monotonic() - started)
            if run_index + 1 < ctx.plan.startup_runs:
                times.append(await session.spawn())
    help_value = median(helps)
    value = median(times)
    return [
        Row(
            SCENARIO,
            f"photostory --help, spawn to exit, median of {len(helps)}",
            ms(help_value),
            f"< {HELP_TARGET:g} s",
            verdict(help_value < HELP_TARGET),
            {"seconds": helps},
        ),
        Row(
            SCENARIO,
            f"python -m bot to first getUpdates, median of {len(times)}",
            ms(value),
            f"< {TARGET:g} s",
            verdict(value < TARGET),
            {"seconds": times},
        ),
        Row(
            SCENARIO,
            "first start (creates the database) / fastest / slowest",
            f"{ms(times[0])} / {ms(min(times))} / {ms(max(times))}",
        ),
        Row(SCENARIO, "SIGTERM to exit, median", ms(median(stops)), data={"seconds": stops}),
    ]


async def _help() -> float:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "--help", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"photostory --help exited {process.returncode}: {err.decode()[-300:]}")
    return seconds
