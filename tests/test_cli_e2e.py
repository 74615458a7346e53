"""`python -m bot.cli`: a folder's story and questions, run as a subprocess against FakeGemini."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import sqlite3
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from tests.fakes.gemini_api import FakeGemini, Reply, file_uris, image_parts, texts, video_parts
from tests.harness import API_KEY, DATA
from tests.image_files import jpeg
from tests.test_export import CHROMIUM, CHROMIUM_ARGS, IMAGES_LOADED

ROOT = Path(__file__).resolve().parent.parent
# The real media of the folder (tests/data, see ATTRIBUTION.md): HEIC, JPEGs, MP4 and MOV.
REAL = [
    "lisbon_iphone_xr.heic",
    "rome_iphone4.jpg",
    "seattle_iphone5_orientation3.jpg",
    "netherlands_ducks_with_gps.mp4",
    "israel_iphone6_with_gps.mov",
]
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def trip_folder(base: Path) -> Path:
    """Five real files, a PNG, one photo in a subfolder, three bad files and two to ignore."""
    folder = base / "Lisbon trip"
    (folder / "day 2").mkdir(parents=True)
    for name in REAL:
        shutil.copyfile(DATA / name, folder / name)
    Image.open(io.BytesIO(jpeg(7))).save(folder / "screenshot.png")
    shutil.copyfile(DATA / "bc_canada_olympus_fe230.jpg", folder / "day 2" / "canada.jpg")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "report.jpg").write_bytes(PDF)  # a PDF renamed .jpg
    (folder / "broken.jpg").write_bytes((DATA / "rome_iphone4.jpg").read_bytes()[:3000])
    (folder / "notes.txt").write_text("packing list")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return folder


def cli_env(gemini: FakeGemini | None, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "GEMINI_"))}
    env.pop("LOG_LEVEL", None)
    env.update(
        GEMINI_API_KEY=API_KEY,
        PHOTOSTORY_DATA_DIR=str(data_dir),
        GEMINI_BACKOFF_SECONDS="0.01",
        GEMINI_FILE_POLL_SECONDS="0.01",
        GEMINI_FILE_TIMEOUT_SECONDS="5",
        GEMINI_TIMEOUT_SECONDS="20",
        # These tests read whole requests (every upload in the story request), as the bot's
        # harness does; the context cache has its own tests (tests/test_context_cache_e2e.py).
        GEMINI_CACHE_TTL_SECONDS="0",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONPATH=str(ROOT),
    )
    if gemini is not None:
        env["GEMINI_BASE_URL"] = gemini.url
    env.update(extra)
    return env


async def cli(env: dict[str, str], cwd: Path, *args: str) -> Ran:
    """Run `python -m bot.cli ARGS` to the end (no terminal: no progress bars)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args,
        cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=100)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


def story(count: int) -> dict[str, Any]:
    """A structured story as the model returns it, showing items 1..count."""
    half = count // 2
    return {
        "title": "Tiles, Trams and Ducks",
        "intro": "A week of old streets.",
        "sections": [
            {"heading": "Up the hill", "text": "We climbed at dawn (photo 1).",
             "media": list(range(1, half + 1))},
            {"heading": "By the water", "text": "The ducks came to us.",
             "media": list(range(half + 1, count + 1))},
        ],
        "closing": "Home again, sandy shoes.",
    }  # fmt: skip


def rows(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(data_dir / "photostory.sqlite3")
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def uploads_started(gemini: FakeGemini) -> int:
    return sum(1 for r in gemini.requests if r.kind == "upload_start")


def open_in_chromium(page: Path) -> tuple[list[bool], str, bool]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 390, "height": 844})
            tab.goto(page.as_uri(), wait_until="load")
            loaded = tab.evaluate(IMAGES_LOADED)
            title = tab.locator("h1").inner_text()
            visible = tab.get_by_text("We climbed at dawn").first.is_visible()
        finally:
            browser.close()
    return loaded, title, visible


