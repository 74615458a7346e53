"""The fixed texts the model reads name no real trip: no date, no time, no place of the test media.

A format shown with a real line ("[photo 3] taken 2019-08-21 ... near Ajuda, Lisbon") rides along
with every request of every traveller and primes the model to name places no photo shows.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from importlib.resources import files
from pathlib import Path

import pytest

from bot.service import context
from bot.service.story import STORY_SCHEMA
from storage.local_blobs import LocalBlobStore
from storage.records import Album, Blob, Item, Media, MediaFacts, Note, Origin

# Every place of the test media (/work/shared/testdata/MANIFEST.md, tests/data), and more of
# the names reverse geocoding gives them.
PLACES = (
    "Lisbon", "Lisboa", "Belem", "Belém", "Ajuda", "Jeronimos", "Jerónimos", "Portugal",
    "Missouri", "Blue Springs", "Kansas", "Seattle", "Washington", "Rome", "Roma", "Italy",
    "Revelstoke", "British Columbia", "Canada", "Slovakia", "Košice", "Kosice", "Tel Aviv",
    "Israel", "Twente", "Netherlands", "Enschede", "Almelo", "Null Island",
)  # fmt: skip
# Their coordinates, to two decimals (the manifest shows five).
COORDINATES = (
    "38.69", "38.70", "-9.20", "-9.21", "39.05", "-94.28", "-94.29", "47.62", "47.63",
    "-122.33", "-122.34", "41.85", "12.48", "12.49", "50.95", "50.96", "-118.10", "-118.11",
    "48.88", "48.89", "21.04", "32.09", "34.86", "52.36", "52.37", "6.67", "6.68",
)  # fmt: skip
DATE = re.compile(r"\b\d{4}[-:/.]\d{1,2}[-:/.]\d{1,2}\b")
TIME = re.compile(r"\b\d{1,2}:\d{2}\b")
COORDINATE = re.compile(r"-?\b\d{1,3}\.\d{3,}\b")

# Values of the item below, so the manifest's own words are what is left once they are removed.
TAKEN = datetime(1999, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=5)))
SENT = datetime(1999, 1, 2, 5, 6, tzinfo=timezone.utc)  # noqa: UP017
VALUES = ("ITEM-PLACE", "ITEM-CAMERA", "ITEM-CAPTION", "ITEM-SENDER", "ITEM-FILE.mp4", "ALBUM")


def _prompt_files() -> dict[str, str]:
    folder = files("prompts")
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".md")
    }


def _real_facts(text: str) -> list[str]:
    """The dates, times, coordinates and test-media places found in a text."""
    found = [m[0] for pattern in (DATE, TIME, COORDINATE) for m in pattern.finditer(text)]
    found += [p for p in PLACES if re.search(rf"\b{re.escape(p)}\b", text, re.I)]
    found += [c for c in COORDINATES if c in text]
    return found


def _items(blobs: LocalBlobStore) -> list[Item]:
    sha, size = blobs.put_bytes(b"not really a picture")
    blob = Blob(sha, size, "image/jpeg")
    items = []
    for number, (kind, taken) in enumerate(
        [("photo", TAKEN), ("video", None), ("audio", None), ("audio", TAKEN)], start=1
    ):
        origin = Origin(
            file_name="ITEM-FILE.mp4" if kind != "photo" else None,
            caption="ITEM-CAPTION",
            sender_name="ITEM-SENDER",
            message_date=SENT,
            telegram_type="voice" if kind == "audio" else kind,
        )
        facts = MediaFacts(
            taken_at=taken,
            time_source="exif" if taken else None,
            latitude=1.0 if kind == "photo" else None,
            longitude=2.0 if kind == "photo" else None,
            camera="ITEM-CAMERA",
            duration=7.0 if kind != "photo" else None,
            place="ITEM-PLACE" if kind == "photo" else None,
        )
        media = Media(kind, blob, blob, origin, facts)  # type: ignore[arg-type]
        items.append(Item(number, 1, 1, number, media, "x"))
    return items


def _without_values(text: str) -> str:
    """The text with what came from the album taken out: what is left is the code's own words."""
    for moment in (TAKEN, SENT):
        text = text.replace(moment.strftime("%Y-%m-%d %H:%M"), "")
        text = text.replace(moment.strftime("%z")[:3] + ":" + moment.strftime("%z")[3:], "")
    for value in (*VALUES, "(1.00000, 2.00000)", "0:07", "7 s"):
        text = text.replace(value, "")
    return text


@pytest.mark.parametrize("name", sorted(_prompt_files()))
def test_prompt_file_carries_no_date_and_no_place_of_the_test_media(name: str) -> None:
    text = _prompt_files()[name]
    assert _real_facts(text) == [], f"prompts/{name} names a real trip"


def test_system_prompt_shows_the_facts_line_as_a_shape_of_placeholders() -> None:
    system = context.system_prompt("en")
    assert "[photo N] taken <date> <time>" in system
    assert _real_facts(system) == []


def test_the_manifests_own_words_carry_no_date_and_no_place(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    blobs.prepare()
    items = _items(blobs)
    album = Album(1, 1, "ALBUM", "x", "x")
    note = Note(1, 1, 1, "ITEM-CAPTION", 1, "ITEM-SENDER", "x")
    parts = context.album_parts(album, items, [note], blobs)
    texts = [p for p in parts if isinstance(p, str)]
    texts += [p for item in items for p in context.focus_parts(item, blobs) if isinstance(p, str)]
    texts += [context.facts_line(item) for item in items]
    texts += [context.story_prompt("ITEM-CAPTION"), context.story_prompt(None)]
    texts += [context.question_prompt("ITEM-CAPTION", items[0])]
    texts.append(json.dumps(STORY_SCHEMA))  # the schema's descriptions are read by the model too
    manifest = "\n".join(texts)
    assert "ITEM-PLACE" in manifest and "taken" in manifest  # the facts were all rendered
    assert _real_facts(_without_values(manifest)) == []


def test_the_check_finds_a_real_line() -> None:
    line = "[photo 3] taken 2019-08-21 11:21 (+01:00) · near Ajuda, Lisbon (38.69954, -9.20775)"
    assert {"2019-08-21", "11:21", "Ajuda", "Lisbon", "38.69954", "-9.20775"} <= set(
        _real_facts(line)
    )
    assert "2019:08:21" in _real_facts("DateTimeOriginal 2019:08:21")


def test_prompts_folder_is_the_one_the_code_reads() -> None:
    folder = Path(str(files("prompts")))
    assert (folder / "system.md").is_file() and len(_prompt_files()) >= 5
