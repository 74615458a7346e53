"""The records the services hand to the Telegram side, defined once in `storage.records`.

Handlers import them from here, so nothing under `bot/telegram/` reaches into storage.
"""

from storage.records import KIND_NOUNS, AlbumSummary, ChatFootprint, Item, Origin

__all__ = ["KIND_NOUNS", "AlbumSummary", "ChatFootprint", "Item", "Origin"]
