"""Bad input: each gets a clear reply, what is stored stays intact, the bot keeps serving."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.fakes.gemini_api import FakeGemini, Reply, texts
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_html import utf16_len
from tests.harness import DATA, Harness
from tests.image_files import jpeg, png_declaring

MakeBot = Callable[..., Awaitable[Harness]]
APOLOGY = "something went wrong"
# Text a traveller might paste: markup of every kind Telegram knows, scripts, emoji, both
# directions of writing. No "?": a message with one is a question, not a note.
HOSTILE = (
    "<b>bold</b> <i>it</i> <a href='javascript:alert(1)'>link</a> <script>alert('x')</script> "
    "&amp; &lt;tag&gt; **stars** __under__ _it_ `code` ```fence``` [md](http://e.com) ~~s~~ "
    "||spoiler|| 😀 👩‍👩‍👧 🇵🇹 עברית مرحبا \u202eevil.exe\u202c ' \" ; -- "
)


@dataclass(frozen=True)
class Snapshot:
    """What is stored: rows of the album's tables and every file under the data directory."""

    items: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    blobs: list[dict[str, Any]]
    files: dict[str, str]  # path under DATA_DIR -> sha256 of its bytes
    outside: set[str]  # every path under the test's tmp directory but outside DATA_DIR


@pytest.fixture
async def make_bot(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path, storage_env: dict[str, str]
) -> AsyncIterator[MakeBot]:
    """Start the real bot with extra settings (a small pixel limit, a small album cap...)."""
    started: list[Harness] = []

    async def make(**extra: str) -> Harness:
        harness = Harness(tg, gemini, tmp_path / "data", **{**storage_env, **extra})
        await harness.start()
        started.append(harness)
        return harness

    try:
        yield make
    finally:
        for harness in started:
            await harness.stop()


def _dicts(bot: Harness, sql: str) -> list[dict[str, Any]]:
    return [dict(row) for row in bot.rows(sql)]


def _snapshot(bot: Harness) -> Snapshot:
    data = bot.data_dir
    files = {}
    for p in bot.media_files():  # under DATA_DIR/media, or in the bucket
        content = bot.blob_bytes(p.name)
        files[p.name] = hashlib.sha256(content or b"").hexdigest()
    outside = {
        str(p.relative_to(data.parent))
        for p in data.parent.rglob("*")
        if data not in p.parents and p != data
    }
    return Snapshot(
        items=_dicts(bot, "SELECT * FROM items ORDER BY id"),
        notes=_dicts(bot, "SELECT * FROM notes ORDER BY id"),
        blobs=_dicts(bot, "SELECT * FROM blobs ORDER BY sha256"),
        files=files,
        outside=outside,
    )


async def _two_photos(bot: Harness) -> Snapshot:
    """Store two good photos and return what is stored."""
    await bot.two_photos(model_ready=True)
    before = _snapshot(bot)
    assert len(before.items) == 2 and len(before.files) == 4  # originals and the model's copies
    return before


def _assert_intact(bot: Harness, before: Snapshot) -> None:
    """Earlier rows and files are byte-identical; nothing new was stored or left behind."""
    after = _snapshot(bot)
    assert after.items == before.items
    assert after.notes == before.notes
    assert after.blobs == before.blobs
    assert after.files == before.files
    assert after.outside == before.outside
    assert list((bot.data_dir / "tmp").iterdir()) == []  # no scratch file left behind
    assert not any(APOLOGY in t.lower() for t in bot.texts(bot.chat["id"]))


async def _next_photo_counts(bot: Harness, count: int) -> None:
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(100 + count))
    # The album's total ("“My trip”: 3 photos"), not the burst's "added 3 photos", which
    # counts a file whose check failed after it was received.
    await bot.wait_text(bot.chat["id"], f"”: {count} photos")
    await bot.wait_stored()  # acknowledged as received: stored by the file's job
    assert len(bot.rows("SELECT * FROM items")) == count


