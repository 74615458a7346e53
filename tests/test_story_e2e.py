"""/story: one request with the whole album, streamed into the chat, split and formatted safely."""

from __future__ import annotations

from tests.fakes.gemini_api import Reply, file_uris, image_parts, texts
from tests.fakes.telegram_html import parse_html
from tests.harness import Harness, jpeg

STORY = """# A Day in Belém

## Morning by the river
We started at the **monastery** (photos 1–3), its stone glowing in the sun.

## Lunch
Pastries and coffee (photo 4). *Delicious.*
"""


async def _album(bot: Harness, count: int = 13) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    tg.send_text(chat, ana, "Our first week in Lisbon, with my sister")
    for n in range(count):
        caption = "Belém at noon" if n == 0 else None
        tg.send_photo(chat, ana, jpeg(n), caption=caption, media_group_id="g" if n < 10 else None)
    await bot.wait_text(chat["id"], f"{count} photos")


async def test_story_request_holds_every_photo_with_captions_and_context(bot: Harness) -> None:
    await _album(bot)
    bot.gemini.enqueue(Reply(text=STORY, chunks=[STORY[:40], STORY[40:120], STORY[120:]]))
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "Pastries and coffee")

    bodies = bot.gemini.generate_requests()
    assert len(bodies) == 1
    body = bodies[0]
    assert len(image_parts(body)) == 13
    assert len(set(file_uris(body))) == 13
    joined = "\n".join(texts(body))
    assert "Belém at noon" in joined
    assert "Our first week in Lisbon, with my sister" in joined
    assert "photo tour" in joined

    final = [m for m in bot.tg.bot_messages(bot.chat["id"]) if "Belém" in (m.text or "")][-1]
    assert final.parse_mode == "HTML"
    plain, _ = parse_html(final.html)
    assert "A Day in Belém" in plain and "**" not in plain and "#" not in plain
    assert bot.tg.drafts(bot.chat["id"]), "a private chat sees the story as drafts while written"
    assert "typing" in bot.tg.actions(bot.chat["id"])
    assert len(bot.rows("SELECT * FROM exchanges")) == 1


async def test_long_story_is_split_at_paragraphs_within_telegram_limits(bot: Harness) -> None:
    await _album(bot, count=2)
    paragraphs = [f"Paragraph {n}: " + "the tram climbs the hill again. " * 40 for n in range(12)]
    long_story = "# Long\n\n" + "\n\n".join(paragraphs)
    assert len(long_story) > 3 * 4096
    bot.gemini.enqueue(Reply(text=long_story))
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "Paragraph 11")

    pieces = [m.text or "" for m in bot.tg.bot_messages(bot.chat["id"]) if "tram" in (m.text or "")]
    assert len(pieces) >= 4
    assert all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in pieces)
    for piece in pieces:  # each piece starts at a paragraph boundary
        assert piece.startswith(("Long", "Paragraph"))
    joined = " ".join(pieces)
    for n in range(12):
        assert joined.count(f"Paragraph {n}:") == 1


async def test_story_in_a_group_streams_by_editing_one_message(bot: Harness) -> None:
    group = bot.tg.group_chat(chat_id=-100777, title="Trip")
    bot.tg.send_photo(group, bot.ana, jpeg(1))
    bot.tg.send_photo(group, bot.bob, jpeg(2))
    await bot.wait_text(group["id"], "2 photos")
    bot.gemini.enqueue(Reply(text=STORY, chunks=[STORY[:60], STORY[60:]]))
    bot.tg.send_command(group, bot.bob, "/story")
    await bot.wait_text(group["id"], "Pastries and coffee")
    story = next(m for m in bot.tg.bot_messages(group["id"]) if "Pastries" in (m.text or ""))
    assert story.history[0].startswith("✍️")  # the placeholder became the story
    assert not bot.tg.drafts(group["id"])
    body = bot.gemini.generate_requests()[0]
    assert "Portuguese" in body["systemInstruction"]["parts"][0]["text"]  # Bob's language
