"""/story: one request with the whole album, streamed while written, posted with its photos."""

from __future__ import annotations

import json
from typing import Any

import pytest
from PIL import Image

from tests.fakes.gemini_api import Reply, file_uris, image_parts, texts
from tests.fakes.telegram_api import SentMessage
from tests.fakes.telegram_html import parse_html
from tests.harness import DATA, Harness
from tests.image_files import jpeg


def story(*sections: tuple[str, str, list[int]], title: str = "A Day in Belém") -> dict[str, Any]:
    """A structured story as the model returns it."""
    return {
        "title": title,
        "intro": "Three days of trams and tiles.",
        "sections": [{"heading": h, "text": t, "media": m} for h, t, m in sections],
        "closing": "And then we flew home.",
    }


async def _album(bot: Harness, count: int = 13) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    tg.send_text(chat, ana, "Our first week in Lisbon, with my sister")
    for n in range(count):
        caption = "Belém at noon" if n == 0 else None
        tg.send_photo(chat, ana, jpeg(n), caption=caption, media_group_id="g" if n < 10 else None)
    await bot.wait_text(chat["id"], f"{count} photos")


def _posted(bot: Harness, chat_id: int) -> list[SentMessage]:
    return [m for m in bot.tg.bot_messages(chat_id) if not (m.text or "").startswith("📸")]


def _shown_photos(bot: Harness, chat_id: int) -> int:
    return sum(1 for m in bot.tg.bot_messages(chat_id) if m.kind == "photo")


async def test_story_request_holds_every_photo_with_captions_and_context(bot: Harness) -> None:
    await _album(bot)
    answer = story(
        ("Morning by the river", "The **monastery** (photos 1–10).", list(range(1, 11))),
        ("Lunch", "Pastries and coffee (photos 11–13). *Delicious.*", [11, 12, 13]),
    )
    bot.gemini.enqueue(Reply(json=answer, chunks=None))
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "And then we flew home")

    [body] = bot.gemini.generate_requests()
    assert len(image_parts(body)) == 13
    assert len(set(file_uris(body))) == 13
    joined = "\n".join(texts(body))
    assert "Belém at noon" in joined
    assert "Our first week in Lisbon, with my sister" in joined
    assert "photo tour" in joined
    assert "sections" in body["generationConfig"]["responseJsonSchema"]["properties"]

    posted = _posted(bot, bot.chat["id"])
    title = next(m for m in posted if "A Day in Belém" in (m.text or ""))
    assert title.parse_mode == "HTML" and "Three days of trams" in (title.text or "")
    plain, _ = parse_html(title.html or "")
    assert "#" not in plain
    groups = bot.tg.calls("sendMediaGroup")
    assert [len(c.params["media"]) for c in groups] == [10, 3]
    assert "Morning by the river" in groups[0].params["media"][0]["caption"]
    assert _shown_photos(bot, bot.chat["id"]) == 13
    closing = posted[-1]
    buttons = [b["callback_data"] for row in closing.reply_markup["inline_keyboard"] for b in row]
    assert {"landmarks", "story_text", "export"} <= set(buttons)
    assert bot.tg.drafts(bot.chat["id"]), "a private chat sees the story as drafts while written"
    assert "typing" in bot.tg.actions(bot.chat["id"])
    assert bot.tg.calls("sendPhoto") == []  # compressed photos are posted again by file_id
    assert len(bot.rows("SELECT * FROM exchanges")) == 1


async def test_drafts_show_the_story_text_while_it_streams(bot: Harness) -> None:
    await _album(bot, count=2)
    answer = story(("The hill", "We climbed " + "and climbed " * 30 + "(photo 1).", [1, 2]))
    text = json.dumps(answer)
    # The chunks come over time, as a stream does (all at once, under load the story could
    # be whole before the first draft went out).
    chunks = [text[i : i + 40] for i in range(0, len(text), 40)]
    bot.gemini.enqueue(Reply(text=text, chunks=chunks, chunk_delay=0.05))
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "And then we flew home")
    drafts = [t for _, t in bot.tg.drafts(bot.chat["id"])]
    assert any("We climbed" in d and "{" not in d for d in drafts)  # Markdown, not raw JSON


