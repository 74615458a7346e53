"""Grounding: the model gets a manifest in time order with real places; landmarks survive blocks."""

from __future__ import annotations

import re

from tests.fakes.gemini_api import Reply, texts
from tests.harness import DATA, Harness
from tests.image_files import jpeg

# Sent out of order on purpose; (file, mime, expected time in the manifest, expected place)
PHOTOS = [
    ("missouri_iphone11promax.heic", "image/heic", "2021-04-11 15:47 (-05:00)", "Blue Springs, Missouri, United States"),
    ("rome_iphone4.jpg", "image/jpeg", "2011-01-13 14:33", "Rome, Lazio, Italy"),
    ("lisbon_iphone_xr.heic", "image/heic", "2019-08-21 11:21", "Lisbon, Portugal"),
    ("bc_canada_olympus_fe230.jpg", "image/jpeg", "2008-12-07 10:28", "Revelstoke, British Columbia, Canada"),
    ("canon_sx60_orientation6_no_gps_coords.jpg", "image/jpeg", "2015-02-09 22:47", None),
]  # fmt: skip


async def test_story_request_carries_the_manifest_in_time_order_with_places(bot: Harness) -> None:
    for name, mime, _, _ in PHOTOS:
        bot.tg.send_document(
            bot.chat, bot.ana, (DATA / name).read_bytes(), file_name=name, mime_type=mime
        )
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))  # compressed: no EXIF, time approximate
    await bot.wait_text(bot.chat["id"], "6 photos")
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "Seen 6 images")

    body = bot.gemini.generate_requests()[-1]
    header = next(t for t in texts(body) if "Manifest" in t)
    lines = [line for line in header.splitlines() if line.startswith("[photo")]
    assert len(lines) == 6
    expected_order = sorted(PHOTOS, key=lambda p: p[2])
    for line, (name, _, when, place) in zip(lines, expected_order, strict=False):
        assert f"taken {when}" in line, (line, name)
        if place:
            assert place.split(",")[0] in line and re.search(
                r"\(-?\d+\.\d{5}, -?\d+\.\d{5}\)", line
            )
        else:
            assert "near" not in line
    assert "approximate" in lines[-1]  # the compressed photo comes last, by its send time
    assert "Apple iPhone XR" in header and "Canon PowerShot SX60 HS" in header
    # The media follow in the same order as the manifest.
    labels = [t for t in texts(body) if re.fullmatch(r"\[photo \d+\]", t)]
    assert labels == [line.split("]")[0] + "]" for line in lines]


async def test_landmarks_blocked_for_recitation_is_asked_again_in_other_words(bot: Harness) -> None:
    lisbon = (DATA / "lisbon_iphone_xr.heic").read_bytes()
    bot.tg.send_document(bot.chat, bot.ana, lisbon, file_name="IMG_1.HEIC", mime_type="image/heic")
    await bot.wait_text(bot.chat["id"], "1 photo")
    bot.gemini.enqueue(
        Reply(finish_reason="RECITATION"),
        Reply(text="Near Belém you missed **Alfama** — winding lanes, in my words."),
    )
    bot.tg.send_command(bot.chat, bot.ana, "/landmarks")
    await bot.wait_text(bot.chat["id"], "you missed Alfama")
    first, second = bot.gemini.generate_requests()[-2:]
    assert "previous answer was stopped" in texts(second)[-1]
    assert "previous answer" not in texts(first)[-1]
    assert "Ajuda, Lisbon, Portugal" in "\n".join(texts(first))
    assert not any("too close to text" in t for t in bot.texts(bot.chat["id"]))
    [exchange] = bot.rows("SELECT * FROM exchanges")
    assert exchange["kind"] == "landmarks" and "previous answer" in exchange["prompt"]


async def test_landmarks_blocked_twice_gets_one_clear_sentence(bot: Harness) -> None:
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    await bot.wait_text(bot.chat["id"], "1 photo")
    bot.gemini.enqueue(Reply(finish_reason="RECITATION"), Reply(finish_reason="RECITATION"))
    bot.tg.send_command(bot.chat, bot.ana, "/landmarks")
    await bot.wait_text(bot.chat["id"], "too close to text published")
    assert bot.rows("SELECT * FROM exchanges") == []
