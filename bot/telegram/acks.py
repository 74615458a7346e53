"""One acknowledgement per burst of media: a single message, kept up to date."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, TelegramError

from bot.service.albums import AlbumService
from bot.service.records import AlbumSummary
from bot.service.words import count

log = logging.getLogger(__name__)

MAX_HOLD = 3  # a continuous burst is acknowledged at least every MAX_HOLD debounce intervals


@dataclass
class _Burst:
    album_id: int
    batch_id: int | None
    message_id: int | None = None
    photos: int = 0
    videos: int = 0
    notes: int = 0
    repeats: int = 0
    timer: asyncio.Task[None] | None = None
    pending_since: float | None = None  # first change not yet shown
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Acknowledger:
    """Counts what a burst added and says so in one message, edited as the burst grows.

    Each stored item schedules a flush `debounce` seconds later; a new item pushes it back, so an
    album of ten arrives as one message, not ten. The flush reads the album's totals from the
    database, so the message only ever counts what is committed.
    """

    def __init__(self, bot: Bot, albums: AlbumService, debounce: float) -> None:
        self.bot = bot
        self.albums = albums
        self.debounce = debounce
        self._bursts: dict[int, _Burst] = {}

    def added(self, chat_id: int, album_id: int, batch_id: int | None, kind: str) -> None:
        """A photo, video or note was stored (kind 'photo', 'video', 'note' or 'repeat')."""
        burst = self._bursts.get(chat_id)
        if (
            burst is None
            or burst.album_id != album_id
            or (batch_id is not None and burst.batch_id not in (None, batch_id))
        ):
            burst = self._start(chat_id, album_id, batch_id)
        if batch_id is not None:
            burst.batch_id = batch_id
        if kind == "photo":
            burst.photos += 1
        elif kind == "video":
            burst.videos += 1
        elif kind == "note":
            burst.notes += 1
        else:
            burst.repeats += 1
        self._schedule(chat_id, burst)

    def _schedule(self, chat_id: int, burst: _Burst) -> None:
        """Flush after a quiet `debounce`, but never hold news back longer than a few of them."""
        now = asyncio.get_running_loop().time()
        if burst.pending_since is None:
            burst.pending_since = now
        due = min(now + self.debounce, burst.pending_since + MAX_HOLD * self.debounce)
        if burst.timer is not None and not burst.timer.done():
            burst.timer.cancel()  # only its wait: a flush already under way is shielded
        burst.timer = asyncio.create_task(self._flush_later(chat_id, burst, max(0.0, due - now)))

    async def close(self, chat_id: int) -> None:
        """Send what is pending now and end the burst (the bot is about to say something else)."""
        burst = self._bursts.pop(chat_id, None)
        if burst is None:
            return
        if burst.timer is not None and not burst.timer.done():
            burst.timer.cancel()
            await self._flush(chat_id, burst)

    async def close_all(self) -> None:
        """Send every pending acknowledgement now (shutting down)."""
        for chat_id in list(self._bursts):
            await self.close(chat_id)

    def forget(self, chat_id: int) -> None:
        """Drop the burst without sending (its batch was taken back)."""
        burst = self._bursts.pop(chat_id, None)
        if burst is not None and burst.timer is not None:
            burst.timer.cancel()

    def _start(self, chat_id: int, album_id: int, batch_id: int | None) -> _Burst:
        # A pending flush of the previous burst keeps its own reference and still happens.
        burst = _Burst(album_id, batch_id)
        self._bursts[chat_id] = burst
        return burst

    async def _flush_later(self, chat_id: int, burst: _Burst, delay: float) -> None:
        await asyncio.sleep(delay)
        # Cancelling a half-sent acknowledgement could lose its message id and make a second
        # message; once started, a flush runs to the end.
        await asyncio.shield(self._flush(chat_id, burst))

    async def _flush(self, chat_id: int, burst: _Burst) -> None:
        async with burst.lock:
            burst.pending_since = None
            summary = await self.albums.summary(chat_id, burst.album_id)
            if summary is None:
                return
            text = _text(summary, burst)
            markup = _buttons(burst)
            try:
                if burst.message_id is not None:
                    try:
                        await self.bot.edit_message_text(
                            text, chat_id=chat_id, message_id=burst.message_id, reply_markup=markup
                        )
                        return
                    except BadRequest as e:
                        if "not modified" in e.message.lower():
                            return
                        log.info(
                            "Acknowledgement could not be edited (%s); sending anew", e.message
                        )
                message = await self.bot.send_message(chat_id, text, reply_markup=markup)
                burst.message_id = message.message_id
            except TelegramError:
                log.exception("Could not acknowledge media in chat %s", chat_id)


def _text(summary: AlbumSummary, burst: _Burst) -> str:
    lines = [f"📸 Album “{summary.album.name}”: {_counts(summary.photos, summary.videos)}"]
    if summary.notes:
        lines[0] += f" · {summary.notes} note{'s' if summary.notes != 1 else ''}"
    news = []
    if burst.photos or burst.videos:
        news.append(f"added {_counts(burst.photos, burst.videos)}")
    if burst.notes:
        news.append(f"noted {burst.notes} thing{'s' if burst.notes != 1 else ''} you told me")
    if burst.repeats:
        news.append(f"{burst.repeats} already in the album, kept once")
    if news:
        lines.append("Just now: " + "; ".join(news) + ".")
    lines.append("Send more, or /story when you are ready.")
    return "\n".join(lines)


def _counts(photos: int, videos: int) -> str:
    parts = [count(photos, "photo")]
    if videos:
        parts.append(count(videos, "video"))
    return ", ".join(parts)


def _buttons(burst: _Burst) -> InlineKeyboardMarkup:
    row = [InlineKeyboardButton("✍️ Write the story", callback_data="story")]
    if burst.batch_id is not None:
        row.insert(0, InlineKeyboardButton("↩️ Undo", callback_data=f"undo:{burst.batch_id}"))
    return InlineKeyboardMarkup([row])
