"""7. The folder command: `photostory story DIR` over scenario 2's media, its time and memory.

The same 100 photos of 12 MP and two videos that scenario 2 sends the bot, in a folder, and
`python -m bot.cli story DIR --json` against FakeGemini: read and check every file, make the
model's copies, upload them, ask for the structured story, write the page and the zip. Run
twice: the second run reuses what the first read and uploaded. Peak RSS is the kernel's
VmHWM of that process, read until it exits (it never drops, so the last reading is the peak
to within 10 ms).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import media
from bench.memory import TARGET
from bench.process import ROOT, SAMPLE_EVERY
from bench.report import Row, mb, verdict
from bench.session import Context
from tests.fakes.gemini_api import FakeGemini
from tests.harness import API_KEY

SCENARIO = "7 folder command"
# Variables the command reads: the shell's values must not leak into a run.
SETTINGS = ("TELEGRAM_", "GEMINI_", "GOOGLE_", "PHOTO_", "MAX_", "DAILY_", "PHOTOSTORY_")


@dataclass(frozen=True)
class Measured:
    """One run of the command."""

    seconds: float
    peak_rss: int
    result: dict[str, Any]


async def run(ctx: Context) -> list[Row]:
    """Run the folder command twice over the same folder; report time and peak RSS."""
    plan = ctx.plan
    media.photos(plan.big_kind, plan.big_photos)  # generated once, then cached
    media.video(plan.video_seconds, plan.video_bytes)
    workdir = Path(tempfile.mkdtemp(prefix="bench-folder-"))
    try:
        folder = _folder(workdir / "trip", ctx)
        log = ctx.results / "logs" / "folder.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        async with FakeGemini(api_key=API_KEY) as gemini:
            env = _environment(gemini, workdir / "data")
            cold = await asyncio.to_thread(_story, folder, env, workdir, log)
            uploads = len(gemini.uploads())
            warm = await asyncio.to_thread(_story, folder, env, workdir, log)
            again = len(gemini.uploads()) - uploads
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    files = plan.big_photos + 2
    what = f"{plan.big_photos} photos of {plan.big_kind.width}x{plan.big_kind.height} + 2 videos"
    return [
        Row(
            SCENARIO,
            f"photostory story over {what}: peak RSS, first run ({cold.result['uploaded']} "
            f"uploads; scenario 2 has /story in the bot)",
            mb(cold.peak_rss),
            f"<= {mb(TARGET)}",
            verdict(cold.peak_rss <= TARGET and cold.result["photos"] == plan.big_photos),
            {"bytes": cold.peak_rss, "seconds": cold.seconds, "result": _brief(cold.result)},
        ),
        Row(
            SCENARIO,
            f"wall time of the first run ({files} files read, prepared, uploaded, page and zip "
            "written) / of a second run over the same folder",
            f"{cold.seconds:.1f} s / {warm.seconds:.1f} s",
        ),
        Row(
            SCENARIO,
            "second run: files read again / uploads made again / peak RSS",
            f"{warm.result['added']} / {again} / {mb(warm.peak_rss)}",
            "0 / 0",
            verdict(warm.result["added"] == 0 and again == 0),
            {"bytes": warm.peak_rss, "seconds": warm.seconds, "result": _brief(warm.result)},
        ),
    ]


def _folder(folder: Path, ctx: Context) -> Path:
    """The cached media, linked into a folder under camera-like names."""
    plan = ctx.plan
    folder.mkdir(parents=True)
    photos = media.CACHE / plan.big_kind.folder
    for seed in range(plan.big_photos):
        (folder / f"IMG_{seed:04d}.JPG").symlink_to(photos / f"{seed:05d}.jpg")
    big = media.CACHE / f"video-g{media.GENERATOR}-{plan.video_seconds}s-{plan.video_bytes}.mp4"
    (folder / "big.mp4").symlink_to(big)
    small = media.REAL_VIDEOS[0]
    (folder / small.name).symlink_to(small)
    return folder


def _environment(gemini: FakeGemini, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS)}
    env.pop("LOG_LEVEL", None)
    env.update(
        GEMINI_API_KEY=API_KEY,
        GEMINI_BASE_URL=gemini.url,
        PHOTOSTORY_DATA_DIR=str(data_dir),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    return env


def _story(folder: Path, env: dict[str, str], cwd: Path, log: Path) -> Measured:
    """One `python -m bot.cli story FOLDER --json`, its VmHWM watched until it exits."""
    command = [sys.executable, "-m", "bot.cli", "story", str(folder), "--json", "--out", "out"]
    started = time.monotonic()
    with log.open("ab") as errors:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=errors)
        peak: list[int] = []
        watcher = threading.Thread(target=_watch, args=(process, peak), daemon=True)
        watcher.start()
        output, _ = process.communicate()
        watcher.join()
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"photostory story exited with {process.returncode}; see {log}")
    return Measured(seconds, max(peak, default=0), json.loads(output))


def _watch(process: subprocess.Popen[bytes], peak: list[int]) -> None:
    """The kernel's high-water mark of the process, read until it exits.

    Not ru_maxrss from wait4: Linux carries the parent's peak over into the child at exec, and
    the benchmark's own process (the fake holding every upload) is bigger than the command."""
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak.append(int(line.split()[1]) * 1024)
        except OSError:
            return
        time.sleep(SAMPLE_EVERY)


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("photos", "videos", "added", "known", "uploaded", "skipped")
    return {key: result.get(key) for key in keys}
