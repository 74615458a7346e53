"""Received means kept: every update journaled when received, handled once, never lost silently.

Polling: PTB puts each fetched update here and confirms it to Telegram (the offset of its next
getUpdates) only after `put` returned, that is after the journal committed. Webhook: the server
answers 200 only after `put` returned (bot/telegram/webhook.py). An update_id journaled before,
pending or handled, is a second delivery and is not handled again. An update that never finished
(it crashed or stalled the process each time) is given up after a few tries, and its sender is
told so in one sentence.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from telegram import Bot, ReplyParameters, Update
from telegram.error import TelegramError

from bot.i18n import N_, _, negotiate, using
from bot.service.languages import ChatLanguage
from bot.telegram.concurrency import chat_key
from storage.records import InboxEntry

log = logging.getLogger(__name__)

GAVE_UP = N_(
    "Sorry, I tried several times but could not handle this message. Please send it again."
)

# A chat's language from its id and its writer's Telegram language (LanguageService.for_chat).
Languages = Callable[[int, str | None], Awaitable[ChatLanguage]]


class Inbox(Protocol):
    """Where received updates are journaled until handled (the storage's inbox)."""

    async def keep(self, update_id: int, payload: str, chat_id: int | None = None) -> bool: ...

    async def done(self, update_id: int) -> None: ...

    async def unfinished(self) -> list[str]: ...

    async def abandoned(self) -> list[InboxEntry]: ...


class DurableUpdateQueue(asyncio.Queue[object]):
    """PTB's update queue, with every update written to the inbox before it is queued.

    PTB confirms fetched updates to Telegram with its next poll, before they are handled; the
    inbox is what lets a restarted bot finish the ones a killed process had only fetched.
    `redeliver`: Telegram sends again an update whose `put` raised (webhook mode, the POST is
    answered 503), so a failure to journal is raised rather than handled past.
    """

    def __init__(self, redeliver: bool = False) -> None:
        super().__init__()
        self.inbox: Inbox | None = None
        self.redeliver = redeliver
        self.languages: Languages | None = None  # set at start-up, with the inbox

    async def put(self, item: object) -> None:
        """Journal the update, then queue it (unless it was received before).

        A failure to journal is raised when Telegram will send the update again (a webhook
        answers 503: a 200 must mean journaled). Polling handles the update anyway: raising
        would end PTB's polling loop, and its next poll confirms the update regardless."""
        if self.inbox is not None and isinstance(item, Update):
            try:
                payload = json.dumps(item.to_dict())
                if not await self.inbox.keep(item.update_id, payload, chat_key(item)):
                    log.info(
                        "Update %s was delivered again; it is not handled twice", item.update_id
                    )
                    return
            except Exception:
                if self.redeliver:
                    raise
                # Without the crash safety for this one update, but not deaf.
                log.exception("Could not journal update %s; handling it anyway", item.update_id)
        await super().put(item)

    async def replay(self, bot: Bot) -> int:
        """Tell the senders of updates given up; queue again the updates an earlier run did not
        finish; return how many."""
        if self.inbox is None:
            return 0
        await tell_given_up(bot, await self.inbox.abandoned(), self.languages)
        payloads = await self.inbox.unfinished()
        for payload in payloads:
            await super().put(Update.de_json(json.loads(payload), bot))
        if payloads:
            log.info("Resuming %d update(s) left unhandled by the last run", len(payloads))
        return len(payloads)

    async def stop_taking(self) -> None:
        """Stopping: queue nothing more (every update here is queued as it is received)."""

    async def done(self, update: object) -> None:
        """Mark an update handled once its handlers ran."""
        if self.inbox is not None and isinstance(update, Update):
            await self.inbox.done(update.update_id)


async def tell_given_up(
    bot: Bot, entries: Sequence[InboxEntry], languages: Languages | None = None
) -> None:
    """Log each update given up with its id, and tell its sender in one sentence (in reply to
    the message when there is one), in the chat's language."""
    for entry in entries:
        log.error(
            "Gave up update %s: it did not finish in several tries (each stopped its process)",
            entry.update_id,
        )
        try:
            update = Update.de_json(json.loads(entry.payload), bot)
        except Exception:
            log.exception("Update %s cannot be read back; its sender is not told", entry.update_id)
            continue
        chat = update.effective_chat
        if chat is None:
            continue
        message = update.effective_message
        user = update.effective_user
        reply = (
            ReplyParameters(message.message_id, allow_sending_without_reply=True)
            if message is not None
            else None
        )
        with using(await _speaks(languages, chat.id, user.language_code if user else None)):
            text = _(GAVE_UP)
        try:
            await bot.send_message(chat.id, text, reply_parameters=reply)
        except TelegramError:
            log.exception(
                "Could not tell chat %s that update %s was given up", chat.id, entry.update_id
            )


async def _speaks(languages: Languages | None, chat_id: int, telegram_code: str | None) -> str:
    """The chat's language (its /language choice), else its writer's."""
    if languages is not None:
        try:
            return (await languages(chat_id, telegram_code)).speaks
        except Exception:
            log.exception("Could not read chat %s's language; using its writer's", chat_id)
    return negotiate(telegram_code)
