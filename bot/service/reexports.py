"""Storage's records that the services hand to the Telegram side, re-exported unchanged.

They are defined once, in `storage.records`; handlers import them from here so that nothing under
`bot/telegram/` imports a `storage` module (the layering rule in docs/architecture.md).
"""

from storage.records import AlbumSummary, ChatFootprint, Item, Origin

__all__ = ["AlbumSummary", "ChatFootprint", "Item", "Origin"]
