"""`python -m bench.diag FILE`: summarise what the loop-lag and db-wait experiments wrote.

Run the bot with them, e.g.
`BENCH_DIAG_FILE=/tmp/d.jsonl python -m bench --only 1 --experiment loop-lag,db-wait` (every
process of the run appends to the file), then read here, per process and per 5 s of the run,
how late the event loop woke, how long database calls waited for a connection's lock, and
which storage functions held it longest.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench.report import percentile


def report(records: list[dict[str, Any]]) -> str:
    """Per-window lag and lock figures, then lock time by caller."""
    start = min(r["t"] for r in records)
    lines = ["window  loop lag p50/p95/max ms   db calls  wait p50/p95 ms  held s (of 5)"]
    for low in range(0, int(max(r["t"] for r in records) - start) + 5, 5):
        here = [r for r in records if low <= r["t"] - start < low + 5]
        lag = [1000 * r["lag"] for r in here if "lag" in r]
        wait = [1000 * r["wait"] for r in here if "wait" in r]
        held = sum(r["held"] for r in here if "held" in r)
        if not here:
            continue
        lines.append(
            f"{low:4d} s  {percentile(lag, 50):6.1f} {percentile(lag, 95):6.1f} "
            f"{max(lag, default=0):6.1f}   {len(wait):8d}  {percentile(wait, 50):6.1f} "
            f"{percentile(wait, 95):6.1f}   {held:5.2f}"
        )
    held_by: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    waits: defaultdict[str, list[float]] = defaultdict(list)
    for r in records:
        if "held" in r:
            held_by[r["who"]] += r["held"]
            calls[r["who"]] += 1
            waits[r["who"]].append(1000 * r["wait"])
    for low in range(0, int(max(r["t"] for r in records) - start) + 2, 2):
        steps: defaultdict[str, list[float]] = defaultdict(list)
        for r in records:
            if "step" in r and low <= r["t"] - start < low + 2:
                steps[r["step"] + (f" {r['who']}" if "who" in r else "")].append(1000 * r["d"])
        if not steps:
            continue
        lines.append(f"\nsteps ended {low}-{low + 2} s: count, p50 / p95 ms, total s")
        for step, took in sorted(steps.items(), key=lambda kv: -sum(kv[1]))[:12]:
            lines.append(
                f"  {len(took):6d}  {percentile(took, 50):7.1f} / {percentile(took, 95):7.1f}"
                f"  {sum(took) / 1000:7.2f} s  {step}"
            )
    total = sum(held_by.values())
    if total:
        lines.append(f"\nlock held {total:.1f} s in all, by caller:")
        for who, held in held_by.most_common(15):
            lines.append(
                f"  {held:6.2f} s {held / total:6.1%}  {calls[who]:5d} calls  "
                f"{1000 * held / calls[who]:5.1f} ms held, {percentile(waits[who], 50):6.1f} ms "
                f"waited (median)  {who}"
            )
    return "\n".join(lines)


def main() -> None:
    """Print the summary of one file."""
    parser = argparse.ArgumentParser(prog="python -m bench.diag", description=__doc__)
    parser.add_argument("file", type=Path)
    args = parser.parse_args()
    records = [json.loads(line) for line in args.file.read_text().splitlines() if line.strip()]
    by_process: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_process[record.get("pid", 0)].append(record)
    # The bot is the process that used the database; the echo bots follow it.
    for pid, mine in sorted(by_process.items(), key=lambda kv: not any("who" in r for r in kv[1])):
        kind = "bot" if any("who" in r or "step" in r for r in mine) else "echo bot"
        print(f"== process {pid} ({kind}), {len(mine)} records\n{report(mine)}\n")


if __name__ == "__main__":
    main()