async def _reply_to(bot: Harness, message: dict[str, Any], needle: str) -> str:
    """Wait for the bot's reply containing `needle` and check it quotes `message`."""
    text = await bot.wait_reply(message, needle)
    assert text.rstrip().rstrip(")").endswith(".") and "Traceback" not in text
    return text


async def _named_in_the_acknowledgement(
    bot: Harness, message: dict[str, Any], name: str, reason: str
) -> str:
    """Wait for the burst's acknowledgement to name a file that failed its check once
    downloaded (no reply of its own: issue 21), once, with the album's total left as it was."""
    line = f"⚠️ {name} could not be added: {reason}"
    text = await bot.wait_text(bot.chat["id"], line)
    assert text.startswith("📸 Album “My trip”: 2 photos\n") and "Traceback" not in text
    assert sum(line in t for t in bot.texts(bot.chat["id"])) == 1
    replies = [m for m in bot.tg.bot_messages(bot.chat["id"])
               if m.reply_to_message_id == message["message_id"]]  # fmt: skip
    assert replies == []
    return text


def _png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, 200).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photos/IMG_1.jpg", jpeg(7))
    return buffer.getvalue()


def _with_garbage_over_tables(data: bytes) -> bytes:
    """A JPEG whose quantisation and Huffman tables are overwritten with zeros."""
    return data[:20] + b"\x00" * 200 + data[220:]


def _fill(unit: str, limit: int) -> str:
    """`unit` repeated and cut to exactly `limit` UTF-16 units, ending in a visible character."""
    text = ""
    while utf16_len(text + unit) <= limit:
        text += unit
    for char in unit:
        if utf16_len(text + char) > limit:
            break
        text += char
    text = text.rstrip()
    return text + "." * (limit - utf16_len(text))


