"""6. Start-up: from `python -m bot` to its first getUpdates."""

from __future__ import annotations

import time

from bench.report import Row, median, ms, verdict
from bench.session import Context, Session

SCENARIO = "6 start-up"
TARGET = 2.0


async def run(ctx: Context) -> list[Row]:
    """Start the bot several times over one DATA_DIR (the first creates the database)."""
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
    value = median(times)
    return [
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