async def test_story_of_a_folder_sends_every_file_lists_bad_ones_and_writes_a_page(
    gemini: FakeGemini, tmp_path: Path
) -> None:
    folder, data, out = trip_folder(tmp_path), tmp_path / "data", tmp_path / "out"
    gemini.enqueue(Reply(json=story(7)))
    ran = await cli(
        cli_env(gemini, data), tmp_path,
        "story", str(folder), "--recursive", "--wish", "a bit funny", "--out", str(out),
    )  # fmt: skip
    assert ran.code == 0, ran.err

    # Every readable file was uploaded once: the model's JPEG of each photo, each video as is.
    mimes = sorted(f.mime_type for f in gemini.uploads())
    assert mimes == ["image/jpeg"] * 5 + ["video/mp4", "video/quicktime"]
    [body] = gemini.generate_requests()
    assert len(image_parts(body)) == 5 and len(video_parts(body)) == 2
    assert len(set(file_uris(body))) == 7
    joined = "\n".join(texts(body))
    assert "a bit funny" in joined
    assert "Olympus" in joined  # the photo in the subfolder, with its EXIF camera
    assert "Lisbon, Portugal" in joined  # the offline place from the HEIC's GPS
    assert "notes.txt" not in joined

    page, archive = out / "lisbon-trip.html", out / "lisbon-trip-markdown.zip"
    assert f"web page: {page}" in ran.out and f"Markdown: {archive}" in ran.out
    html = page.read_bytes()
    assert html.count(b"data:image/jpeg;base64,") == 7  # 5 photos and 2 video posters
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
        assert "story.md" in names
        assert "Tiles, Trams and Ducks" in zipped.read("story.md").decode()
    assert sum(n.startswith("images/") and n.endswith(".jpg") for n in names) == 7

    # The bad files are listed at the end with their reasons; no traceback anywhere.
    listed = ran.out[ran.out.index("Skipped 3 files") :].splitlines()[1:]
    reasons = dict(line.strip().split(": ", 1) for line in listed)
    assert set(reasons) == {"broken.jpg", "empty.jpg", "report.jpg"}
    assert "empty" in reasons["empty.jpg"]
    assert all(reason.endswith(".") for reason in reasons.values())
    assert "Traceback" not in ran.out + ran.err

    if not CHROMIUM.exists():
        raise AssertionError(f"{CHROMIUM} is missing: `make test` installs it.")
    loaded, title, visible = await asyncio.to_thread(open_in_chromium, page)
    assert loaded == [True] * 5  # the photos; the two videos carry their posters
    assert title == "Tiles, Trams and Ducks" and visible


async def test_a_second_run_reuses_everything_and_ask_continues_the_conversation(
    gemini: FakeGemini, tmp_path: Path
) -> None:
    folder, data, out = trip_folder(tmp_path), tmp_path / "data", tmp_path / "out"
    env = cli_env(gemini, data)
    gemini.enqueue(Reply(json=story(6)))
    first = await cli(env, tmp_path, "story", str(folder), "--json", "--out", str(out))
    assert first.code == 0, first.err
    result = first.json()
    assert (result["photos"], result["videos"], result["added"]) == (4, 2, 6)
    assert result["uploaded"] == 6 and result["title"] == "Tiles, Trams and Ducks"
    assert sorted([result["page"], result["markdown"]]) == sorted(map(str, out.iterdir()))
    assert {s["file"] for s in result["skipped"]} == {"broken.jpg", "empty.jpg", "report.jpg"}
    assert result["ignored"] == ["notes.txt"]
    items = rows(data, "SELECT id, model_sha256 FROM items ORDER BY id")
    blobs = sorted(p.name for p in (data / "media").rglob("*") if p.is_file())
    started = uploads_started(gemini)

    gemini.enqueue(Reply(json=story(6) | {"title": "Second Telling"}))
    second = await cli(env, tmp_path, "story", str(folder), "--json", "--out", str(out))
    assert second.code == 0, second.err
    again = second.json()
    assert (again["added"], again["known"], again["uploaded"]) == (0, 6, 0)
    assert again["title"] == "Second Telling"
    assert uploads_started(gemini) == started  # nothing uploaded again
    assert rows(data, "SELECT id, model_sha256 FROM items ORDER BY id") == items
    assert sorted(p.name for p in (data / "media").rglob("*") if p.is_file()) == blobs
    assert len(set(file_uris(gemini.generate_requests()[-1]))) == 6  # the same files referenced

    gemini.enqueue(Reply(text="The HEIC from Lisbon was first."))
    asked = await cli(env, tmp_path, "ask", str(folder), "Which photo was taken first?", "--json")
    assert asked.code == 0, asked.err
    assert asked.json()["answer"] == "The HEIC from Lisbon was first."
    assert asked.json()["uploaded"] == 0
    body = gemini.generate_requests()[-1]
    roles = [c.get("role") for c in body["contents"]]
    assert roles.count("model") == 2  # both stories went before the question
    model_text = json.dumps([c for c in body["contents"] if c.get("role") == "model"])
    assert "Tiles, Trams and Ducks" in model_text and "Second Telling" in model_text
    assert body["contents"][-1]["role"] == "user"  # the question comes last
    assert "Which photo was taken first?" in json.dumps(body["contents"][-1])
    assert rows(data, "SELECT COUNT(*) FROM exchanges") == [(3,)]

    plain = await cli(env, tmp_path, "ask", str(folder), "And the last?")
    assert plain.code == 0 and plain.out.startswith("Seen 4 images, 2 videos.")