# Files the bot must refuse: (document bytes, file name, MIME type, words of the reply, or of
# the reason the burst's acknowledgement gives for a file refused once downloaded).
HEIC = (DATA / "lisbon_iphone_xr.heic").read_bytes()
MOV = (DATA / "israel_iphone6_with_gps.mov").read_bytes()
UNREADABLE = "it could not be read as a photo, video or recording"
REFUSED_FILES = {
    "jpeg_cut_in_half": (jpeg(5)[: len(jpeg(5)) // 2], "IMG_5.jpg", "image/jpeg", UNREADABLE),
    "jpeg_garbage_over_tables": (
        _with_garbage_over_tables(jpeg(5)), "IMG_5.jpg", "image/jpeg", UNREADABLE
    ),
    "heic_truncated_at_40_percent": (
        HEIC[: len(HEIC) * 4 // 10], "IMG_0001.HEIC", "image/heic", UNREADABLE
    ),
    "mov_cut_in_half": (MOV[: len(MOV) // 2], "IMG_0002.MOV", "video/quicktime", UNREADABLE),
    "zero_bytes": (b"", "IMG_9.jpg", "image/jpeg", "the file is empty"),
    "pdf": (b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n", "trip.pdf",
            "application/pdf", "only add photos, videos and voice notes"),
    "zip": (_zip(), "photos.zip", "application/zip", "only add photos, videos and voice notes"),
    "windows_exe": (b"MZ\x90\x00\x03" + b"\x00" * 200, "setup.exe", "application/x-msdownload",
                    "only add photos, videos and voice notes"),
    "elf_binary": (b"\x7fELF\x02\x01\x01" + b"\x00" * 200, "run", "application/octet-stream",
                   "only add photos, videos and voice notes"),
    "elf_named_like_a_photo": (b"\x7fELF\x02\x01\x01" + b"\x00" * 200, "IMG_2.jpg",
                               "image/jpeg", "it is not a photo, video or voice note"),
}  # fmt: skip
# Refused from what the message says, before anything is downloaded.
REFUSED_UNSEEN = {"pdf", "zip", "windows_exe", "elf_binary"}


@pytest.mark.parametrize("case", list(REFUSED_FILES))
async def test_file_that_is_not_a_usable_photo_gets_a_clear_reply_and_changes_nothing(
    bot: Harness, case: str
) -> None:
    data, name, mime, expected = REFUSED_FILES[case]
    before = await _two_photos(bot)
    downloads = len(bot.tg.getfile_calls())

    sent = bot.tg.send_document(bot.chat, bot.ana, data, file_name=name, mime_type=mime)
    if case in REFUSED_UNSEEN:
        await _reply_to(bot, sent, expected)
    else:  # found out once downloaded: named in the burst's acknowledgement
        await _named_in_the_acknowledgement(bot, sent, name, expected)

    _assert_intact(bot, before)
    if case in REFUSED_UNSEEN:
        assert len(bot.tg.getfile_calls()) == downloads
    await _next_photo_counts(bot, 3)


@pytest.mark.parametrize(
    ("width", "height"),
    [(1200, 1000), (100_000, 100_000)],
    ids=["over_the_configured_limit", "header_declares_ten_gigapixels"],
)
async def test_decompression_bomb_is_refused_before_decoding(
    make_bot: MakeBot, width: int, height: int
) -> None:
    bot = await make_bot(MAX_IMAGE_PIXELS="1000000")
    before = await _two_photos(bot)
    data = _png((width, height)) if width * height < 10**7 else png_declaring(width, height)
    assert len(data) < 20_000  # tiny on the wire, huge in memory

    sent = bot.tg.send_document(
        bot.chat, bot.ana, data, file_name="bomb.png", mime_type="image/png"
    )
    await _named_in_the_acknowledgement(bot, sent, "bomb.png", "it is too large for me to open")

    _assert_intact(bot, before)
    await _next_photo_counts(bot, 3)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("document", "This file is 30 MB"), ("video", "This video is 30 MB")],
)
async def test_file_over_the_download_limit_is_refused_before_any_download(
    bot: Harness, kind: str, expected: str
) -> None:
    before = await _two_photos(bot)
    downloads = len(bot.tg.getfile_calls())
    size = 30 * 2**20
    if kind == "document":
        sent = bot.tg.send_document(
            bot.chat, bot.ana, jpeg(3), "IMG_3.jpg", "image/jpeg", file_size=size
        )
    else:
        sent = bot.tg.send_video(bot.chat, bot.ana, b"\x00" * 64, file_size=size)

    text = await _reply_to(bot, sent, expected)
    assert "at most 20 MB" in text

    assert len(bot.tg.getfile_calls()) == downloads
    _assert_intact(bot, before)
    await _next_photo_counts(bot, 3)


@pytest.mark.parametrize(
    ("file_name", "stored"),
    [
        ("../../etc/passwd.jpg", "passwd.jpg"),
        ("..\\..\\evil.jpg", "evil.jpg"),
        ("/abs/path.jpg", "path.jpg"),
        ("C:\\Users\\ana\\..\\IMG_1.jpg", "IMG_1.jpg"),
        ("holiday/..", None),
    ],
)
async def test_file_name_with_folders_is_stored_as_a_bare_name_inside_the_data_dir(
    bot: Harness, file_name: str, stored: str | None
) -> None:
    before = await _two_photos(bot)
    photo = jpeg(3)

    bot.tg.send_document(bot.chat, bot.ana, photo, file_name=file_name, mime_type="image/jpeg")
    await bot.wait_text(bot.chat["id"], "3 photos")
    await bot.wait_stored()

    rows = _dicts(bot, "SELECT * FROM items ORDER BY id")
    assert rows[:2] == before.items
    new = rows[2]
    assert new["file_name"] == stored
    sha = hashlib.sha256(photo).hexdigest()
    assert new["source_sha256"] == sha
    assert bot.blob_bytes(sha) == photo
    after = _snapshot(bot)
    assert after.outside == before.outside  # nothing written next to DATA_DIR
    assert set(after.files) - set(before.files) == {
        h for h in (new["source_sha256"], new["model_sha256"])
    }
    for outside in (Path("/etc/passwd.jpg"), Path("/abs/path.jpg"), bot.data_dir / "evil.jpg"):
        assert not outside.exists()
    await _next_photo_counts(bot, 4)


async def test_album_beyond_its_size_cap_is_refused_with_a_pointer_to_new(
    make_bot: MakeBot,
) -> None:
    bot = await make_bot(MAX_ALBUM_ITEMS="3")
    before = await _two_photos(bot)
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(3))
    await bot.wait_text(bot.chat["id"], "3 photos")
    await bot.wait_stored()
    full = _snapshot(bot)
    downloads = len(bot.tg.getfile_calls())

    fourth = bot.tg.send_photo(bot.chat, bot.ana, jpeg(4))
    bot.tg.send_document(bot.chat, bot.ana, jpeg(5), "IMG_5.jpg", "image/jpeg")
    text = await _reply_to(bot, fourth, "is full")
    assert "/new" in text and "3 photos and videos" in text
    bot.tg.send_command(bot.chat, bot.ana, "/help")  # handled after both refusals
    await bot.wait_text(bot.chat["id"], "Send me the photos")
    assert sum("is full" in t for t in bot.texts(bot.chat["id"])) == 1  # one answer per burst

    assert len(bot.tg.getfile_calls()) == downloads  # refused before downloading
    _assert_intact(bot, full)
    assert full.items[:2] == before.items
    assert len(full.items) == 3

    bot.tg.send_command(bot.chat, bot.ana, "/new Lisbon part 2")
    await bot.wait_text(bot.chat["id"], "New album Lisbon part 2")
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(4))
    await bot.wait_text(bot.chat["id"], "Album “Lisbon part 2”: 1 photo")
    await bot.wait_stored()
    counts = bot.rows(
        "SELECT album_id, COUNT(*) AS n FROM items GROUP BY album_id ORDER BY album_id"
    )
    assert [row["n"] for row in counts] == [3, 1]


def _telegram_refused(bot: Harness) -> list[str]:
    """Every call the fake Bot API refused (bad HTML, too long, ...), drafts included."""
    return [f"{c.method}: {c.error}" for c in bot.tg.requests if c.error]


async def test_captions_and_notes_full_of_markup_are_stored_verbatim_and_echoed_safely(
    bot: Harness,
) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    before = await _two_photos(bot)
    caption = _fill(HOSTILE, 1024)  # the longest caption Telegram allows
    note = _fill(HOSTILE, 4096)  # the longest message
    short = HOSTILE.strip()
    assert utf16_len(caption) == 1024 and utf16_len(note) == 4096

    tg.send_photo(chat, ana, jpeg(3), caption=caption)
    await bot.wait_text(chat["id"], "3 photos")
    tg.send_text(chat, ana, note)
    await bot.wait_text(chat["id"], "1 note")
    tg.send_command(chat, ana, f"/note {short}")
    await bot.wait_text(chat["id"], "2 notes")
    await bot.wait_stored()

    items = _dicts(bot, "SELECT * FROM items ORDER BY id")
    assert items[:2] == before.items
    assert items[2]["caption"] == caption
    assert [n["text"] for n in bot.rows("SELECT text FROM notes ORDER BY id")] == [note, short]

    # The model sees them verbatim, and an answer quoting them reaches the chat intact.
    answer = f"You wrote: {short}\n\nAnd **more**: <script>alert('x')</script> 😀 עברית"
    bot.gemini.enqueue(Reply(text=answer))
    tg.send_text(chat, ana, f"What did I write {short}?")
    shown = await bot.wait_text(chat["id"], "You wrote:")
    sent_to_model = "\n".join(texts(bot.gemini.generate_requests()[-1]))
    assert caption in sent_to_model and note in sent_to_model
    assert "<script>alert('x')</script>" in shown and "😀 👩‍👩‍👧 🇵🇹 עברית مرحبا" in shown
    assert bot.rows("SELECT answer_text FROM exchanges")[0]["answer_text"] == answer
    assert _telegram_refused(bot) == []

    await _next_photo_counts(bot, 4)
    assert _telegram_refused(bot) == []


def _long_answer() -> tuple[str, int]:
    """A 10,000-character answer of numbered words wrapped in every kind of markup."""
    wraps = [
        "**{}**", "_{}_", "<script>{}</script>", "{} 😀", "עברית {}", "`{}`", "{} ~~",
        "[{}](https://example.com/a_b)", "__{}", "{} مرحبا", "{}!", "*{}* 👩‍👩‍👧",
    ]  # fmt: skip
    paragraphs: list[str] = []
    words: list[str] = []
    n = 0
    while sum(len(p) for p in paragraphs) < 10_000:
        n += 1
        words.append(wraps[n % len(wraps)].format(f"w{n:04d}"))
        if n % 40 == 0:
            # Paragraphs of 40 words, but words 81-440 run on: one paragraph longer than a
            # message, which has to be cut between sentences or words.
            paragraphs.append(" ".join(words) + (" " if 80 < n < 440 else "\n\n"))
            words = []
    return "".join(paragraphs).strip(), n - len(words)


@pytest.mark.parametrize("where", ["private", "group"])
async def test_ten_thousand_character_answer_arrives_split_in_valid_pieces_with_nothing_lost(
    bot: Harness, where: str
) -> None:
    tg = bot.tg
    chat = bot.chat if where == "private" else tg.group_chat(-100900, "Trip")
    tg.send_photo(chat, bot.ana, jpeg(1))
    ack = await bot.wait_text(chat["id"], "1 photo")
    answer, words = _long_answer()
    assert len(answer) >= 10_000
    bot.gemini.enqueue(Reply(text=answer))
    ack_id = next(m.message_id for m in tg.bot_messages(chat["id"]) if m.text == ack)
    tg.send_text(chat, bot.ana, "Tell me everything about it?", reply_to=ack_id)

    last = f"w{words:04d}"
    await tg.wait_for(lambda: any(last in t and "▌" not in t for t in bot.texts(chat["id"])))
    pieces = [t for t in bot.texts(chat["id"]) if re.search(r"w\d{4}", t)]
    assert len(pieces) >= 3
    joined = "\n".join(pieces)
    assert [int(w) for w in re.findall(r"w(\d{4})", joined)] == list(range(1, words + 1))
    assert joined.count("<script>") == answer.count("<script>")
    assert joined.count("😀") == answer.count("😀")
    assert joined.count("עברית") == answer.count("עברית")
    assert joined.count("👩‍👩‍👧") == answer.count("👩‍👩‍👧")
    assert all(utf16_len(p) <= 4096 for p in pieces)
    assert _telegram_refused(bot) == []
    assert bot.rows("SELECT answer_text FROM exchanges")[0]["answer_text"] == answer

    tg.send_photo(chat, bot.ana, jpeg(2))
    await bot.wait_text(chat["id"], "2 photos")


ALBUM_NAMES = {
    "quotes": ("Ana's \"big\" trip", "Ana's \"big\" trip"),
    "sql": ("'; DROP TABLE albums;--", "'; DROP TABLE albums;--"),
    "html": ("<b>Lisbon</b> & <script>x</script>", "<b>Lisbon</b> & <script>x</script>"),
    "emoji": ("Lisbon 🇵🇹 ☀️ 👩‍👩‍👧 🏴󠁧󠁢󠁳󠁣󠁴󠁿", "Lisbon 🇵🇹 ☀️ 👩‍👩‍👧 🏴󠁧󠁢󠁳󠁣󠁴󠁿"),
    "right_to_left": ("رحلة إلى لشبونة می‌روم", "رحلة إلى لشبونة می‌روم"),
    "200_characters": ("Lisbon " + "x" * 193, ("Lisbon " + "x" * 193)[:64]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(ALBUM_NAMES))
async def test_album_name_with_quotes_sql_and_emoji_is_kept_as_text(
    bot: Harness, case: str
) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    name, stored = ALBUM_NAMES[case]
    before = await _two_photos(bot)

    tg.send_command(chat, ana, f"/rename {name}")
    await bot.wait_text(chat["id"], f"now called {stored}")
    _assert_intact(bot, before)
    [album] = bot.rows("SELECT * FROM albums")
    assert album["name"] == stored
    for table in ("albums", "items", "notes", "exchanges", "blobs"):  # no name dropped a table
        bot.rows(f"SELECT COUNT(*) FROM {table}")
    await _next_photo_counts(bot, 3)
    await bot.wait_text(chat["id"], f"Album “{stored}”: 3 photos")

    tg.send_command(chat, ana, f"/new {name}")
    await bot.wait_text(chat["id"], f"New album {stored}")
    tg.send_photo(chat, ana, jpeg(50))
    await bot.wait_text(chat["id"], f"Album “{stored}”: 1 photo")
    tg.send_command(chat, ana, "/albums")
    listing = await bot.wait_text(chat["id"], "Your albums")
    assert listing.count(stored) == 2
    assert [r["name"] for r in bot.rows("SELECT name FROM albums ORDER BY id")] == [stored] * 2
    await bot.wait_stored()
    counts = bot.rows(
        "SELECT album_id, COUNT(*) AS n FROM items GROUP BY album_id ORDER BY album_id"
    )
    assert [row["n"] for row in counts] == [3, 1]
    assert _telegram_refused(bot) == []


async def test_sticker_gets_a_clear_reply_in_private_and_silence_in_a_group(
    bot: Harness,
) -> None:
    before = await _two_photos(bot)
    downloads = len(bot.tg.getfile_calls())
    group = bot.tg.group_chat(-100901, "Trip")
    bot.tg.send_sticker(group, bot.ana)  # a member talking to the others: not for the bot
    sent = bot.tg.send_sticker(bot.chat, bot.ana)
    await _reply_to(bot, sent, "Stickers cannot go")
    _assert_intact(bot, before)
    assert len(bot.tg.getfile_calls()) == downloads
    await _next_photo_counts(bot, 3)
    bot.tg.send_photo(group, bot.ana, jpeg(7))  # handled after the group's sticker
    await bot.wait_text(group["id"], "1 photo")
    assert len(bot.texts(group["id"])) == 1  # the acknowledgement only


async def test_files_that_found_the_album_full_on_arrival_leave_nothing_on_disk(
    make_bot: MakeBot,
) -> None:
    bot = await make_bot(MAX_ALBUM_ITEMS="3")
    await _two_photos(bot)
    slow = asyncio.Event()
    first = bot.tg.send_photo(bot.chat, bot.ana, jpeg(3), media_group_id="late")
    bot.tg.hold_download(first["photo"][-1]["file_id"], slow)
    late = [bot.tg.send_photo(bot.chat, bot.ana, jpeg(n), media_group_id="late") for n in (4, 5)]
    # Photo 3 holds the album's last place from its arrival, while its download still waits:
    # 4 and 5 find the album full at once and are never downloaded.
    await bot.wait_text(bot.chat["id"], "is full")
    late_ids = {size["file_id"] for message in late for size in message["photo"]}
    assert late_ids.isdisjoint(bot.tg.getfile_calls())
    slow.set()
    await bot.wait_stored()
    await bot.tg.wait_for(lambda: len(bot.rows("SELECT 1 FROM items WHERE model_ready = 1")) == 3)
    assert late_ids.isdisjoint(bot.tg.getfile_calls())

    def used() -> set[str]:
        return {
            sha
            for row in bot.rows("SELECT source_sha256, model_sha256 FROM items")
            for sha in (row["source_sha256"], row["model_sha256"])
        }

    # One "is full" answers both late photos: the second may still be turned away after it.
    await bot.tg.wait_for(lambda: {p.name for p in bot.media_files()} == used())
    assert len(used()) == 6
