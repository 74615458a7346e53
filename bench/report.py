"""Rows of the result table: printed for people, written as JSON for machines."""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

PASS, FAIL, INFO, ERROR = "PASS", "FAIL", "INFO", "ERROR"
COLUMNS = ("scenario", "figure", "value", "target", "result")


@dataclass
class Row:
    """One line of the table; `data` keeps the raw numbers for the JSON file."""

    scenario: str
    figure: str
    value: str
    target: str = "-"
    result: str = INFO
    data: dict[str, Any] = field(default_factory=dict)


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return PASS if ok else FAIL


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation, like numpy's default."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    """The 50th percentile."""
    return percentile(values, 50)


def ms(seconds: float) -> str:
    """Seconds shown as milliseconds."""
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.0f} ms"


def mb(size: float) -> str:
    """Bytes shown in MB (2**20)."""
    return f"{size / 2**20:.0f} MB"


def kb(size: float) -> str:
    """Bytes shown in KB (1000, as PHOTO_MAX_BYTES counts them)."""
    return f"{size / 1000:.0f} KB"


def table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table."""
    cells = [COLUMNS] + [(r.scenario, r.figure, r.value, r.target, r.result) for r in rows]
    widths = [max(len(str(line[i])) for line in cells) for i in range(len(COLUMNS))]
    lines = []
    for index, line in enumerate(cells):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (for docs/performance.md)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = (r.scenario, r.figure, r.value, r.target, f"**{r.result}**")
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def write_json(path: Path, rows: Sequence[Row], meta: dict[str, Any]) -> None:
    """Save the run: when, where, how, and every row with its raw numbers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": psutil.cpu_count(),
            "memory_mb": psutil.virtual_memory().total // 2**20,
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        **meta,
        "rows": [asdict(r) for r in rows],
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