async def test_problems_a_user_can_act_on_are_one_sentence_and_exit_1(
    gemini: FakeGemini, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    folder = tmp_path / "trip"
    folder.mkdir()
    (folder / "one.jpg").write_bytes(jpeg(1))

    no_key = cli_env(gemini, data)
    del no_key["GEMINI_API_KEY"]
    ran = await cli(no_key, tmp_path, "story", str(folder))
    assert ran.code == 1 and ran.out == ""
    [line] = ran.err.splitlines()
    assert line.startswith("photostory: GEMINI_API_KEY is not set.")
    assert "aistudio.google.com/apikey" in line

    env = cli_env(gemini, data)
    nowhere = tmp_path / "nowhere"
    ran = await cli(env, tmp_path, "story", str(nowhere))
    assert (ran.code, ran.err.strip()) == (1, f"photostory: There is no folder at {nowhere}.")

    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "notes.txt").write_text("nothing to see")
    ran = await cli(env, tmp_path, "story", str(tmp_path / "papers"), "--json")
    assert ran.code == 1 and ran.json()["ok"] is False
    assert "There are no photos or videos in" in ran.err and len(ran.err.splitlines()) == 1

    gemini.enqueue(Reply(text="", finish_reason="SAFETY"))
    ran = await cli(env, tmp_path, "story", str(folder), "--out", str(tmp_path / "out"))
    assert ran.code == 1
    [line] = ran.err.splitlines()
    assert line.startswith("photostory: ") and "Traceback" not in ran.out
    assert not (tmp_path / "out").exists()

    ran = await cli(env, tmp_path, "story")
    assert ran.code == 2 and "usage: photostory" in ran.err
    assert len(gemini.generate_requests()) == 1  # only the refused story reached the model


async def test_files_gone_from_the_folder_are_named_and_fresh_leaves_them_out(
    gemini: FakeGemini, tmp_path: Path
) -> None:
    folder, data = tmp_path / "weekend", tmp_path / "data"
    folder.mkdir()
    for n in range(3):
        (folder / f"IMG_{n}.jpg").write_bytes(jpeg(n))
    env = cli_env(gemini, data)
    first = await cli(env, tmp_path, "story", str(folder), "--json", "--out", "out")
    assert first.code == 0 and first.json()["photos"] == 3, first.err
    (folder / "IMG_1.jpg").unlink()

    kept = await cli(env, tmp_path, "story", str(folder), "--out", "out")
    assert kept.code == 0, kept.err
    assert "1 file read on an earlier run is not in the folder now (IMG_1.jpg)" in kept.out
    assert "3 photos" in kept.out

    fresh = await cli(env, tmp_path, "story", str(folder), "--fresh", "--json", "--out", "out")
    assert fresh.code == 0, fresh.err
    result = fresh.json()
    assert (result["photos"], result["missing"], result["uploaded"]) == (2, [], 0)
    body = gemini.generate_requests()[-1]
    assert len(image_parts(body)) == 2
    assert [c.get("role") for c in body["contents"]].count("model") == 0  # a new conversation
