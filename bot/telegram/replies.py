"""Sending the model's answers: formatted, split, streamed while written, never a parse error."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from types import TracebackType

from telegram import Bot, InlineKeyboardMarkup, Message, ReplyParameters
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import BadRequest, TelegramError

from bot.telegram.rendering import markdown_to_html, to_plain
from bot.telegram.rich import RichMessages, RichUnavailable
from bot.telegram.rich_story import draft_message
from bot.telegram.splitting import TELEGRAM_TEXT_LIMIT, split_rendered

log = logging.getLogger(__name__)

TYPING_EVERY = 4.5  # Telegram shows a chat action for about 5 s


async def send_markdown(
    bot: Bot,
    chat_id: int,
    markdown: str,
    *,
    reply_to: int | None = None,
    edit_message_id: int | None = None,
    reply_markup: InlineKeyboardMarkup | None = None,
) -> list[Message | bool]:
    """Send model text as one or more HTML messages; the first may replace a placeholder."""
    empty = markdown or "…"
    pieces = split_rendered(markdown, TELEGRAM_TEXT_LIMIT) or [(empty, markdown_to_html(empty))]
    sent: list[Message | bool] = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        markup = reply_markup if last else None
        if index == 0 and edit_message_id is not None:
            done = await _edit_piece(bot, chat_id, edit_message_id, piece, markup)
            if done:
                sent.append(True)
                continue
        sent.append(
            await _send_piece(bot, chat_id, piece, reply_to if index == 0 else None, markup)
        )
    return sent


async def _send_piece(
    bot: Bot,
    chat_id: int,
    piece: tuple[str, str],
    reply_to: int | None,
    markup: InlineKeyboardMarkup | None,
) -> Message:
    """Send one piece (its Markdown and its HTML); plain text if Telegram refuses the HTML."""
    source, html = piece
    reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
    try:
        return await bot.send_message(
            chat_id,
            html,
            parse_mode=ParseMode.HTML,
            reply_parameters=reply,
            reply_markup=markup,
            link_preview_options=None,
        )
    except BadRequest as e:
        if not _is_parse_error(e):
            raise
        # Our HTML should always parse; if Telegram disagrees, the words still get through.
        log.warning("Telegram refused generated HTML (%s); sending plain text", e.message)
        return await bot.send_message(
            chat_id, to_plain(source) or "…", reply_parameters=reply, reply_markup=markup
        )


async def _edit_piece(
    bot: Bot,
    chat_id: int,
    message_id: int,
    piece: tuple[str, str],
    markup: InlineKeyboardMarkup | None,
) -> bool:
    """Edit the placeholder into the first piece; False when it cannot be edited."""
    source, html = piece
    try:
        await bot.edit_message_text(
            html,
            chat_id=chat_id,
            message_id=message_id,
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
        )
        return True
    except BadRequest as e:
        if "not modified" in e.message.lower():
            return True
        if _is_parse_error(e):
            with contextlib.suppress(BadRequest):
                await bot.edit_message_text(
                    to_plain(source) or "…", chat_id=chat_id, message_id=message_id,
                    reply_markup=markup,
                )  # fmt: skip
                return True
        log.info("Could not edit the placeholder (%s); sending a new message", e.message)
        return False


def _is_parse_error(e: BadRequest) -> bool:
    text = e.message.lower()
    return "parse" in text or "entit" in text or "tag" in text


class ChatProgress:
    """Shows a long answer being made: typing, then the text as it streams.

    Private chats get message drafts (an ephemeral preview that the final message replaces);
    groups get one placeholder message edited at most every `edit_interval` seconds, because
    edits there count against a 20-per-minute limit. Updates run in the background, so a slow
    or rate-limited Telegram never stalls reading the model's stream.
    """

    def __init__(
        self,
        bot: Bot,
        chat_id: int,
        chat_type: str,
        *,
        reply_to: int | None,
        placeholder: str,
        draft_interval: float,
        edit_interval: float,
        rich: RichMessages | None = None,
        rtl: bool = False,
    ) -> None:
        self.bot = bot
        self.rich = rich  # a private chat's draft of a story is a rich one where Telegram can
        self.rtl = rtl
        self.chat_id = chat_id
        self.private = chat_type == ChatType.PRIVATE
        self.reply_to = reply_to
        self.placeholder = placeholder
        self.interval = draft_interval if self.private else edit_interval
        self.draft_id = random.randint(1, 2**31 - 1)
        self.message_id: int | None = None
        self._last_update = 0.0
        self._latest: tuple[str, bool] | None = None
        self._closed = False
        self._updater: asyncio.Task[None] | None = None
        self._typing: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ChatProgress:
        self._typing = asyncio.create_task(self._keep_typing())
        if not self.private:
            message = await self.bot.send_message(
                self.chat_id,
                self.placeholder,
                reply_parameters=ReplyParameters(self.reply_to, allow_sending_without_reply=True)
                if self.reply_to
                else None,
            )
            self.message_id = message.message_id
        else:
            await self._draft(self.placeholder)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in (self._typing, self._updater):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, TelegramError):
                    await task

    async def status(self, text: str) -> None:
        """Show what is happening before any text exists (uploads, processing)."""
        self._push(f"⏳ {text}", markdown=False)

    async def text(self, so_far: str) -> None:
        """Show the answer written so far (its last screenful)."""
        self._push(so_far, markdown=True)

    async def finish(self, markdown: str) -> None:
        """Deliver the finished answer; in groups the placeholder becomes its first part."""
        await self._stop_updates()
        await send_markdown(
            self.bot,
            self.chat_id,
            markdown,
            reply_to=self.reply_to,
            edit_message_id=self.message_id,
        )

    async def release(self) -> int | None:
        """Stop showing progress; return the group placeholder's id for the caller to reuse."""
        await self._stop_updates()
        return self.message_id

    async def fail(self, sentence: str) -> None:
        """Replace the progress with one clear sentence."""
        await self._stop_updates()
        if self.message_id is not None:
            try:
                await self.bot.edit_message_text(
                    sentence, chat_id=self.chat_id, message_id=self.message_id
                )
                return
            except BadRequest:
                pass
        reply = (
            ReplyParameters(self.reply_to, allow_sending_without_reply=True)
            if self.reply_to
            else None
        )
        await self.bot.send_message(self.chat_id, sentence, reply_parameters=reply)

    def _push(self, content: str, *, markdown: bool) -> None:
        if self._closed:
            return
        self._latest = (content, markdown)
        if self._updater is None or self._updater.done():
            self._updater = asyncio.create_task(self._run_updates())

    async def _run_updates(self) -> None:
        """Show the newest state at most once per interval; the last state is never skipped."""
        while self._latest is not None:
            wait = self.interval - (time.monotonic() - self._last_update)
            if wait > 0:
                await asyncio.sleep(wait)
            content, markdown = self._latest
            self._latest = None
            self._last_update = time.monotonic()
            await self._show(content, markdown)

    async def _show(self, content: str, markdown: bool) -> None:
        if markdown and self.private and self.rich is not None and self.rich.available:
            try:  # the whole story so far, section by section, as it will look
                await self.rich.draft(
                    self.bot, self.chat_id, self.draft_id, draft_message(content, self.rtl)
                )
                return
            except (RichUnavailable, TelegramError) as e:
                log.debug("Rich draft skipped: %s", e)
        if markdown:
            pieces = split_rendered(content, TELEGRAM_TEXT_LIMIT - 2)
            html = (pieces[-1][1] if pieces else markdown_to_html(content)) + " ▌"
        else:
            html = content
        try:
            if self.private:
                await self._draft(html, parse=markdown)
            elif self.message_id is not None:
                await self.bot.edit_message_text(
                    html,
                    chat_id=self.chat_id,
                    message_id=self.message_id,
                    parse_mode=ParseMode.HTML if markdown else None,
                )
        except TelegramError as e:
            # Progress is best effort; the final message is what counts.
            log.debug("Progress update skipped: %s", e)

    async def _draft(self, text: str, parse: bool = False) -> None:
        with contextlib.suppress(TelegramError):
            await self.bot.send_message_draft(
                self.chat_id, self.draft_id, text, parse_mode=ParseMode.HTML if parse else None
            )

    async def _stop_updates(self) -> None:
        if self._updater is not None and not self._updater.done():
            self._updater.cancel()
            with contextlib.suppress(asyncio.CancelledError, TelegramError):
                await self._updater
        self._updater = None
        self._latest = None
        self._closed = True  # nothing may overwrite the final text now

    async def _keep_typing(self) -> None:
        await keep_action(self.bot, self.chat_id, ChatAction.TYPING)


async def keep_action(bot: Bot, chat_id: int, action: str) -> None:
    """Show a chat action ("typing", "sending a file") until cancelled."""
    while True:
        with contextlib.suppress(TelegramError):
            await bot.send_chat_action(chat_id, action)
        await asyncio.sleep(TYPING_EVERY)


@contextlib.asynccontextmanager
async def showing(bot: Bot, chat_id: int, action: str) -> AsyncIterator[None]:
    """Keep a chat action shown while the block runs (slow work with no text to stream)."""
    task = asyncio.create_task(keep_action(bot, chat_id, action))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
