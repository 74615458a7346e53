"""The streamed story read as it grows: every prefix of the JSON shows the text so far."""

from __future__ import annotations

import json
from pathlib import Path

from bot.service.story import parse_story, preview_markdown
from storage.local_blobs import LocalBlobStore
from storage.records import Blob, Item, Media, MediaFacts, Origin
from tests.harness import jpeg

STORY = {
    "title": "A day in Belém",
    "intro": 'Trams, tiles and a "pastel" or two.\nThen the river.',
    "sections": [
        {"heading": "The monastery", "text": "Cloisters (photo 1), café – olé.", "media": [1]},
        {"heading": "The river", "text": "The tower at dusk (photo 2).", "media": [2]},
    ],
    "closing": "And then we flew home.",
}


def test_every_prefix_of_a_streamed_story_previews_the_text_so_far() -> None:
    text = json.dumps(STORY, ensure_ascii=False)
    final = preview_markdown(text)
    previews = [preview_markdown(text[:n]) for n in range(len(text) + 1)]

    assert final.startswith('# A day in Belém\n\nTrams, tiles and a "pastel"')
    assert all(final.startswith(p.rstrip()) for p in previews)  # no stray quote, brace or key
    # A string shows while it is still being written, not only once it is closed.
    assert "# A day in Be" in previews
    assert any(p.endswith("Cloisters (pho") for p in previews)


def test_a_cut_off_story_keeps_its_first_sections(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    blobs.prepare()
    items = []
    for number in (1, 2):
        sha, size = blobs.put_bytes(jpeg(number))
        blob = Blob(sha, size, "image/jpeg")
        media = Media("photo", blob, blob, Origin(), MediaFacts())
        items.append(Item(number, 1, 1, number, media, "x"))  # type: ignore[arg-type]
    text = json.dumps(STORY, ensure_ascii=False)
    cut = text[: text.index("The tower") + 5]

    story = parse_story(cut, items)

    assert story.title == "A day in Belém"
    assert [s.heading for s in story.sections] == ["The monastery"]
    assert story.sections[0].media == (1, 2)  # the photo of the lost section is placed by time
