"""What handlers share: the services and the acknowledger, kept in the Application's bot_data."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from telegram import Update
from telegram.ext import ContextTypes

from bot import i18n
from bot.service.conversation import Asker
from bot.telegram.acks import Acknowledger
from bot.telegram.rich import RichMessages
from bot.wiring import Services

KEY = "photostory"


@dataclass
class Runtime:
    """The live objects behind the handlers."""

    services: Services
    acks: Acknowledger
    http: httpx.AsyncClient  # file downloads, streamed to disk
    rich: RichMessages = field(default_factory=RichMessages)  # whether the server has them


def runtime(context: ContextTypes.DEFAULT_TYPE) -> Runtime:
    """The Runtime set up at start-up."""
    value = context.application.bot_data[KEY]
    assert isinstance(value, Runtime)
    return value


def asker(update: Update) -> Asker:
    """Who is asking, from an update; the answer is written in the chat's language."""
    user = update.effective_user
    chat = update.effective_chat
    assert chat is not None
    return Asker(
        chat_id=chat.id,
        user_id=user.id if user else None,
        name=user.full_name if user else None,
        # The chat's /language choice, else its writer's (set per update, bot/telegram/language).
        language_code=i18n.writes() or (user.language_code if user else None),
    )
