"""The benchmark keeps working: `python -m bench --quick` runs every scenario and prints a row.

Timing is not judged here (the quick run's figures mean little on a busy CI machine); the
full run and its reading are in docs/performance.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("1 throughput", "2 memory", "3 model input", "4 re-sent media", "5 isolation",
             "6 start-up", "7 folder command", "8 replicas")  # fmt: skip


@pytest.mark.timeout(600)
def test_quick_benchmark_prints_a_row_for_every_scenario(tmp_path: Path) -> None:
    results = tmp_path / "quick.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "GEMINI_"))}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(results)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["scenario", "figure"]
    for scenario in SCENARIOS:
        rows = [line for line in lines if line.startswith(scenario)]
        assert rows, f"no row for {scenario}:\n{done.stdout}\n{done.stderr}"
        assert all(line.split()[-1] in ("PASS", "FAIL", "INFO") for line in rows), rows
    saved = json.loads(results.read_text())
    assert {row["scenario"] for row in saved["rows"]} == set(SCENARIOS)
