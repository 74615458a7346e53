"""What counts as media on Telegram's side, derived from the service's one list (MEDIA_TYPES)."""

from __future__ import annotations

from telegram import Message
from telegram.ext import filters

from bot.service.albums import MEDIA_TYPES


def media_type(message: Message) -> str | None:
    """The kind of file the message carries, by Telegram's name for it ("photo", "voice", ...)."""
    return next((name for name in MEDIA_TYPES if getattr(message, name, None)), None)


def carries_media(message: Message) -> bool:
    """Whether the message carries a file the bot would take into an album."""
    return media_type(message) is not None


class _Media(filters.MessageFilter):
    """Messages that carry media, for a handler (PTB's filters.PHOTO | filters.VIDEO | ...)."""

    def filter(self, message: Message) -> bool:
        return carries_media(message)


MEDIA = _Media(name="MEDIA")
