"""`python -m bench.profile FILE`: read py-spy's collapsed stacks (from `--profile`) as tables.

py-spy samples every thread of the bot 250 times a second while it is busy; this prints how
much CPU each kind of thread used, then the functions most often on the stack (inclusive) and
at its top (self), for the event loop and for the worker threads separately.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

RATE = 250  # samples per second, as Process asks py-spy for
_THREAD = re.compile(r"^thread \(\d+\): (?P<name>[^;]*)")


def _kind(thread_name: str) -> str:
    if thread_name == "MainThread":
        return "event loop (MainThread)"
    if thread_name.startswith("asyncio_"):
        return "asyncio.to_thread workers"
    if thread_name.startswith("sqlite-"):
        return "sqlite (storage/sql/database.py)"
    return thread_name.split(" (")[0]


def read(path: Path) -> list[tuple[str, list[str], int]]:
    """(thread kind, frames outermost first, samples) per line of a py-spy raw file."""
    result = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue  # a frame of compiled code (uvloop) whose source line broke the line
        frames = stack.split(";")
        found = _THREAD.match(frames[0])
        kind = _kind(found["name"]) if found else "?"
        result.append((kind, frames[1:] if found else frames, int(count)))
    return result


def report(path: Path, top: int = 20, match: str = "") -> str:
    """The tables, as text."""
    samples = read(path)
    per_kind: Counter[str] = Counter()
    for kind, _, count in samples:
        per_kind[kind] += count
    lines = [f"{path.name}: CPU seconds by thread (samples / {RATE})"]
    lines += [f"  {n / RATE:7.2f} s  {kind}" for kind, n in per_kind.most_common()]
    for kind in ("event loop (MainThread)", "asyncio.to_thread workers"):
        inclusive: Counter[str] = Counter()
        own: Counter[str] = Counter()
        total = 0
        for k, frames, count in samples:
            if k != kind or (match and not any(match in f for f in frames)):
                continue
            total += count
            for frame in set(frames):
                inclusive[frame] += count
            if frames:
                own[frames[-1]] += count
        if not total:
            continue
        lines.append(f"\n{kind}: {total / RATE:.2f} s" + (f" under '{match}'" if match else ""))
        lines.append("  inclusive:")
        lines += [f"    {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
        lines.append("  self:")
        lines += [f"    {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    """Print the tables of one or more profiles."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--match", default="", help="only stacks with a frame containing this")
    args = parser.parse_args()
    for path in args.files:
        print(report(path, args.top, args.match))
        print()


if __name__ == "__main__":
    main()
