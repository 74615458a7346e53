"""What handlers share: the services and the acknowledger, kept in the Application's bot_data."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
from telegram import Update
from telegram.ext import ContextTypes

from bot.service.conversation import Asker
from bot.services import Services
from bot.telegram.acks import Acknowledger

KEY = "photostory"


@dataclass
class Runtime:
    """The live objects behind the handlers."""

    services: Services
    acks: Acknowledger
    http: httpx.AsyncClient  # file downloads, streamed to disk
    _told: dict[tuple[int, str], float] = field(default_factory=dict)

    def first_time(self, chat_id: int, topic: str, within: float = 60.0) -> bool:
        """True unless the chat was told about `topic` in the last `within` seconds."""
        now = time.monotonic()
        last = self._told.get((chat_id, topic))
        if last is not None and now - last < within:
            return False
        self._told[(chat_id, topic)] = now
        return True


def runtime(context: ContextTypes.DEFAULT_TYPE) -> Runtime:
    """The Runtime set up at start-up."""
    value = context.application.bot_data[KEY]
    assert isinstance(value, Runtime)
    return value


def asker(update: Update) -> Asker:
    """Who is asking, from an update."""
    user = update.effective_user
    chat = update.effective_chat
    assert chat is not None
    return Asker(
        chat_id=chat.id,
        user_id=user.id if user else None,
        name=user.full_name if user else None,
        language_code=user.language_code if user else None,
    )
