"""Telegram's rich messages (Bot API 10.1+), the one place that calls them.

python-telegram-bot 22.8 speaks Bot API 10.0, so the methods go through its documented
forward-compatibility path, `Bot.do_api_request`. The day PTB adds `send_rich_message` and
friends, this module is the only one to change.

A self-hosted `telegram-bot-api` older than 10.1 (TELEGRAM_API_URL) answers 404 "method not
found" (PTB raises EndPointNotFound, or InvalidToken before the bot is initialised); that is
remembered for the life of the process, so later stories go straight to the classic form.
A refused message (400) is the caller's to handle: it falls back for that message only.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

from telegram import Bot, InlineKeyboardMarkup, InputFile, Message, ReplyParameters
from telegram.error import BadRequest, EndPointNotFound, InvalidToken
from telegram.warnings import PTBUserWarning

log = logging.getLogger(__name__)

JSON = dict[str, Any]

# Limits of one rich message as the client libraries transcribe them.
MAX_CHARACTERS = 32_768
MAX_BLOCKS = 500
MAX_NESTING = 16
MAX_MEDIA = 50


class RichUnavailable(Exception):
    """This server cannot post the rich message (the method is missing, or it was refused)."""


class RichMessages:
    """Sends rich messages and drafts, and remembers whether the server has them."""

    def __init__(self, enabled: bool = True) -> None:
        self.available = enabled

    async def send(
        self,
        bot: Bot,
        chat_id: int,
        rich_message: JSON,
        *,
        reply_to: int | None = None,
        reply_markup: InlineKeyboardMarkup | None = None,
        uploads: Mapping[str, InputFile] | None = None,
    ) -> Message:
        """sendRichMessage; raises RichUnavailable where the server lacks it or refuses this.

        `uploads` are files the message's media name as attach://<name>."""
        kwargs: JSON = {"chat_id": chat_id, "rich_message": rich_message, **(uploads or {})}
        if reply_to is not None:
            kwargs["reply_parameters"] = ReplyParameters(reply_to, allow_sending_without_reply=True)
        if reply_markup is not None:
            kwargs["reply_markup"] = reply_markup
        result = await self._call(bot, "sendRichMessage", kwargs, Message)
        assert isinstance(result, Message)
        return result

    async def edit(
        self,
        bot: Bot,
        chat_id: int,
        message_id: int,
        rich_message: JSON,
        *,
        reply_markup: InlineKeyboardMarkup | None = None,
        uploads: Mapping[str, InputFile] | None = None,
    ) -> None:
        """editMessageText with a rich_message: a text message (a placeholder) becomes rich."""
        kwargs: JSON = {"chat_id": chat_id, "message_id": message_id, "rich_message": rich_message}
        kwargs.update(uploads or {})
        if reply_markup is not None:
            kwargs["reply_markup"] = reply_markup
        await self._call(bot, "editMessageText", kwargs, Message)

    async def draft(self, bot: Bot, chat_id: int, draft_id: int, rich_message: JSON) -> None:
        """sendRichMessageDraft: the 30-second preview of a message being written (private
        chats)."""
        kwargs = {"chat_id": chat_id, "draft_id": draft_id, "rich_message": rich_message}
        await self._call(bot, "sendRichMessageDraft", kwargs, None)

    async def _call(
        self, bot: Bot, endpoint: str, kwargs: JSON, return_type: type[Message] | None
    ) -> Any:
        if not self.available:
            raise RichUnavailable(f"{endpoint}: rich messages are off or missing here")
        try:
            with warnings.catch_warnings():
                # PTB suggests its own edit_message_text, which does not know rich_message yet.
                warnings.simplefilter("ignore", PTBUserWarning)
                return await bot.do_api_request(
                    endpoint, api_kwargs=kwargs, return_type=return_type
                )
        except (EndPointNotFound, InvalidToken) as e:
            # 404: a Bot API server older than 10.1. PTB names it InvalidToken until the bot
            # is initialised; a truly bad token would have failed at start-up long before.
            self.available = False
            log.warning(  # the error's type only: its text may quote the request
                "The Bot API server has no %s (%s); stories go the classic way",
                endpoint, type(e).__name__,
            )  # fmt: skip
            raise RichUnavailable(str(e)) from e
        except BadRequest as e:
            log.warning("Telegram refused a rich message (%s): %s", endpoint, e.message)
            raise RichUnavailable(e.message) from e
