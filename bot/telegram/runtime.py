"""What handlers share: the services and the acknowledger, kept in the Application's bot_data."""

from __future__ import annotations

from dataclasses import dataclass

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
