"""/story as one Telegram rich message (Bot API 10.1+), its draft, its limits and its fallback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.aiogram_check import check_payload
from tests.fakes.gemini_api import FakeGemini, Reply
from tests.fakes.telegram_api import FakeTelegram, SentMessage
from tests.fakes.telegram_rich import media_of
from tests.file_opens import FileOpens
from tests.harness import ANA, DATA, Harness, jpeg

CLOSING = "And then we flew home."


@pytest.fixture
async def bot(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, storage_env: dict[str, str]
) -> AsyncIterator[Harness]:
    """The bot with rich messages on, as in production (the harness's default is off)."""
    harness = Harness(tg, gemini, tmp_path / "data", RICH_STORY="true", **storage_env)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


def story(*sections: tuple[str, str, list[int]], title: str = "Trams and Tiles") -> dict[str, Any]:
    """A structured story as the model returns it."""
    return {
        "title": title,
        "intro": "Three days of **trams** and tiles.",
        "sections": [{"heading": h, "text": t, "media": m} for h, t, m in sections],
        "closing": CLOSING,
    }


async def _photos(bot: Harness, count: int, chat: dict[str, Any] | None = None) -> list[str]:
    """Send compressed photos; return the file_id of each (its largest size)."""
    chat = chat or bot.chat
    sent = [
        bot.tg.send_photo(chat, bot.ana, jpeg(n, size=(96, 64)), media_group_id=f"g{n // 10}")
        for n in range(count)
    ]
    await bot.wait_text(chat["id"], f"{count} photos", timeout=30)
    return [m["photo"][-1]["file_id"] for m in sent]


async def _story(bot: Harness, answer: dict[str, Any], chat: dict[str, Any] | None = None) -> None:
    """Ask for a story; wait until it is posted (its last message, with the buttons, is there:
    the closing in a streamed preview does not count)."""
    chat = chat or bot.chat
    bot.gemini.enqueue(Reply(json=answer))
    posted = len(_finished(bot, chat["id"]))
    bot.tg.send_command(chat, bot.ana, "/story")
    await bot.tg.wait_for(lambda: len(_finished(bot, chat["id"])) > posted, timeout=30)


def _finished(bot: Harness, chat_id: int) -> list[SentMessage]:
    return [
        m
        for m in bot.tg.bot_messages(chat_id)
        if CLOSING in (m.text or "") and "export" in _buttons(m) and not m.deleted
    ]


def _checked_wire(tg: FakeTelegram) -> list[dict[str, Any]]:
    """Every rich-message request the bot made, each built into aiogram's model of it."""
    rich = []
    for call in tg.requests:
        method = call.method.lower()
        if method in ("sendrichmessage", "sendrichmessagedraft") or (
            method == "editmessagetext" and "rich_message" in call.params
        ):
            check_payload(call.method, call.params)
            rich.append(call.params)
    return rich


def _sections(blocks: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Blocks after each size-2 heading, by the heading's text."""
    found: dict[str, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] | None = None
    for block in blocks:
        if block["type"] == "heading" and block["size"] == 2:
            current = found.setdefault(str(block["text"]), [])
        elif current is not None:
            current.append(block)
    return found


def _buttons(message: SentMessage) -> set[str]:
    markup = message.reply_markup or {}
    return {b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row}


async def test_story_is_one_rich_message_whose_collages_hold_exactly_each_sections_photos(
    bot: Harness,
) -> None:
    ids = await _photos(bot, 5)
    await _story(
        bot,
        story(
            ("By the river", "Boats (photos 1–3).", [1, 2, 3]),
            ("Up the hill", "The *tram* (photos 4–5).", [4, 5]),
        ),
    )
    [message] = bot.tg.rich_messages(bot.chat["id"])
    [call] = bot.tg.calls("sendRichMessage")
    assert bot.tg.calls("sendMediaGroup") == [] and bot.tg.calls("sendPhoto") == []
    blocks = message.rich["blocks"] if message.rich else []
    assert blocks[0] == {"type": "heading", "text": "Trams and Tiles", "size": 1}
    assert {"type": "bold", "text": "trams"} in blocks[1]["text"]
    sections = _sections(blocks)
    assert list(sections) == ["By the river", "Up the hill"]
    river = [b for b in sections["By the river"] if b["type"] == "collage"]
    hill = [b for b in sections["Up the hill"] if b["type"] == "collage"]
    assert [media_of(b) for b in river] == [ids[0:3]]  # by the photos' own file ids
    assert [media_of(b) for b in hill] == [ids[3:5]]
    assert "Boats (photos 1–3)." in (message.text or "") and CLOSING in (message.text or "")
    assert {"landmarks", "story_text", "export"} <= _buttons(message)
    assert message.reply_to_message_id is not None  # it answers the /story command
    assert "is_rtl" not in call.params["rich_message"]
    assert _checked_wire(bot.tg)
    bot.tg.press_button(bot.chat, bot.ana, message.message_id, "story_text")
    await bot.tg.wait_for(lambda: any("Up the hill" in t for t in bot.texts(bot.chat["id"])[-1:]))


async def test_a_section_whose_photos_carry_gps_gets_a_map(bot: Harness) -> None:
    lisbon = (DATA / "lisbon_iphone_xr.heic").read_bytes()
    rome = (DATA / "rome_iphone4.jpg").read_bytes()
    bot.tg.send_document(bot.chat, bot.ana, lisbon, file_name="IMG_1.HEIC", mime_type="image/heic")
    bot.tg.send_document(bot.chat, bot.ana, rome, file_name="IMG_2.JPG", mime_type="image/jpeg")
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(3))  # compressed: Telegram stripped its GPS
    await bot.wait_text(bot.chat["id"], "3 photos", timeout=30)
    # In time order: Rome (2011) is photo 2 but comes first, Lisbon (2019), then the new one.
    await _story(
        bot,
        story(
            ("Rome", "The bill (photo 2).", [2]),
            ("Belém", "Stone (photo 1).", [1]),
            ("Home", "A photo without a place (photo 3).", [3]),
        ),
    )
    [message] = bot.tg.rich_messages(bot.chat["id"])
    sections = _sections(message.rich["blocks"] if message.rich else [])
    maps = {name: [b for b in blocks if b["type"] == "map"] for name, blocks in sections.items()}
    [rome_map], [lisbon_map], home = maps["Rome"], maps["Belém"], maps["Home"]
    assert home == []
    assert abs(lisbon_map["location"]["latitude"] - 38.6995) < 0.001
    assert abs(lisbon_map["location"]["longitude"] + 9.2077) < 0.001
    assert abs(rome_map["location"]["latitude"] - 41.853) < 0.001
    assert 0 <= lisbon_map["zoom"] <= 24
    # Photos sent as files go as upright JPEGs uploaded with the message.
    [call] = bot.tg.calls("sendRichMessage")
    [photo] = [b for b in sections["Belém"] if b["type"] == "photo"]
    name = photo["photo"]["media"].removeprefix("attach://")
    assert call.files[name][:3] == b"\xff\xd8\xff"
    _checked_wire(bot.tg)


async def test_sixty_photo_album_continues_in_a_second_rich_message_at_a_section_boundary(
    bot: Harness,
) -> None:
    ids = await _photos(bot, 60)
    thirds = [list(range(1, 21)), list(range(21, 41)), list(range(41, 61))]
    await _story(bot, story(*((f"Day {n + 1}", f"Day {n + 1}.", m) for n, m in enumerate(thirds))))
    first, second = bot.tg.rich_messages(bot.chat["id"])
    blocks_1 = first.rich["blocks"] if first.rich else []
    blocks_2 = second.rich["blocks"] if second.rich else []
    assert list(_sections(blocks_1)) == ["Day 1", "Day 2"]
    assert blocks_2[0] == {"type": "heading", "text": "Day 3", "size": 2}  # a section boundary
    shown_1 = [m for b in blocks_1 for m in media_of(b)]
    shown_2 = [m for b in blocks_2 for m in media_of(b)]
    assert shown_1 == ids[:40] and shown_2 == ids[40:]
    assert _buttons(first) == set() and "export" in _buttons(second)
    assert len(bot.tg.calls("sendRichMessage")) == 2
    _checked_wire(bot.tg)


async def test_an_older_bot_api_server_gets_the_classic_story_and_is_not_asked_again(
    bot: Harness,
) -> None:
    bot.tg.rich_supported = False  # answers 404 "method not found", as telegram-bot-api < 10.1
    await _photos(bot, 3)
    await _story(bot, story(("River", "Boats (photos 1–3).", [1, 2, 3])))
    assert bot.tg.calls("sendMediaGroup"), "the story's photos went the classic way"
    closing = [m for m in bot.tg.bot_messages(bot.chat["id"]) if CLOSING in (m.text or "")][-1]
    assert "export" in _buttons(closing)
    tried = bot.tg.calls("sendRichMessage") + bot.tg.calls("sendRichMessageDraft")
    assert tried and all("method not found" in (c.error or "") for c in tried)

    await _story(bot, story(("Hill", "Trams (photos 1–3).", [1, 2, 3])))
    assert len(bot.tg.calls("sendMediaGroup")) == 2
    again = bot.tg.calls("sendRichMessage") + bot.tg.calls("sendRichMessageDraft")
    assert len(again) == len(tried)  # remembered: the second story did not try again
    assert bot.tg.rich_messages(bot.chat["id"]) == []


async def test_a_refused_rich_message_falls_back_for_that_story_only(bot: Harness) -> None:
    await _photos(bot, 2)
    bot.tg.fail_next("sendRichMessage", 400, "Bad Request: RICH_MESSAGE_INVALID")
    await _story(bot, story(("River", "Boats (photos 1–2).", [1, 2])))
    assert len(bot.tg.calls("sendMediaGroup")) == 1
    assert bot.tg.rich_messages(bot.chat["id"]) == []
    assert len(bot.tg.calls("sendRichMessage")) == 1  # a refusal is not sent again
    bot.gemini.enqueue(Reply(json=story(("Hill", "Trams (photos 1–2).", [1, 2]))))
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.tg.wait_for(lambda: bot.tg.rich_messages(bot.chat["id"]), timeout=30)
    assert len(bot.tg.calls("sendMediaGroup")) == 1


async def test_the_rich_draft_grows_section_by_section_while_the_model_writes(
    bot: Harness,
) -> None:
    await _photos(bot, 3)
    names = ["Morning", "Noon", "Evening"]
    answer = story(
        *((name, f"{name} by the water (photo {n}).", [n]) for n, name in enumerate(names, 1))
    )
    text = json.dumps(answer)
    cut_1, cut_2 = text.index('{"heading": "Noon"'), text.index('{"heading": "Evening"')
    gates = [asyncio.Event(), asyncio.Event()]
    chunks = [text[:cut_1], text[cut_1:cut_2], text[cut_2:]]
    bot.gemini.enqueue(Reply(text=text, chunks=chunks, chunk_gates=gates))
    bot.tg.send_command(bot.chat, bot.ana, "/story")

    def drafted(count: int) -> bool:
        shown = [list(_sections(r["blocks"])) for _, r in bot.tg.rich_drafts(bot.chat["id"])]
        return names[:count] in shown

    for count, gate in enumerate(gates, start=1):  # the model writes one section at a time
        await bot.tg.wait_for(lambda count=count: drafted(count), timeout=30)
        gate.set()
    await bot.tg.wait_for(lambda: _finished(bot, bot.chat["id"]), timeout=30)
    assert drafted(3)
    headings = [list(_sections(r["blocks"])) for _, r in bot.tg.rich_drafts(bot.chat["id"])]
    assert all(h == names[: len(h)] for h in headings)  # each draft is the story so far
    assert [len(h) for h in headings] == sorted(len(h) for h in headings)
    _checked_wire(bot.tg)


async def test_in_a_group_the_writing_message_becomes_the_rich_story(bot: Harness) -> None:
    group = bot.tg.group_chat(chat_id=-100778, title="Trip")
    await _photos(bot, 2, chat=group)
    await _story(bot, story(("Pastries", "Pastries (photos 1–2).", [1, 2])), chat=group)
    [message] = bot.tg.rich_messages(group["id"])
    assert message.history[0].startswith("✍️")  # the placeholder, edited into the story
    assert "export" in _buttons(message)
    assert bot.tg.calls("sendRichMessage") == [] and not bot.tg.rich_drafts(group["id"])
    _checked_wire(bot.tg)


async def test_the_story_is_right_to_left_for_a_persian_speaker(bot: Harness) -> None:
    farsi = bot.tg.user(user_id=ANA, first_name="Ana", username="ana", language_code="fa")
    bot.ana = farsi
    await _photos(bot, 2)
    await _story(bot, story(("رود", "قایق‌ها (photos 1–2).", [1, 2])))
    [call] = bot.tg.calls("sendRichMessage")
    assert call.params["rich_message"]["is_rtl"] is True
    _checked_wire(bot.tg)


async def test_a_chat_that_chose_arabic_gets_its_story_in_arabic_right_to_left(
    bot: Harness,
) -> None:
    # Ana's Telegram is in English; the chat chose Arabic. The model is told to write Arabic,
    # and the story, its draft and its web page read right to left.
    await _photos(bot, 2)
    bot.tg.send_command(bot.chat, bot.ana, "/language ar")
    await bot.wait_text(bot.chat["id"], "العربية")
    await _story(bot, story(("النهر", "القوارب (photos 1–2).", [1, 2])))
    system = bot.gemini.generate_requests()[-1]["systemInstruction"]["parts"][0]["text"]
    assert "Write in Arabic" in system
    [call] = bot.tg.calls("sendRichMessage")
    assert call.params["rich_message"]["is_rtl"] is True
    drafts = bot.tg.calls("sendRichMessageDraft")
    assert drafts and all(d.params["rich_message"]["is_rtl"] is True for d in drafts)
    _checked_wire(bot.tg)

    [message] = bot.tg.rich_messages(bot.chat["id"])
    bot.tg.press_button(bot.chat, bot.ana, message.message_id, "export")
    await bot.tg.wait_for(lambda: len(bot.tg.calls("sendDocument")) == 2, timeout=30)
    [page] = bot.tg.calls("sendDocument")[0].files.values()
    assert '<html lang="ar" dir="rtl">' in page.decode()


async def test_rich_story_off_posts_the_classic_story(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    bot = Harness(tg, gemini, tmp_path / "data", RICH_STORY="false")
    await bot.start()
    try:
        await _photos(bot, 2)
        await _story(bot, story(("River", "Boats (photos 1–2).", [1, 2])))
    finally:
        await bot.stop()
    assert len(tg.calls("sendMediaGroup")) == 1
    assert tg.calls("sendRichMessage") == [] and tg.calls("sendRichMessageDraft") == []


@pytest.mark.embedded_only("it watches the files under DATA_DIR/media being opened")
async def test_a_long_storys_uploads_are_read_for_the_rich_message_that_shows_them(
    bot: Harness,
) -> None:
    # Photos and a video sent as files go up with the rich message that shows them; a later
    # message's are read only once the earlier one went (a few 50 MB videos would not all
    # fit in memory at once).
    for n in range(57):
        bot.tg.send_photo(bot.chat, bot.ana, jpeg(n, size=(96, 64)), media_group_id=f"g{n // 10}")
    files = {
        "rome.jpg": (DATA / "rome_iphone4.jpg").read_bytes(),
        "pier.jpg": (DATA / "bc_canada_olympus_fe230.jpg").read_bytes(),
    }
    for name, data in files.items():
        bot.tg.send_document(bot.chat, bot.ana, data, file_name=name, mime_type="image/jpeg")
    clip = (DATA / "netherlands_ducks_with_gps.mp4").read_bytes()
    bot.tg.send_document(bot.chat, bot.ana, clip, file_name="pier.mp4", mime_type="video/mp4")
    await bot.wait_text(bot.chat["id"], "59 photos, 1 video", timeout=60)
    await bot.wait_stored(timeout=60)  # acknowledged as received: stored by the files' jobs
    rows = bot.rows("SELECT position, kind, source_sha256, telegram_type FROM items")
    blob = {r["position"]: bot.data_dir / "media" / r["source_sha256"][:2] / r["source_sha256"]
            for r in rows}  # fmt: skip
    rome, pier = (
        next(p for p, path in blob.items() if path.read_bytes() == data) for data in files.values()
    )
    [video] = [r["position"] for r in rows if r["kind"] == "video"]
    compressed = [r["position"] for r in rows if r["telegram_type"] == "photo"]
    days = [[rome, *compressed[:19]], compressed[19:39], [pier, video, *compressed[39:]]]
    written, sent = asyncio.Event(), asyncio.Event()
    bot.tg.hold_method("sendRichMessage", sent)
    opens = FileOpens(blob.values())
    try:
        answer = story(*((f"Day {n}", "A day.", m) for n, m in enumerate(days)))
        bot.gemini.enqueue(Reply(json=answer, gate=written))
        bot.tg.send_command(bot.chat, bot.ana, "/story")
        await bot.tg.wait_for(bot.gemini.generate_requests, timeout=30)
        writing = len(opens.opened())  # what the model was sent is not what this test is about
        written.set()
        await bot.tg.wait_for(lambda: bot.tg.calls("sendRichMessage"), timeout=30)
        before = opens.opened()[writing:]  # the bot waits for Telegram to take its first message
        sent.set()
        await bot.tg.wait_for(lambda: len(bot.tg.rich_messages(bot.chat["id"])) == 2, timeout=30)
        after = opens.opened()[writing:]
    finally:
        written.set()
        sent.set()
        opens.close()
    first, second = bot.tg.calls("sendRichMessage")
    assert list(first.files) == [f"photo{rome}"]
    assert sorted(second.files) == sorted([f"photo{pier}", f"video{video}"])
    assert before.count(blob[rome]) == 1  # the watch sees the bot's reads
    assert blob[pier] not in before and blob[video] not in before
    assert after.count(blob[pier]) == 1 and after.count(blob[video]) == 1
    _checked_wire(bot.tg)
