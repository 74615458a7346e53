"""`python -m bench [--quick] [--only 1,2,...] [--profile]`: run the scenarios, print one table.

Exits 0 whatever the figures say (FAIL rows are findings, not errors); 1 only when a scenario
could not be run at all (its row says ERROR).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import folder, isolation, memory, model_input, replicated, resend, startup, throughput
from bench.report import ERROR, Row, markdown_table, table, write_json
from bench.session import EXPERIMENTS, FULL, QUICK, RESULTS, Context

Scenario = Callable[[Context], Awaitable[list[Row]]]
SCENARIOS: dict[int, tuple[str, Scenario]] = {
    1: (throughput.SCENARIO, throughput.run),
    2: (memory.SCENARIO, memory.run),
    3: (model_input.SCENARIO, model_input.run),
    4: (resend.SCENARIO, resend.run),
    5: (isolation.SCENARIO, isolation.run),
    6: (startup.SCENARIO, startup.run),
    7: (folder.SCENARIO, folder.run),
    8: (replicated.SCENARIO, replicated.run),
}


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print, save."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI (~40 s)")
    parser.add_argument("--only", default="", help="scenario numbers, e.g. 1,5")
    parser.add_argument("--json", type=Path, help="where to write the JSON results")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="attach py-spy to every bot process (collapsed stacks in bench/results/profiles)",
    )
    parser.add_argument(
        "--profile-burst",
        type=int,
        default=0,
        metavar="SECONDS",
        help="scenario 8: profile each replica only from the burst's start, for SECONDS",
    )
    parser.add_argument(
        "--experiment",
        default="",
        help="weigh a part of the bot by taking it away, e.g. no-places (bench/experiments)",
    )
    args = parser.parse_args(argv)
    chosen = sorted({int(n) for n in args.only.split(",") if n.strip()} or SCENARIOS)
    unknown = [n for n in chosen if n not in SCENARIOS]
    if unknown:
        parser.error(f"no scenario {unknown}; there are {sorted(SCENARIOS)}")
    plan = QUICK if args.quick else FULL
    experiments = tuple(sorted(n.strip() for n in args.experiment.split(",") if n.strip()))
    unknown_experiments = set(experiments) - set(EXPERIMENTS)
    if unknown_experiments:
        parser.error(f"no experiment {sorted(unknown_experiments)}; there are {EXPERIMENTS}")
    ctx = Context(
        plan=plan,
        results=RESULTS,
        profile=args.profile,
        profile_burst=args.profile_burst,
        experiments=experiments,
    )
    # Proxies may be configured on the machine; everything here is on loopback.
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")

    started = time.monotonic()
    rows, durations = asyncio.run(_run_all(ctx, chosen))
    elapsed = time.monotonic() - started
    print(table(rows))
    if args.markdown:
        print()
        print(markdown_table(rows))
    tried = f" with experiments {','.join(experiments)}" if experiments else ""
    print(
        f"\n{plan.name} run of scenarios {','.join(map(str, chosen))}{tried} took {elapsed:.0f} s"
    )
    default = "latest-quick.json" if args.quick else "latest.json"
    if experiments:
        default = f"experiment-{'-'.join(experiments)}{'-quick' if args.quick else ''}.json"
    write_json(
        args.json or RESULTS / default,
        rows,
        {"plan": plan.name, "scenarios": chosen, "experiments": experiments, "seconds": elapsed,
         "durations": durations},
    )  # fmt: skip
    return 1 if any(r.result == ERROR for r in rows) else 0


async def _run_all(ctx: Context, chosen: list[int]) -> tuple[list[Row], dict[str, float]]:
    rows: list[Row] = []
    durations: dict[str, float] = {}
    for number in chosen:
        name, scenario = SCENARIOS[number]
        print(f"running {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            rows.extend(await scenario(ctx))
        except Exception as e:
            traceback.print_exc()
            rows.append(Row(name, "could not be measured", f"{type(e).__name__}: {e}"[:160],
                            result=ERROR))  # fmt: skip
        durations[name] = round(time.monotonic() - started, 1)
        print(f"  {name}: {durations[name]:.0f} s", file=sys.stderr, flush=True)
    return rows, durations


if __name__ == "__main__":
    sys.exit(main())
