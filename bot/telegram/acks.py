"""One acknowledgement per burst of media: a single message, kept up to date.

The burst itself (its batch, counts, message, language and when its acknowledgement is due) is
a row the service keeps (`bot.service.bursts`); `flush` sends or edits what the rows say is
behind, run by the chat's `ack` job on any worker, so another process may carry on a burst
this one began.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, TelegramError

from bot import i18n
from bot.i18n import _
from bot.service.albums import AlbumService
from bot.service.bursts import Acknowledgement
from bot.service.reexports import Job, JobQueue
from bot.telegram.durable import UPDATE_TASK, chat_lock

log = logging.getLogger(__name__)


async def flush(bot: Bot, albums: AlbumService, chat_id: int) -> None:
    """Send or edit every acknowledgement of the chat that is behind, and record each as shown:
    a second flush of the same version sends nothing."""
    for ack in await albums.acknowledgements(chat_id):
        with i18n.using(ack.language):
            message_id = await _show(bot, ack)
        await albums.acknowledged(ack, message_id)


ACK_TASK = "ack"
CLOSE_WAIT = 10.0  # seconds a reply waits for the acknowledgement before it to go out
POLL_SECONDS = 0.05


# When the acknowledgement is due while one of the chat's updates is being handled (it may be
# counting the burst's last file), it looks again this much later, until that update is done
# (its count committed), SETTLE_ROUNDS times at most (a long update counts no file).
SETTLE_SECONDS = 0.05
SETTLE_ROUNDS = 20


def ack_job(chat_id: int, delay: float, settle: int = 0) -> Job:
    """The job that sends or edits the chat's acknowledgement when it is due: one waiting per
    chat (queueing lock), one running per chat across all workers (lock). `settle`: how many
    times it looked already while an update of the chat was being handled."""
    key = f"ack:{chat_id}"
    args: dict[str, object] = {"chat": chat_id, **({"settle": settle} if settle else {})}
    return Job(ACK_TASK, args, lock=key, queueing_lock=key, delay=delay)


class Acknowledger:
    """Says what a burst added in one message, edited as the burst grows.

    Each item received pushes the burst's acknowledgement back to `debounce` seconds after it
    was received (on the database's clock, however late a backlog let it be numbered), so an
    album of ten arrives as one message, not ten. The message is sent by a job (`ack`, any
    worker): one waits per chat, and when it runs early (the burst went on, or the chat's
    updates still wait to be taken in) it defers itself. The service says what it reads.
    """

    def __init__(self, bot: Bot, albums: AlbumService, jobs: JobQueue, debounce: float) -> None:
        self.bot = bot
        self.albums = albums
        self.jobs = jobs
        self.debounce = debounce
        self._chats: set[int] = set()  # chats this process deferred an acknowledgement for

    async def added(self, chat_id: int) -> None:
        """Something joined the chat's burst: acknowledge it once the chat is quiet a moment."""
        await self.jobs.defer(self.job(chat_id))  # refused: one waits already

    def job(self, chat_id: int) -> Job:
        """The job that acknowledges the chat's burst once it is quiet a moment, for the
        caller to defer with what it counts (refused when one waits already)."""
        self._chats.add(chat_id)
        if len(self._chats) > 10_000:  # only used to say what is pending at shutdown
            self._chats.clear()
        return ack_job(chat_id, self.debounce)

    async def run(self, chat_id: int, settled: int = 0) -> None:
        """The `ack` job: send what is due, or come back when it is. `settled`: the times it
        looked already while one of the chat's updates was being handled."""
        wait = await self.albums.acknowledgement_due(chat_id)
        if wait is None:
            return
        if wait > 0:
            await self.jobs.defer(ack_job(chat_id, wait))
            return
        lock = chat_lock(chat_id)
        if await self.jobs.waiting(lock, UPDATE_TASK, running=True) and (
            await self.albums.burst_under_way(chat_id)
        ):
            if await self.jobs.waiting(lock, UPDATE_TASK):
                # Due (a debounce after the last file received), but the chat has updates
                # waiting behind a backlog: the burst may have more. The last of them to count
                # a file brings this job forward; a debounce from now in any case.
                await self.jobs.defer(ack_job(chat_id, self.debounce))
                return
            if settled < SETTLE_ROUNDS:
                # One of its updates is being handled: it may be counting the burst's last
                # file (its count then comes with this message, not in an edit just after).
                # Its count commits before its job ends: look again once it has.
                await self.jobs.defer(ack_job(chat_id, SETTLE_SECONDS, settle=settled + 1))
                return
        await flush(self.bot, self.albums, chat_id)

    async def close(self, chat_id: int) -> None:
        """End the chat's burst and have what is pending sent now, before the bot says more
        (the acknowledgement job sends it: one sender per chat, whichever worker runs it)."""
        await self.albums.end_burst(chat_id)
        if await self.albums.acknowledgement_due(chat_id) is None:
            return
        if not await self.jobs.sooner(f"ack:{chat_id}"):
            await self.jobs.defer(ack_job(chat_id, 0.0))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_WAIT
        while await self.albums.acknowledgement_due(chat_id) is not None:
            if loop.time() > deadline:
                log.warning("The acknowledgement of chat %s is late; answering anyway", chat_id)
                return
            await asyncio.sleep(POLL_SECONDS)

    async def close_all(self) -> None:
        """Send the pending acknowledgements of chats this process took media for (shutting
        down, its jobs stopped). The bursts go on: the next process edits the same messages."""
        for chat_id in list(self._chats):
            try:
                if await self.albums.acknowledgement_due(chat_id) is not None:
                    await flush(self.bot, self.albums, chat_id)
            except Exception:
                log.exception("Could not acknowledge the burst of chat %s", chat_id)
        self._chats.clear()

    async def forget(self, chat_id: int) -> None:
        """End the chat's burst without sending anything (its data is being deleted)."""
        self._chats.discard(chat_id)
        await self.albums.forget_burst(chat_id)


async def _show(bot: Bot, ack: Acknowledgement) -> int | None:
    """Send or edit the message; the id it has now (unchanged when Telegram refused)."""
    markup = _buttons(ack)
    try:
        if ack.message_id is not None and await _edit(bot, ack, ack.message_id, markup):
            return ack.message_id
        message = await bot.send_message(ack.chat_id, ack.text, reply_markup=markup)
        if message.text == ack.text and message.reply_markup == markup:
            return message.message_id
        # Not what was asked: the outbox's answer to an earlier attempt of this job, which sent
        # an older version of the burst and failed before recording it (the database busy a
        # moment). That message, brought up to date: the burst keeps one message.
        if await _edit(bot, ack, message.message_id, markup):
            return message.message_id
        return (await bot.send_message(ack.chat_id, ack.text, reply_markup=markup)).message_id
    except TelegramError:
        log.exception("Could not acknowledge media in chat %s", ack.chat_id)
        return ack.message_id


async def _edit(
    bot: Bot, ack: Acknowledgement, message_id: int, markup: InlineKeyboardMarkup
) -> bool:
    """Make the message say what `ack` says; False when Telegram cannot edit it (deleted, too
    old): send it anew then."""
    try:
        await bot.edit_message_text(
            ack.text, chat_id=ack.chat_id, message_id=message_id, reply_markup=markup
        )
    except BadRequest as e:
        if "not modified" in e.message.lower():
            return True
        log.info("Acknowledgement could not be edited (%s); sending anew", e.message)
        return False
    return True


def _buttons(ack: Acknowledgement) -> InlineKeyboardMarkup:
    row = [InlineKeyboardButton(_("✍️ Write the story"), callback_data="story")]
    if ack.undo_batch_id is not None:
        row.insert(0, InlineKeyboardButton(_("↩️ Undo"), callback_data=f"undo:{ack.undo_batch_id}"))
    return InlineKeyboardMarkup([row])
