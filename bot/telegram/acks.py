"""One acknowledgement per burst of media: a single message, kept up to date.

The burst itself (its batch, counts and message) belongs to the service (`bot.service.bursts`);
this side only waits for a quiet moment and sends or edits the message the service describes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, TelegramError

from bot import i18n
from bot.i18n import _
from bot.service.albums import AlbumService
from bot.service.bursts import Acknowledgement

log = logging.getLogger(__name__)

MAX_HOLD = 3  # a continuous burst is acknowledged at least every MAX_HOLD debounce intervals


@dataclass
class _PendingAck:
    """A chat's next acknowledgement: the timer that flushes it, since when news waits, in what
    language; the lock keeps flushes of one chat in turn."""

    timer: asyncio.Task[None] | None = None
    pending_since: float | None = None  # first change not yet shown
    language: str = i18n.DEFAULT  # of the latest update: a flush at shutdown still speaks it
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Acknowledger:
    """Says what a burst added in one message, edited as the burst grows.

    Each stored item schedules a flush `debounce` seconds later; a new item pushes it back, so an
    album of ten arrives as one message, not ten. The service says what the message should read.
    """

    def __init__(self, bot: Bot, albums: AlbumService, debounce: float) -> None:
        self.bot = bot
        self.albums = albums
        self.debounce = debounce
        self._chats: dict[int, _PendingAck] = {}

    def added(self, chat_id: int) -> None:
        """Something joined the chat's burst: acknowledge it once the chat is quiet a moment."""
        chat = self._chats.setdefault(chat_id, _PendingAck())
        chat.language = i18n.current()
        now = asyncio.get_running_loop().time()
        if chat.pending_since is None:
            chat.pending_since = now
        # Flush after a quiet `debounce`, but never hold news back longer than a few of them.
        due = min(now + self.debounce, chat.pending_since + MAX_HOLD * self.debounce)
        if chat.timer is not None and not chat.timer.done():
            chat.timer.cancel()  # only its wait: a flush already under way is shielded
        chat.timer = asyncio.create_task(self._flush_later(chat_id, chat, max(0.0, due - now)))

    async def close(self, chat_id: int) -> None:
        """End the chat's burst and send what is pending now (the bot is about to say more)."""
        self.albums.end_burst(chat_id)
        chat = self._chats.get(chat_id)
        if chat is None:
            return
        if chat.timer is not None and not chat.timer.done():
            chat.timer.cancel()
            await self._flush(chat_id, chat)

    async def close_all(self) -> None:
        """Send every pending acknowledgement now (shutting down)."""
        for chat_id in list(self._chats):
            await self.close(chat_id)

    def forget(self, chat_id: int) -> None:
        """End the chat's burst without sending anything (its data is being deleted)."""
        self.albums.forget_burst(chat_id)
        chat = self._chats.pop(chat_id, None)
        if chat is not None and chat.timer is not None:
            chat.timer.cancel()

    async def _flush_later(self, chat_id: int, chat: _PendingAck, delay: float) -> None:
        await asyncio.sleep(delay)
        # Cancelling a half-sent acknowledgement could lose its message id and make a second
        # message; once started, a flush runs to the end.
        await asyncio.shield(self._flush(chat_id, chat))

    async def _flush(self, chat_id: int, chat: _PendingAck) -> None:
        async with chat.lock:
            chat.pending_since = None
            with i18n.using(chat.language):
                for ack in await self.albums.acknowledgements(chat_id):
                    self.albums.acknowledged(ack, await self._show(ack))

    async def _show(self, ack: Acknowledgement) -> int | None:
        """Send or edit the message; the id it has now (unchanged when Telegram refused)."""
        markup = _buttons(ack)
        try:
            if ack.message_id is not None:
                try:
                    await self.bot.edit_message_text(
                        ack.text,
                        chat_id=ack.chat_id,
                        message_id=ack.message_id,
                        reply_markup=markup,
                    )
                    return ack.message_id
                except BadRequest as e:
                    if "not modified" in e.message.lower():
                        return ack.message_id
                    log.info("Acknowledgement could not be edited (%s); sending anew", e.message)
            message = await self.bot.send_message(ack.chat_id, ack.text, reply_markup=markup)
            return message.message_id
        except TelegramError:
            log.exception("Could not acknowledge media in chat %s", ack.chat_id)
            return ack.message_id


def _buttons(ack: Acknowledgement) -> InlineKeyboardMarkup:
    row = [InlineKeyboardButton(_("✍️ Write the story"), callback_data="story")]
    if ack.undo_batch_id is not None:
        row.insert(0, InlineKeyboardButton(_("↩️ Undo"), callback_data=f"undo:{ack.undo_batch_id}"))
    return InlineKeyboardMarkup([row])
