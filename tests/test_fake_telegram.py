"""FakeTelegram driven by the real python-telegram-bot: proves the fake honours the wire."""

from __future__ import annotations

import asyncio
import datetime as dtm
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_html import TelegramHTMLError, parse_html, parse_markdown_v2
from tests.harness import BotProcess
from tests.image_files import jpeg

TOKEN = "123:ABC"
MB = 1024 * 1024


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours proxy variables; loopback must bypass them."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    # PTB 23 will return durations as timedelta; opting in now keeps the tests warning-free
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    """A running fake Bot API server."""
    async with FakeTelegram(token=TOKEN) as server:
        yield server


def make_bot(fake: FakeTelegram, token: str = TOKEN, local_mode: bool = False) -> Bot:
    """A real PTB Bot pointed at the fake."""
    return Bot(
        token,
        base_url=fake.url + "/bot",
        base_file_url=fake.url + "/file/bot",
        local_mode=local_mode,
    )


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    """An initialised PTB Bot talking to the fake."""
    async with make_bot(fake) as real_bot:
        yield real_bot


async def test_application_polling_receives_a_text_and_its_reply_is_recorded(
    fake: FakeTelegram,
) -> None:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Reply with the text received."""
        assert update.message is not None
        await update.message.reply_text(
            f"got: <b>{update.message.text}</b>", parse_mode="HTML", do_quote=True
        )

    app: Application = (  # type: ignore[type-arg]
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(fake.url + "/bot")
        .base_file_url(fake.url + "/file/bot")
        .build()
    )
    app.add_handler(MessageHandler(filters.TEXT, echo))
    await app.initialize()
    await app.updater.start_polling(poll_interval=0, timeout=1)  # type: ignore[union-attr]
    await app.start()
    try:
        ana = fake.user()
        chat = fake.private_chat(ana)
        sent = fake.send_text(chat, ana, "hello")
        replies = await fake.wait_for(lambda: fake.bot_messages(chat["id"]))
        # the next poll confirms the update with offset = update_id + 1
        await fake.wait_for(lambda: not fake.pending_updates())
    finally:
        await app.updater.stop()  # type: ignore[union-attr]
        await app.stop()
        await app.shutdown()
    assert [m.text for m in replies] == ["got: hello"]
    assert replies[0].entities == [{"type": "bold", "offset": 5, "length": 5}]
    assert replies[0].reply_to_message_id == sent["message_id"]
    assert replies[0].message_id == sent["message_id"] + 1  # one counter per chat
    assert {"getMe", "deleteWebhook", "getUpdates", "sendMessage"} <= {
        c.method for c in fake.requests
    }


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<b>unclosed", 'can\'t find end tag corresponding to start tag "b"'),
        ("<script>alert(1)</script>", 'unsupported start tag "script" at byte offset 0'),
        ("a < b", 'unsupported start tag "" at byte offset 2'),
        ("<b>x</i>", 'unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<i>x</i></b>", "unexpected end tag at byte offset 8"),
        ("<span>x</span>", 'tag "span" must have class "tg-spoiler"'),
        ("<br/>line", 'unsupported start tag "br/"'),
    ],
)
async def test_html_that_telegram_rejects_raises_bad_request(
    fake: FakeTelegram, bot: Bot, html: str, error: str
) -> None:
    chat = fake.private_chat(fake.user())
    with pytest.raises(BadRequest) as caught:
        await bot.send_message(chat["id"], html, parse_mode="HTML")
    assert error in str(caught.value).lower()
    assert fake.bot_messages(chat["id"]) == []


async def test_bare_ampersand_is_kept_literally_like_tdlib_unless_strict(
    fake: FakeTelegram, bot: Bot
) -> None:
    chat = fake.private_chat(fake.user())
    message = await bot.send_message(chat["id"], "Q&A: fish &chips &laquo;", parse_mode="HTML")
    assert message.text == "Q&A: fish &chips &laquo;"
    fake.strict_html_entities = True
    with pytest.raises(BadRequest, match=r"(?i)character entity expected at byte offset 1"):
        await bot.send_message(chat["id"], "Q&A", parse_mode="HTML")


async def test_well_formed_html_is_recorded_as_plain_text_and_utf16_entities(
    fake: FakeTelegram, bot: Bot
) -> None:
    chat = fake.private_chat(fake.user())
    html = (
        '🏔️ <b>Day 1</b> &amp; <i>Alps</i> <a href="https://example.com/a?b=1&amp;c=2">map</a> '
        '<tg-spoiler>end</tg-spoiler> <pre><code class="language-python">x = 1</code></pre>'
        "<blockquote expandable>long</blockquote> &#x1F600;&#33;"
    )
    message = await bot.send_message(chat["id"], html, parse_mode="HTML")
    [sent] = fake.bot_messages(chat["id"])
    assert sent.text == "🏔️ Day 1 & Alps map end x = 1long 😀!"
    assert sent.html == html and sent.parse_mode == "HTML"
    # PTB slices with UTF-16 offsets: each entity must cover exactly its words
    assert [message.parse_entity(e) for e in message.entities] == [
        "Day 1",
        "Alps",
        "map",
        "end",
        "x = 1",
        "long",
    ]
    by_type = {e["type"]: e for e in sent.entities}
    assert by_type["bold"]["offset"] == 4  # "🏔️ ": U+1F3D4 is 2 UTF-16 units, U+FE0F 1, space 1
    assert by_type["text_link"]["url"] == "https://example.com/a?b=1&c=2"
    assert by_type["pre"]["language"] == "python"
    assert "expandable_blockquote" in by_type


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("x" * 4096, True),
        ("x" * 4097, False),
        ("😀" * 2048, True),  # 4096 UTF-16 units
        ("😀" * 2049, False),
        # 4096 characters but 8192 units: refused; the fake takes the stricter reading (MAX_TEXT)
        ("😀" * 4096, False),
        ("<b>" + "x" * 4096 + "</b>", True),  # the limit applies after entity parsing
    ],
)
async def test_text_length_is_limited_after_parsing(
    fake: FakeTelegram, bot: Bot, text: str, accepted: bool
) -> None:
    chat = fake.private_chat(fake.user())
    if accepted:
        await bot.send_message(chat["id"], text, parse_mode="HTML")
        return
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(chat["id"], text, parse_mode="HTML")


async def test_empty_text_and_long_caption_are_refused(fake: FakeTelegram, bot: Bot) -> None:
    chat = fake.private_chat(fake.user())
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(chat["id"], "<b> </b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await bot.send_photo(chat["id"], jpeg(0), caption="y" * 1025)
    photo = await bot.send_photo(
        chat["id"], jpeg(0), caption="<i>" + "y" * 1024 + "</i>", parse_mode="HTML"
    )
    assert photo.caption == "y" * 1024
    [sent] = fake.bot_messages(chat["id"])
    assert sent.kind == "photo" and sent.files["photo"] == jpeg(0)


async def test_edits_keep_history_and_identical_edit_is_refused(
    fake: FakeTelegram, bot: Bot
) -> None:
    chat = fake.private_chat(fake.user())
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Shorter", callback_data="short")]])
    first = await bot.send_message(chat["id"], "Draft", reply_markup=keyboard)
    await bot.edit_message_text("Draft two", chat["id"], first.message_id, reply_markup=keyboard)
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "Draft two", chat["id"], first.message_id, reply_markup=keyboard
        )
    # dropping the keyboard is a change even with the same text, as on Telegram
    await bot.edit_message_text("Draft two", chat["id"], first.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat["id"], 999)
    [sent] = fake.bot_messages(chat["id"])
    assert sent.history == ["Draft", "Draft two", "Draft two"]
    assert sent.reply_markup is None
    await bot.delete_message(chat["id"], first.message_id)
    assert fake.bot_messages(chat["id"])[0].deleted
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(chat["id"], first.message_id)


async def test_photo_is_downloadable_through_get_file(fake: FakeTelegram, bot: Bot) -> None:
    ana = fake.user()
    chat = fake.private_chat(ana)
    data = jpeg(0, (1280, 960))
    message = fake.send_photo(chat, ana, data, caption="Lisbon")
    again = fake.send_photo(chat, ana, data)
    small, large = message["photo"]
    assert max(small["width"], small["height"]) <= 90 < large["width"]
    assert large["file_unique_id"] == again["photo"][-1]["file_unique_id"]
    assert large["file_id"] != again["photo"][-1]["file_id"]
    downloaded = await (await bot.get_file(large["file_id"])).download_as_bytearray()
    assert bytes(downloaded) == data
    assert fake.getfile_calls() == [large["file_id"]]
    assert fake.downloads() == [f"photos/{large['file_id']}.jpg"]
    [update] = await bot.get_updates(limit=1)
    assert update.message is not None and update.message.caption == "Lisbon"
    assert update.message.photo[-1].file_size == len(data)


async def test_files_over_20_mb_are_refused_by_get_file(fake: FakeTelegram, bot: Bot) -> None:
    ana = fake.user()
    chat = fake.private_chat(ana)
    video = fake.send_video(chat, ana, b"\0" * 1024, file_size=300 * MB)
    [update] = await bot.get_updates()
    assert update.message is not None and update.message.video is not None
    assert update.message.video.file_size == 300 * MB
    with pytest.raises(BadRequest, match=r"(?i)file is too big"):
        await bot.get_file(video["video"]["file_id"])
    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        await bot.get_file("nope")
    assert fake.downloads() == []


async def test_local_mode_returns_an_absolute_path_ptb_reads_from_disk() -> None:
    async with FakeTelegram(token=TOKEN, local_mode=True) as fake:
        ana = fake.user()
        chat = fake.private_chat(ana)
        data = b"big video bytes"
        video = fake.send_video(chat, ana, data, file_size=300 * MB)
        async with make_bot(fake, local_mode=True) as bot:
            file = await bot.get_file(video["video"]["file_id"])
            assert file.file_path is not None and Path(file.file_path).is_absolute()
            assert bytes(await file.download_as_bytearray()) == data
        assert fake.downloads() == []  # PTB read the path, no HTTP download


async def test_injected_errors_surface_as_ptb_exceptions(fake: FakeTelegram, bot: Bot) -> None:
    chat = fake.private_chat(fake.user())
    fake.fail_next(
        "sendMessage", error_code=429, description="Too Many Requests: retry after 1", retry_after=1
    )
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(chat["id"], "hi")
    assert caught.value.retry_after == dtm.timedelta(seconds=1)
    fake.fail_next("sendMessage", error_code=403)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(chat["id"], "hi")
    fake.fail_next("sendMessage", error_code=502, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(chat["id"], "hi")
    fake.fail_next("sendMessage", error_code=500)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(chat["id"], "hi")
    await bot.send_message(chat["id"], "hi")
    assert [c.error is None for c in fake.calls("sendMessage")] == [False] * 5 + [True]
    assert [m.text for m in fake.bot_messages(chat["id"])] == ["hi"]


async def test_a_dropped_or_failed_download_raises_network_error(
    fake: FakeTelegram, bot: Bot
) -> None:
    ana = fake.user()
    chat = fake.private_chat(ana)
    data = jpeg(0, (800, 600))
    file_id = fake.send_photo(chat, ana, data)["photo"][-1]["file_id"]
    file = await bot.get_file(file_id)
    fake.fail_download(file_id, mode="drop")
    with pytest.raises(NetworkError, match=r"(?i)peer closed connection"):
        await file.download_as_bytearray()
    fake.fail_download(file_id, mode="500")
    with pytest.raises(NetworkError):
        await file.download_as_bytearray()
    assert bytes(await file.download_as_bytearray()) == data
    assert len(fake.downloads()) == 3


async def test_send_media_group_records_each_photo_with_its_bytes(
    fake: FakeTelegram, bot: Bot
) -> None:
    chat = fake.private_chat(fake.user())
    photos = [jpeg(1), jpeg(2), jpeg(3)]
    media = [InputMediaPhoto(photos[0], caption="<b>Day 1</b>", parse_mode="HTML")]
    media += [InputMediaPhoto(p) for p in photos[1:]]
    messages = await bot.send_media_group(chat["id"], media)
    assert len({m.media_group_id for m in messages}) == 1
    [call] = fake.calls("sendMediaGroup")
    assert sorted(call.files.values()) == sorted(photos)
    sent = fake.bot_messages(chat["id"])
    assert [s.kind for s in sent] == ["photo"] * 3
    assert [next(iter(s.files.values())) for s in sent] == photos
    assert sent[0].caption == "Day 1" and sent[0].entities[0]["type"] == "bold"
    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await bot.send_media_group(
            chat["id"], [InputMediaPhoto(photos[0], caption="z" * 1025), InputMediaPhoto(photos[1])]
        )
    assert len(fake.bot_messages(chat["id"])) == 3  # nothing of the refused album was sent


async def test_message_drafts_are_for_private_chats_only(fake: FakeTelegram, bot: Bot) -> None:
    chat = fake.private_chat(fake.user())
    group = fake.group_chat()
    assert await bot.send_message_draft(
        chat["id"], 7, "Writing <i>the story</i>", parse_mode="HTML"
    )
    assert fake.drafts(chat["id"]) == [(7, "Writing the story")]
    with pytest.raises(BadRequest):
        await bot.send_message_draft(group["id"], 7, "Writing")
    with pytest.raises(BadRequest, match=r"(?i)non-zero"):
        await bot.send_message_draft(chat["id"], 0, "Writing")
    assert fake.drafts(group["id"]) == []


async def test_a_newer_get_updates_terminates_the_pending_one_with_conflict(
    fake: FakeTelegram,
) -> None:
    async with make_bot(fake) as first, make_bot(fake) as second:
        pending = asyncio.create_task(first.get_updates(timeout=5))
        await fake.wait_for(lambda: fake.polling)
        assert await second.get_updates(timeout=0) == ()
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await pending


async def test_long_poll_returns_as_soon_as_an_update_is_queued(
    fake: FakeTelegram, bot: Bot
) -> None:
    ana = fake.user()
    group = fake.group_chat()
    poll = asyncio.create_task(bot.get_updates(timeout=30, allowed_updates=["message"]))
    await fake.wait_for(lambda: fake.polling)
    fake.send_command(group, ana, "/story@photostory_test_bot shorter")
    [update] = await asyncio.wait_for(poll, timeout=5)
    assert update.message is not None and update.message.chat.type == "supergroup"
    assert update.message.parse_entities(["bot_command"]).popitem()[1] == (
        "/story@photostory_test_bot"
    )
    # an offset confirms everything before it; limit=0 means the default of 100
    fake.send_text(group, ana, "second")
    updates = await bot.get_updates(offset=update.update_id + 1, limit=0)
    assert [u.message.text for u in updates if u.message] == ["second"]
    assert len(fake.pending_updates()) == 1


async def test_user_media_messages_parse_in_ptb(fake: FakeTelegram, bot: Bot) -> None:
    ana = fake.user()
    chat = fake.private_chat(ana)
    first = fake.send_document(chat, ana, b"heic", media_group_id="g1", caption="Porto")
    fake.send_document(chat, ana, b"heic2", file_name="IMG_2.HEIC", media_group_id="g1")
    fake.send_video_note(chat, ana, b"round")
    fake.send_animation(chat, ana, b"gif")
    fake.send_text(chat, ana, "nice", reply_to=first)
    updates = await bot.get_updates()
    messages = [u.message for u in updates if u.message]
    assert [m.media_group_id for m in messages[:2]] == ["g1", "g1"]
    assert messages[0].document is not None and messages[0].document.mime_type == "image/heic"
    assert messages[2].video_note is not None and messages[2].video_note.length == 384
    assert messages[3].animation is not None and messages[3].animation.duration == dtm.timedelta(
        seconds=3
    )
    assert messages[4].reply_to_message is not None
    assert messages[4].reply_to_message.caption == "Porto"
    assert [m.message_id for m in messages] == [1, 2, 3, 4, 5]


async def test_buttons_commands_actions_and_reactions(fake: FakeTelegram, bot: Bot) -> None:
    ana = fake.user()
    chat = fake.private_chat(ana)
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Retry", callback_data="retry:1")]])
    message = await bot.send_message(chat["id"], "Story", reply_markup=keyboard)
    with pytest.raises(ValueError, match="no button"):
        fake.press_button(chat, ana, message.message_id, "missing")
    query = fake.press_button(chat, ana, message.message_id, "retry:1")
    [update] = await bot.get_updates(allowed_updates=["callback_query"])
    assert update.callback_query is not None and update.callback_query.data == "retry:1"
    assert update.callback_query.message is not None
    assert await bot.answer_callback_query(query["id"], text="On it")
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query["id"])
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(
            chat["id"],
            "x",
            reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("x", callback_data="d" * 65)]]
            ),
        )
    await bot.set_my_commands([BotCommand("story", "Write the story")])
    assert fake.commands == [{"command": "story", "description": "Write the story"}]
    assert [c.command for c in await bot.get_my_commands()] == ["story"]
    await bot.send_chat_action(chat["id"], "typing")
    assert fake.actions(chat["id"]) == ["typing"]
    assert await bot.set_message_reaction(chat["id"], message.message_id, "👍")
    assert (await bot.get_chat(chat["id"])).first_name == "Ana"
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(424242, "who?")


async def test_wrong_token_and_unknown_method(fake: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(InvalidToken):
        async with make_bot(fake, token="999:WRONG"):  # initialising calls getMe
            pass
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("sendTelepathy")
    assert fake.calls("sendTelepathy")[0].error == "Not Found"


async def test_wait_for_explains_what_it_waited_for(fake: FakeTelegram) -> None:
    with pytest.raises(AssertionError, match="stayed falsy"):
        await fake.wait_for(lambda: fake.bot_messages(1), timeout=0.05)


@pytest.mark.parametrize(
    ("html", "plain", "entities"),
    [  # vectors from TDLib's own tests (test/message_entities.cpp)
        ("🏟 🏟<i>🏟 &lt🏟</i>", "🏟 🏟🏟 <🏟", [("italic", 5, 6)]),
        ("🏟 🏟&lt;<i    aba  =  '&lt;&gt;&quot;'>a</>", "🏟 🏟<a", [("italic", 6, 1)]),
        ("<a>telegram.org</a>", "telegram.org", [("text_link", 0, 12)]),
        ("<a>telegram.org </a>", "telegram.org ", []),
        ("&lt;&gt;&amp;&quot;&laquo;&#12345678;", '<>&"&laquo;&#12345678;', []),
        ("<pre><code>x</code></pre>", "x", [("pre", 0, 1), ("code", 0, 1)]),
    ],
)
def test_parse_html_matches_tdlib(
    html: str, plain: str, entities: list[tuple[str, int, int]]
) -> None:
    text, found = parse_html(html)
    assert text == plain
    assert [(e["type"], e["offset"], e["length"]) for e in found] == entities


def test_parse_html_reports_byte_offsets_like_telegram() -> None:
    with pytest.raises(TelegramHTMLError, match='"abac" at byte offset 13'):
        parse_html("🏟 🏟&lt;<abac aba>")


async def test_markdown_v2_rejects_unescaped_reserved_characters(
    fake: FakeTelegram, bot: Bot
) -> None:
    chat = fake.private_chat(fake.user())
    with pytest.raises(BadRequest, match=r"(?i)character '\.' is reserved"):
        await bot.send_message(chat["id"], "Done.", parse_mode="MarkdownV2")
    message = await bot.send_message(chat["id"], "*Day 1* _Alps_ done\\.", parse_mode="MarkdownV2")
    assert message.text == "Day 1 Alps done."
    assert parse_markdown_v2("[map](https://example.com)")[1][0]["url"] == "https://example.com/"


async def test_a_failed_wait_shows_the_bot_processes_warnings_and_errors(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    # A black-box test that fails in CI shows what the bot logged going wrong, not only the
    # Bot API calls: the log file itself is gone with the CI machine.
    log = tmp_path / "bot.log"
    bot = BotProcess(tg, gemini, tmp_path / "data", log)
    log.write_text(
        "2026-12-08 04:07:32,082 DEBUG telegram.ext.ExtBot: Calling Bot API endpoint\n"
        "2026-12-08 04:07:37,134 ERROR storage.jobs.local: Job 3 (ack) failed; it will be retried\n"
        "Traceback (most recent call last):\n"
        "sqlite3.OperationalError: database is locked\n"
        "2026-12-08 04:07:37,136 WARNING bot.telegram.webhook: Could not take update 2\n",
        encoding="utf-8",
    )
    with pytest.raises(AssertionError) as failed:
        await tg.wait_for(lambda: False, timeout=0.05)
    shown = str(failed.value)
    assert "Job 3 (ack) failed; it will be retried" in shown
    assert "Could not take update 2" in shown
    assert "Calling Bot API endpoint" not in shown and "Traceback" not in shown
    assert bot.troubles(most=1).endswith("Could not take update 2")