async def test_long_section_is_split_at_paragraphs_within_telegram_limits(bot: Harness) -> None:
    await _album(bot, count=2)
    paragraphs = [f"Paragraph {n}: " + "the tram climbs the hill again. " * 40 for n in range(12)]
    answer = story(("Long", "\n\n".join(paragraphs), [1, 2]))
    bot.gemini.enqueue(Reply(json=answer))
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "And then we flew home")

    pieces = [
        m.text or "" for m in bot.tg.bot_messages(bot.chat["id"]) if "tram climbs" in (m.text or "")
    ]
    assert len(pieces) >= 4
    assert all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in pieces)
    assert pieces[0].startswith("Long")
    for piece in pieces[1:]:  # each piece starts at a paragraph boundary
        assert piece.startswith("Paragraph")
    joined = " ".join(pieces)
    for n in range(12):
        assert joined.count(f"Paragraph {n}:") == 1
    assert len(bot.tg.calls("sendMediaGroup")) == 1  # the photos follow the long text


async def test_missing_and_uncited_photos_are_repaired_and_uncited_sections_dropped(
    bot: Harness,
) -> None:
    await _album(bot, count=5)
    answer = story(
        ("Belém", "The monastery (photos 1–2).", [1, 2, 42]),  # 42 does not exist
        ("Hollywood", "We saw the Hollywood sign.", []),  # cites nothing: invented
        ("Alfama", "Tiles (photo 4).", [4]),
    )  # photos 3 and 5 are cited nowhere
    bot.gemini.enqueue(Reply(json=answer))
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "And then we flew home")
    assert not any("Hollywood" in t for t in bot.texts(bot.chat["id"]))
    assert _shown_photos(bot, bot.chat["id"]) == 5  # every photo exactly once
    [first, second] = bot.tg.calls("sendMediaGroup")
    assert len(first.params["media"]) == 3 and len(second.params["media"]) == 2


async def test_story_in_a_group_streams_by_editing_one_message(bot: Harness) -> None:
    group = bot.tg.group_chat(chat_id=-100777, title="Trip")
    bot.tg.send_photo(group, bot.ana, jpeg(1))
    bot.tg.send_photo(group, bot.bob_en, jpeg(2))
    await bot.wait_text(group["id"], "2 photos")
    bot.gemini.enqueue(Reply(json=story(("Pastries", "Pastries and coffee.", [1, 2]))))
    bot.tg.send_command(group, bot.bob, "/story")
    await bot.wait_text(group["id"], "And then we flew home")
    title = next(m for m in bot.tg.bot_messages(group["id"]) if "Belém" in (m.text or ""))
    assert title.history[0].startswith("✍️")  # the placeholder became the title
    assert not bot.tg.drafts(group["id"])
    body = bot.gemini.generate_requests()[0]
    assert "Portuguese" in body["systemInstruction"]["parts"][0]["text"]  # Bob's language


async def test_photos_sent_as_files_are_posted_as_web_jpegs(bot: Harness) -> None:
    heic = (DATA / "lisbon_iphone_xr.heic").read_bytes()
    bot.tg.send_document(bot.chat, bot.ana, heic, file_name="IMG_1.HEIC", mime_type="image/heic")
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(2))
    await bot.wait_text(bot.chat["id"], "2 photos")
    bot.gemini.enqueue(Reply(json=story(("Belém", "Stone and sky.", [1, 2]))))
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "And then we flew home")
    [call] = bot.tg.calls("sendMediaGroup")
    media = call.params["media"]
    assert media[0]["media"].startswith("attach://")  # our upright JPEG of the HEIC
    assert not media[1]["media"].startswith("attach://")  # Telegram's own photo, by file_id
    assert call.files[media[0]["media"].removeprefix("attach://")][:3] == b"\xff\xd8\xff"


