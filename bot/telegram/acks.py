"""One acknowledgement per burst of media: a single message, kept up to date.

The burst itself (its batch, counts, message, language and when its acknowledgement is due) is
a row the service keeps (`bot.service.bursts`); `flush` sends or edits what the rows say is
behind, from any process. The timers here only decide when to call it in this process: they
hold nothing `flush` needs, so another process may carry on a burst this one began.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, TelegramError

from bot import i18n
from bot.i18n import _
from bot.service.albums import AlbumService
from bot.service.bursts import Acknowledgement

log = logging.getLogger(__name__)


async def flush(bot: Bot, albums: AlbumService, chat_id: int) -> None:
    """Send or edit every acknowledgement of the chat that is behind, and record each as shown:
    a second flush of the same version sends nothing."""
    for ack in await albums.acknowledgements(chat_id):
        with i18n.using(ack.language):
            message_id = await _show(bot, ack)
        await albums.acknowledged(ack, message_id)


class Acknowledger:
    """Says what a burst added in one message, edited as the burst grows.

    Each stored item pushes the burst's acknowledgement back to `debounce` seconds later (on the
    database's clock), so an album of ten arrives as one message, not ten; a timer per chat
    flushes it when due. The service says what the message should read.
    """

    def __init__(self, bot: Bot, albums: AlbumService, debounce: float) -> None:
        self.bot = bot
        self.albums = albums
        self.debounce = debounce
        self._timers: dict[int, asyncio.Task[None]] = {}
        # Flushes of one chat in this process take turns (a lock lives while it is used).
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    def added(self, chat_id: int) -> None:
        """Something joined the chat's burst: acknowledge it once the chat is quiet a moment."""
        timer = self._timers.get(chat_id)
        if timer is not None and not timer.done():
            timer.cancel()  # only its wait: a flush already under way is shielded
        self._timers[chat_id] = asyncio.create_task(self._flush_when_due(chat_id))

    async def close(self, chat_id: int) -> None:
        """End the chat's burst and send what is pending now (the bot is about to say more)."""
        await self.albums.end_burst(chat_id)
        self._cancel(chat_id)
        await self._flush(chat_id)

    async def close_all(self) -> None:
        """Send every pending acknowledgement now (shutting down). The bursts go on: the next
        process edits the same messages."""
        for chat_id in list(self._timers):
            if self._cancel(chat_id):
                await self._flush(chat_id)

    async def forget(self, chat_id: int) -> None:
        """End the chat's burst without sending anything (its data is being deleted)."""
        self._cancel(chat_id)
        await self.albums.forget_burst(chat_id)

    def _cancel(self, chat_id: int) -> bool:
        """Stop the chat's timer; whether it was still waiting."""
        timer = self._timers.pop(chat_id, None)
        if timer is None or timer.done():
            return False
        timer.cancel()
        return True

    async def _flush_when_due(self, chat_id: int) -> None:
        try:
            while (wait := await self.albums.acknowledgement_due(chat_id)) is not None:
                if wait <= 0:
                    # Cancelling a half-sent acknowledgement could lose its message id and make
                    # a second message; once started, a flush runs to the end.
                    await asyncio.shield(self._flush(chat_id))
                    return
                await asyncio.sleep(wait)
        except Exception:  # the database away a moment: the next change of the chat retries
            log.exception("Could not acknowledge the burst of chat %s", chat_id)
        finally:
            if self._timers.get(chat_id) is asyncio.current_task():
                del self._timers[chat_id]

    async def _flush(self, chat_id: int) -> None:
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        async with lock:
            await flush(self.bot, self.albums, chat_id)


async def _show(bot: Bot, ack: Acknowledgement) -> int | None:
    """Send or edit the message; the id it has now (unchanged when Telegram refused)."""
    markup = _buttons(ack)
    try:
        if ack.message_id is not None:
            try:
                await bot.edit_message_text(
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
        message = await bot.send_message(ack.chat_id, ack.text, reply_markup=markup)
        return message.message_id
    except TelegramError:
        log.exception("Could not acknowledge media in chat %s", ack.chat_id)
        return ack.message_id


def _buttons(ack: Acknowledgement) -> InlineKeyboardMarkup:
    row = [InlineKeyboardButton(_("✍️ Write the story"), callback_data="story")]
    if ack.undo_batch_id is not None:
        row.insert(0, InlineKeyboardButton(_("↩️ Undo"), callback_data=f"undo:{ack.undo_batch_id}"))
    return InlineKeyboardMarkup([row])
