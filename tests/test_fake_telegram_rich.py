"""FakeTelegram's rich messages (Bot API 10.1+) driven by the real python-telegram-bot, and the
aiogram check the e2e tests put every rich payload through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError
from telegram import Bot, Message
from telegram.error import BadRequest, EndPointNotFound

from bot.telegram.rich import RichMessages, RichUnavailable
from tests.aiogram_check import check_payload
from tests.fakes.telegram_api import FakeTelegram
from tests.image_files import jpeg
from tests.test_fake_telegram import TOKEN, make_bot

JSON = dict[str, Any]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours proxy variables; loopback must bypass them."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    """A running fake Bot API server."""
    async with FakeTelegram(token=TOKEN) as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    """An initialised PTB Bot talking to the fake."""
    async with make_bot(fake) as real_bot:
        yield real_bot


def _photo_id(fake: FakeTelegram, chat: JSON, user: JSON) -> str:
    """The file_id of a photo a user sent (its largest size)."""
    return str(fake.send_photo(chat, user, jpeg(1, (64, 48)))["photo"][-1]["file_id"])


def _photo(file_id: str) -> JSON:
    return {"type": "photo", "photo": {"type": "photo", "media": file_id}}


async def _send(bot: Bot, chat_id: int, rich: JSON) -> Any:
    return await bot.do_api_request(
        "sendRichMessage", api_kwargs={"chat_id": chat_id, "rich_message": rich}
    )


async def test_a_rich_message_of_blocks_is_recorded_with_its_text_and_media(
    fake: FakeTelegram, bot: Bot
) -> None:
    user = fake.user()
    chat = fake.private_chat(user)
    ids = [_photo_id(fake, chat, user) for _ in range(2)]
    rich = {
        "blocks": [
            {"type": "heading", "text": "Trams", "size": 1},
            {"type": "paragraph", "text": ["Up ", {"type": "bold", "text": "the hill"}]},
            {"type": "collage", "blocks": [_photo(i) for i in ids]},
            {"type": "map", "location": {"latitude": 10.5, "longitude": 20.25}, "zoom": 12},
        ]
    }
    message = await bot.do_api_request(
        "sendRichMessage",
        api_kwargs={"chat_id": chat["id"], "rich_message": rich},
        return_type=Message,
    )
    assert isinstance(message, Message)
    [sent] = fake.rich_messages(chat["id"])
    assert sent.message_id == message.message_id and sent.rich == rich
    assert sent.text == "Trams\n\nUp the hill"


@pytest.mark.parametrize(
    ("blocks", "error"),
    [
        ([{"type": "marquee", "text": "hi"}], "(?i)unsupported rich block type"),
        ([{"type": "heading", "text": "hi", "size": 7}], "heading size"),
        ([{"type": "collage", "blocks": [{"type": "paragraph", "text": "x"}]}], "collage"),
        ([_photo("no-such-file")], "wrong file identifier"),
        ([{"type": "map", "location": {"latitude": 91, "longitude": 0}}], "latitude"),
        ([{"type": "paragraph", "text": "x" * 32_769}], "RICH_MESSAGE_TOO_LONG"),
        ([{"type": "paragraph", "text": "x"}] * 501, "RICH_MESSAGE_TOO_MANY_BLOCKS"),
    ],
)
async def test_a_bad_or_oversized_rich_message_is_refused(
    fake: FakeTelegram, bot: Bot, blocks: list[JSON], error: str
) -> None:
    chat = fake.private_chat(fake.user())
    with pytest.raises(BadRequest, match=f"(?i){error}"):
        await _send(bot, chat["id"], {"blocks": blocks})
    assert fake.rich_messages(chat["id"]) == []


async def test_nesting_media_count_and_the_kind_of_a_file_are_checked(
    fake: FakeTelegram, bot: Bot
) -> None:
    user = fake.user()
    chat = fake.private_chat(user)
    photo = _photo_id(fake, chat, user)
    deep: JSON = {"type": "paragraph", "text": "deep"}
    for _ in range(16):  # 17 levels with the paragraph's own
        deep = {"type": "blockquote", "blocks": [deep]}
    with pytest.raises(BadRequest, match=r"(?i)RICH_MESSAGE_TOO_DEEP"):
        await _send(bot, chat["id"], {"blocks": [deep]})
    with pytest.raises(BadRequest, match=r"(?i)RICH_MESSAGE_TOO_MANY_MEDIA"):
        await _send(bot, chat["id"], {"blocks": [_photo(photo)] * 51})
    video = {"type": "video", "video": {"type": "video", "media": photo}}
    with pytest.raises(BadRequest, match=r"(?i)can't use file of type Photo as Video"):
        await _send(bot, chat["id"], {"blocks": [video]})
    await _send(bot, chat["id"], {"blocks": [_photo(photo)] * 50})
    assert len(fake.rich_messages(chat["id"])) == 1


async def test_html_content_must_name_its_media_in_the_media_list(
    fake: FakeTelegram, bot: Bot
) -> None:
    user = fake.user()
    chat = fake.private_chat(user)
    photo = _photo_id(fake, chat, user)
    html = '<p>Boats</p><img src="tg://photo?id=boat">'
    with pytest.raises(BadRequest, match=r"(?i)unknown media reference tg://photo\?id=boat"):
        await _send(bot, chat["id"], {"html": html})
    with pytest.raises(BadRequest, match=r"(?i)exactly one of html, markdown or blocks"):
        await _send(bot, chat["id"], {"html": html, "blocks": [_photo(photo)]})
    media = [{"id": "boat", "media": {"type": "photo", "media": photo}}]
    await _send(bot, chat["id"], {"html": html, "media": media})
    assert fake.rich_messages(chat["id"])[0].text == "Boats"


async def test_rich_drafts_are_for_private_chats_and_take_no_uploads(
    fake: FakeTelegram, bot: Bot
) -> None:
    chat = fake.private_chat(fake.user())
    group = fake.group_chat()
    rich = {"blocks": [{"type": "paragraph", "text": "Writing…"}]}

    async def draft(chat_id: int, message: JSON) -> Any:
        kwargs = {"chat_id": chat_id, "draft_id": 5, "rich_message": message}
        return await bot.do_api_request("sendRichMessageDraft", api_kwargs=kwargs)

    assert await draft(chat["id"], rich) is True
    assert fake.rich_drafts(chat["id"]) == [(5, rich)]
    with pytest.raises(BadRequest, match="private chats"):
        await draft(group["id"], rich)
    with pytest.raises(BadRequest, match="upload"):
        await draft(chat["id"], {"blocks": [_photo("attach://p1")]})


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBUserWarning")  # PTB's own lacks it
async def test_edit_message_text_turns_a_text_message_into_a_rich_one(
    fake: FakeTelegram, bot: Bot
) -> None:
    chat = fake.private_chat(fake.user())
    placeholder = await bot.send_message(chat["id"], "✍️ Writing…")
    rich = {"blocks": [{"type": "heading", "text": "The story", "size": 1}]}
    kwargs = {"chat_id": chat["id"], "message_id": placeholder.message_id, "rich_message": rich}
    await bot.do_api_request("editMessageText", api_kwargs=kwargs, return_type=Message)
    [sent] = fake.rich_messages(chat["id"])
    assert sent.history == ["✍️ Writing…", "The story"] and sent.rich == rich
    with pytest.raises(BadRequest, match="not modified"):
        await bot.do_api_request("editMessageText", api_kwargs=kwargs)


async def test_an_older_server_answers_method_not_found_and_that_is_remembered(
    fake: FakeTelegram, bot: Bot
) -> None:
    chat = fake.private_chat(fake.user())
    fake.rich_supported = False
    rich = {"blocks": [{"type": "paragraph", "text": "hi"}]}
    with pytest.raises(EndPointNotFound):
        await _send(bot, chat["id"], rich)
    assert fake.calls("sendRichMessage")[0].error == "Not Found: method not found"
    messages = RichMessages()
    for _ in range(2):
        with pytest.raises(RichUnavailable):
            await messages.send(bot, chat["id"], rich)
    assert not messages.available
    assert len(fake.calls("sendRichMessage")) == 2  # the second try never left the process


async def test_a_refusal_is_per_message_and_leaves_rich_messages_available(
    fake: FakeTelegram, bot: Bot
) -> None:
    chat = fake.private_chat(fake.user())
    messages = RichMessages()
    with pytest.raises(RichUnavailable, match=r"(?i)unsupported rich block type"):
        await messages.send(bot, chat["id"], {"blocks": [{"type": "marquee"}]})
    assert messages.available
    await messages.send(bot, chat["id"], {"blocks": [{"type": "divider"}]})
    assert len(fake.rich_messages(chat["id"])) == 1


def test_the_aiogram_check_refuses_unknown_fields_and_wrong_types() -> None:
    good: JSON = {
        "chat_id": 1,
        "rich_message": {"blocks": [{"type": "heading", "text": "T", "size": 1}]},
    }
    check_payload("sendRichMessage", good)
    typo = {
        **good,
        "rich_message": {"blocks": [{"type": "heading", "text": "T", "size": 1, "colour": "red"}]},
    }
    with pytest.raises(AssertionError, match="colour"):
        check_payload("sendRichMessage", typo)
    wrong = {**good, "rich_message": {"blocks": [{"type": "heading", "text": "T", "size": "x"}]}}
    with pytest.raises(ValidationError):
        check_payload("sendRichMessage", wrong)
    with pytest.raises(ValidationError):
        check_payload("sendRichMessage", {**good, "rich_message": {"blocks": [{"type": "xx"}]}})
