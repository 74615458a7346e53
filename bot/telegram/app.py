"""Builds the python-telegram-bot Application: handlers, concurrency, start-up and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import httpx
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.config import Settings
from bot.i18n import _
from bot.service import reexports as job_queue
from bot.telegram import account, commands, jobs, language, message_handlers
from bot.telegram.access import AccessGate
from bot.telegram.acks import Acknowledger
from bot.telegram.durable import DurableUpdateQueue, JournaledPolling
from bot.telegram.media_types import MEDIA
from bot.telegram.outbox import Outbox
from bot.telegram.ratelimit import RetryingRateLimiter
from bot.telegram.rich import RichMessages
from bot.telegram.runtime import KEY, Runtime
from bot.telegram.story_handlers import APOLOGY
from bot.wiring import Services

log = logging.getLogger(__name__)

_REGISTERING = "register-languages"  # bot_data key of the start-up task telling Telegram
# A chat's job mostly waits (for Telegram, for Gemini): many run at once. Media jobs use the CPU.
CHAT_WORKERS = 32
STOP_SECONDS = 10.0  # how long running jobs may take to finish when the bot stops


def media_workers() -> int:
    """Downloads and checks at once: one per core. More mostly takes the interpreter from the
    chats' jobs (acknowledging, answering), which wait behind them."""
    return max(2, os.cpu_count() or 1)


NEW = filters.UpdateType.MESSAGE  # edits of earlier messages are not new requests
EDITED = filters.UpdateType.EDITED_MESSAGE
UNUSABLE = filters.Sticker.ALL | filters.CONTACT | filters.POLL | filters.Dice.ALL | filters.STORY


def build_application(settings: Settings) -> Application:  # type: ignore[type-arg]
    """The bot, wired to its services; run it with run_polling() or start it by hand in tests."""
    root = settings.telegram_api_url.rstrip("/")
    # Every update becomes a job (bot/telegram/jobs.py) on the storage's queue: in-process on
    # SQLite, shared by the replicas on PostgreSQL. A webhook update not journaled is answered
    # 503, and Telegram sends it again.
    queue = DurableUpdateQueue(redeliver=settings.webhook_url is not None)
    app = (
        ApplicationBuilder()
        .token(settings.telegram_token)
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .local_mode(settings.telegram_local_mode)
        .update_queue(queue)
        # A poll confirms the updates of the one before: only once they are journaled.
        .get_updates_request(JournaledPolling(queue))
        # Waits out flood limits (429 retry_after) and retries 5xx instead of failing a reply.
        .rate_limiter(RetryingRateLimiter())
        .read_timeout(30)
        .write_timeout(60)
        .media_write_timeout(120)
        .post_init(_post_init(settings, queue))
        .post_stop(_post_stop)
        .post_shutdown(_post_shutdown)
        .build()
    )
    app.add_handler(TypeHandler(Update, AccessGate(settings.allowed)), group=-2)
    app.add_handler(TypeHandler(Update, language.speak_chat_language), group=-1)
    for name, callback in (
        ("start", commands.start),
        ("help", commands.help_command),
        ("story", commands.story),
        ("landmarks", commands.landmarks),
        ("sametrip", commands.same_trip),
        ("export", commands.export),
        ("new", commands.new_album),
        ("albums", commands.albums),
        ("rename", commands.rename),
        ("note", commands.note),
        ("undo", commands.undo),
        ("reset", commands.reset),
        ("usage", account.usage),
        ("stats", account.stats),
        ("forget", account.forget),
        ("language", language.language_command),
    ):
        app.add_handler(CommandHandler(name, callback, filters=NEW))
    app.add_handler(MessageHandler(NEW & filters.COMMAND, commands.unknown_command))
    app.add_handler(MessageHandler(NEW & MEDIA, message_handlers.on_media))
    app.add_handler(MessageHandler(NEW & filters.TEXT & ~filters.COMMAND, message_handlers.on_text))
    app.add_handler(MessageHandler(NEW & filters.LOCATION, message_handlers.on_location))
    app.add_handler(MessageHandler(NEW & UNUSABLE, message_handlers.on_unusable))
    # Editing a photo's caption later updates what the story knows; other edits change nothing
    # (an edited question must not be answered twice).
    app.add_handler(MessageHandler(EDITED & MEDIA, message_handlers.on_caption_edit))
    app.add_handler(CallbackQueryHandler(commands.on_button))
    app.add_error_handler(_on_error)
    return app


def _post_init(settings: Settings, queue: DurableUpdateQueue):  # type: ignore[no-untyped-def]
    async def post_init(app: Application) -> None:  # type: ignore[type-arg]
        services = await Services.open(settings)
        # Kept at once, so a stop from here on (SIGTERM during start-up) still closes them.
        app.bot_data[KEY] = Runtime(
            services=services,
            acks=Acknowledger(
                app.bot, services.albums, services.storage.jobs, settings.ack_debounce
            ),
            http=httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0)),
            rich=RichMessages(enabled=settings.rich_story),
        )
        if isinstance(app.bot.rate_limiter, RetryingRateLimiter):
            # A job's messages are recorded as they are posted: a job run again posts them once.
            app.bot.rate_limiter.outbox = Outbox(services.storage.sent)
        rt = app.bot_data[KEY]
        jobs.register(app, rt)
        await services.storage.jobs.start(
            {job_queue.CHAT: CHAT_WORKERS, job_queue.MEDIA: media_workers()}, jobs.given_up(app, rt)
        )
        queue.inbox = services.storage.inbox
        # In the background: eleven languages are 33 requests, and the bot can answer meanwhile.
        app.bot_data[_REGISTERING] = asyncio.create_task(
            language.register(app.bot, commands.COMMANDS), name="register-languages"
        )
        log.info("photostory is up as @%s (model %s)", app.bot.username, settings.gemini_model)

    return post_init


async def _post_stop(app: Application) -> None:  # type: ignore[type-arg]
    registering = app.bot_data.pop(_REGISTERING, None)
    if isinstance(registering, asyncio.Task) and not registering.done():
        registering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await registering
    runtime = app.bot_data.get(KEY)
    if isinstance(runtime, Runtime):
        # Running jobs finish (or are run again by the next start, or another replica); then
        # everything received has been acknowledged before the process goes.
        await runtime.services.storage.jobs.stop(STOP_SECONDS)
        await runtime.acks.close_all()


async def _post_shutdown(app: Application) -> None:  # type: ignore[type-arg]
    runtime = app.bot_data.pop(KEY, None)
    if isinstance(runtime, Runtime):
        await runtime.http.aclose()
        await runtime.services.close()


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    update_id = update.update_id if isinstance(update, Update) else None
    if jobs.taken_over(context.error):
        # This attempt stalled and another worker has the update now: it answers, not this one.
        log.info(
            "Update %s: its job was taken over by another worker; this attempt stops", update_id
        )
        return
    if jobs.tried_again(context.error):
        log.warning(
            "Update %s: the database failed a moment (%s); its job runs it again",
            update_id,
            type(context.error).__name__,
        )
        return
    # The update is marked handled all the same (the apology tells the user): not run again.
    log.error("Unhandled error while handling update %s", update_id, exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        try:
            await update.effective_message.reply_text(_(APOLOGY))
        except TelegramError:
            pass