async def test_text_only_button_sends_the_same_story_without_pictures(bot: Harness) -> None:
    await _album(bot, count=2)
    bot.gemini.enqueue(Reply(json=story(("Trams", "Yellow trams (photo 1).", [1, 2]))))
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "And then we flew home")
    closing = _posted(bot, bot.chat["id"])[-1]
    bot.tg.press_button(bot.chat, bot.ana, closing.message_id, "story_text")
    await bot.tg.wait_for(
        lambda: any(
            "A Day in Belém" in t and "Yellow trams" in t for t in bot.texts(bot.chat["id"])
        )
    )
    assert len(bot.gemini.generate_requests()) == 1  # no new model call


async def test_story_in_markdown_despite_the_schema_is_still_posted(bot: Harness) -> None:
    await _album(bot, count=2)
    bot.gemini.enqueue(
        Reply(text="# Plain\n\n## River\n\nBoats (photo 1).\n\n## Hill\n\nView (photo 2).")
    )
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "View (photo 2)")
    assert _shown_photos(bot, bot.chat["id"]) == 2


async def test_export_sends_a_web_page_and_a_markdown_zip_of_the_story(bot: Harness) -> None:
    import io
    import zipfile

    bot.tg.send_command(bot.chat, bot.ana, "/export")
    await bot.wait_text(bot.chat["id"], "There is no story")
    await _album(bot, count=3)
    bot.gemini.enqueue(Reply(json=story(("Trams", "Yellow <b>trams</b> & hills.", [1, 2, 3]))))
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "And then we flew home")
    closing = _posted(bot, bot.chat["id"])[-1]
    bot.tg.press_button(bot.chat, bot.ana, closing.message_id, "export")
    await bot.tg.wait_for(lambda: len(bot.tg.calls("sendDocument")) == 2)
    page_call, zip_call = bot.tg.calls("sendDocument")
    [page] = page_call.files.values()
    html = page.decode()
    assert "A Day in Belém" in html and html.count("data:image/jpeg;base64,") == 3
    assert "&lt;b&gt;trams&lt;/b&gt; &amp; hills" in html
    assert page_call.file_names["document"].endswith(".html")
    [archive] = zip_call.files.values()
    names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
    assert "story.md" in names and sum(n.startswith("images/") for n in names) == 3


async def test_export_too_heavy_for_telegram_is_sent_with_smaller_pictures(
    bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import zipfile

    from bot.telegram import story_handlers

    for n in range(3):
        bot.tg.send_photo(bot.chat, bot.ana, jpeg(n, size=(1600, 1200)))
    await bot.wait_text(bot.chat["id"], "3 photos")
    bot.gemini.enqueue(Reply(json=story(("Hills", "Up and down.", [1, 2, 3]))))
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "And then we flew home")
    bot.tg.send_command(bot.chat, bot.ana, "/export")
    await bot.tg.wait_for(lambda: len(bot.tg.calls("sendDocument")) == 2)
    full = [next(iter(c.files.values())) for c in bot.tg.calls("sendDocument")]

    limit = min(len(f) for f in full) // 2  # as if Telegram took half of the smaller one
    monkeypatch.setattr(story_handlers, "BOT_UPLOAD_LIMIT", limit)
    bot.tg.send_command(bot.chat, bot.ana, "/export")
    await bot.tg.wait_for(lambda: len(bot.tg.calls("sendDocument")) == 4)
    page, archive = [next(iter(c.files.values())) for c in bot.tg.calls("sendDocument")[2:]]
    assert len(page) <= limit and len(archive) <= limit
    assert page.decode().count("data:image/jpeg;base64,") == 3
    with zipfile.ZipFile(io.BytesIO(archive)) as smaller:
        pictures = [n for n in smaller.namelist() if n.startswith("images/")]
        assert len(pictures) == 3
        with Image.open(io.BytesIO(smaller.read(pictures[0]))) as picture:
            assert 480 <= max(picture.size) < 1600
    assert not any("even with smaller pictures" in t for t in bot.texts(bot.chat["id"]))
