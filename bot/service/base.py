"""What every album-facing service holds: the settings, the one storage, the model and copies."""

from __future__ import annotations

from bot.config import Settings
from bot.model import Model
from bot.service.copies import ModelCopies
from storage.protocols import Storage


class AlbumServiceBase:
    """The shared constructor of the services that work on a chat's albums."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        model: Model,
        copies: ModelCopies,
    ) -> None:
        self.settings = settings
        # The stores are reached as self.storage.albums etc.: self.albums would read as the
        # album service (Services.albums), which is not what it holds.
        self.storage = storage
        self.model = model
        self.copies = copies
