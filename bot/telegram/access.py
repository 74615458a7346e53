"""Who may use the bot: checked before any handler runs, so strangers cost nothing."""

from __future__ import annotations

import logging
import time

from telegram import Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot import i18n
from bot.config import AccessList
from bot.i18n import _

log = logging.getLogger(__name__)

TELL_AGAIN_AFTER = 60.0  # a stranger's burst of photos gets one answer, not one per photo


class AccessGate:
    """A PTB callback for group -1: lets allowed users through, stops and answers everyone else."""

    def __init__(self, allowed: AccessList) -> None:
        self.allowed = allowed
        self._told: dict[int, float] = {}

    async def __call__(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Stop the update unless its sender (or its group chat) is allowed."""
        if not isinstance(update, Update):
            raise ApplicationHandlerStop
        user = update.effective_user
        chat = update.effective_chat
        if user is None or user.is_bot:
            raise ApplicationHandlerStop
        if self.allowed.allows(user.id, user.username, chat.id if chat else None):
            return
        log.info("Refused user %s in chat %s", user.id, chat.id if chat else None)
        now = time.monotonic()
        if now - self._told.get(user.id, -TELL_AGAIN_AFTER) >= TELL_AGAIN_AFTER:
            self._told[user.id] = now
            await self._tell(update, user.id)
        raise ApplicationHandlerStop

    async def _tell(self, update: Update, user_id: int) -> None:
        user = update.effective_user
        with i18n.using(i18n.negotiate(user.language_code if user else None)):
            text = _(
                "Sorry, this bot is private. Your Telegram user id is %(id)d. "
                "To use it, ask the bot's owner to add this id to ALLOWED_USERS."
            ) % {"id": user_id}
        try:
            if update.callback_query is not None:
                await update.callback_query.answer(text, show_alert=True)
            elif update.effective_message is not None:
                chat = update.effective_chat
                in_private = chat is not None and chat.type == ChatType.PRIVATE
                await update.effective_message.reply_text(text, do_quote=not in_private)
        except TelegramError:
            log.warning("Could not tell user %s they are not allowed", user_id)
