"""The bot's jobs: an update run through the handlers, a received file downloaded and stored.

Registered once at start-up on the storage's job queue (storage/jobs): the same functions run
in-process on SQLite and on any replica's worker on PostgreSQL. A job may run again (a crash,
a stall another replica took over): an update already handled is not handled again, a file
already stored is not stored again, and a stale attempt's writes and messages are refused
(TakenOver) before they happen.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import Any

from telegram import ReplyParameters, Update
from telegram.error import TelegramError
from telegram.ext import Application

from bot.i18n import N_, _, using
from bot.service.albums import NotAdded, safe_file_name
from bot.service.bursts import FAILURE_REASONS
from bot.service.reexports import (
    JSON,
    KIND_NOUNS,
    RECEIVED_AT,
    Arrival,
    Attempt,
    TakenOver,
    Task,
    current_attempt,
    passing,
)
from bot.service.words import shown_label
from bot.telegram.acks import ACK_TASK
from bot.telegram.durable import UPDATE_TASK, DurableUpdateQueue, receiving
from bot.telegram.intake_first import IntakeFirst
from bot.telegram.media_types import MEDIA
from bot.telegram.message_handlers import downloader
from bot.telegram.runtime import Runtime

log = logging.getLogger(__name__)

INGEST_TASK = "ingest"

GAVE_UP = N_(
    "Sorry, I tried several times but could not handle this message. Please send it again."
)
NOT_ADDED = N_("I could not add %(item)s: %(reason)s.")

# Set while an update runs through the handlers: PTB hands a handler's exception to the error
# handler rather than raising it, so the error handler leaves here what the update's job must
# raise instead (the job was taken over; a failure of the database that passes).
_raise: contextvars.ContextVar[list[BaseException] | None] = contextvars.ContextVar(
    "raise_from_handlers", default=None
)


def taken_over(error: BaseException | None) -> bool:
    """For the error handler: whether `error` means this job attempt lost its job (say
    nothing: the worker that has it now answers)."""
    if not isinstance(error, TakenOver):
        return False
    seen = _raise.get()
    if seen is not None:
        seen.append(error)
    return True


def tried_again(error: BaseException | None) -> bool:
    """For the error handler: whether `error` is a failure of the database that passes (busy a
    moment, a connection lost) and this is not the last attempt of the update's job: the job
    raises it and runs the update again, so say nothing now. Its last attempt apologises."""
    attempt = current_attempt()
    seen = _raise.get()
    if error is None or seen is None or attempt is None or attempt.last or not passing(error):
        return False
    seen.append(error)
    return True


def register(app: Application[Any, Any, Any, Any, Any, Any], rt: Runtime) -> None:
    """Register the bot's tasks on the storage's job queue."""
    intake = IntakeFirst()

    async def run_update(attempt: Attempt, args: JSON) -> None:
        """Run one received update through the handlers, once."""
        journal = app.update_queue
        update = (
            journal.parsed(int(args["update"]["update_id"]))
            if isinstance(journal, DurableUpdateQueue) and attempt.number == 0
            else None
        ) or Update.de_json(args["update"], app.bot)
        inbox = rt.services.storage.inbox
        # A job is made once per update_id (a second delivery makes none): only a second
        # attempt can find its update handled, by an attempt that stopped before finishing.
        if attempt.number > 0 and await inbox.handled(update.update_id):
            return
        seen: list[BaseException] = []
        token = _raise.set(seen)
        # A new media message (an edited one's caption may wait for its file: not counted).
        new_media = update.message is not None and MEDIA.check_update(update)
        taking = intake.taking() if new_media else contextlib.nullcontext()
        received = args.get(RECEIVED_AT)
        try:
            with taking, receiving(float(received) if received is not None else None):
                await app.process_update(update)
        finally:
            _raise.reset(token)
        if seen:
            raise seen[0]  # taken over (ends the attempt), or tried again
        # Marked handled in the transaction that records the job's end: a job run again after
        # a crash finds it so.
        attempt.at_end(inbox.handled_mark(update.update_id))

    async def run_ingest(attempt: Attempt, args: JSON) -> None:
        """Download, check and store one received file; a file given up is named to its chat."""
        await intake.lull()  # the media messages of a burst are taken in first
        fetcher = lambda file_id: downloader(app.bot, rt.http, file_id)  # noqa: E731
        await rt.services.albums.ingest(
            int(args["arrival"]),
            fetcher,
            attempt.last,
            album_id=int(args["album"]),
            position=int(args["position"]),
            not_added=_namer(app, rt, args),
        )

    async def run_ack(attempt: Attempt, args: JSON) -> None:
        """Send or edit the chat's acknowledgement when it is due."""
        await rt.acks.run(int(args["chat"]), settled=int(args.get("settle", 0)))

    queue = rt.services.storage.jobs
    queue.register(Task(UPDATE_TASK, run_update))
    queue.register(Task(INGEST_TASK, run_ingest, attempts=4))
    queue.register(Task(ACK_TASK, run_ack))


def _namer(app: Application[Any, Any, Any, Any, Any, Any], rt: Runtime, args: JSON) -> NotAdded:
    """How an ingest job (or its telling) names a file of its chat that could not be added."""

    async def name(arrival: Arrival, reason: str) -> None:
        await _name_failure(app, rt, int(args["chat"]), arrival, reason, args)

    return name


async def _name_failure(
    app: Application[Any, Any, Any, Any, Any, Any],
    rt: Runtime,
    chat_id: int,
    arrival: Arrival,
    reason: str,
    args: JSON,
) -> None:
    """Name a received file that could not be added: once, in its burst's acknowledgement (or
    on its own when that burst is long gone). A second call for the same file (its job run
    again) adds nothing: the burst keeps a name once, and the job's message goes once."""
    burst = await rt.services.albums.burst_of_batch(chat_id, arrival.batch_id)
    name = arrival.origin.file_name or f"{KIND_NOUNS[arrival.kind]} {arrival.position}"
    if burst is not None:
        await rt.services.albums.failed(chat_id, burst, name, reason, key=f"arrival:{arrival.id}")
        await rt.acks.added(chat_id)
        return
    with using(str(args.get("language") or "")):
        label = f"{KIND_NOUNS[arrival.kind]} {arrival.position}"
        if arrival.origin.file_name:
            label += f" ({safe_file_name(arrival.origin.file_name).strip(chr(39))})"
        text = _(NOT_ADDED) % {"item": shown_label(label), "reason": _(FAILURE_REASONS[reason])}
        message = arrival.origin.chat_message_id
        reply = ReplyParameters(message, allow_sending_without_reply=True) if message else None
        await app.bot.send_message(chat_id, text, reply_parameters=reply)


def given_up(app: Application[Any, Any, Any, Any, Any, Any], rt: Runtime):  # type: ignore[no-untyped-def]
    """What to do with a job that failed every try: log it, and tell the chat in one sentence.

    Runs as a job of its own (storage/jobs, `gave_up_job`), deferred with the failure: it may
    run again, so it takes back nothing twice and its messages go once (the outbox)."""

    async def tell(task: str, args: JSON) -> None:
        if task == INGEST_TASK:
            # A file whose job failed every try (or stopped its process each time): named like
            # any file that could not be added, then dropped, so nothing waits for it.
            log.error("Gave up ingesting file %s of album %s", args["position"], args["album"])
            namer = _namer(app, rt, args)
            await rt.services.albums.give_up_file(int(args["arrival"]), "unreadable", namer)
            return
        if task != UPDATE_TASK:
            log.error("Gave up a %s job (%s)", task, dict(args))
            return
        update = Update.de_json(args["update"], app.bot)
        log.error("Gave up update %s: it did not finish in several tries", update.update_id)
        # Handled as far as it ever will be: its id is kept a day, then purged like any other.
        await rt.services.storage.inbox.done(update.update_id)
        chat = update.effective_chat
        if chat is None:
            return
        message = update.effective_message
        user = update.effective_user
        reply = (
            ReplyParameters(message.message_id, allow_sending_without_reply=True)
            if message is not None
            else None
        )
        language = await rt.services.languages.for_chat(
            chat.id, user.language_code if user else None
        )
        with using(language.speaks):
            text = _(GAVE_UP)
        try:
            await app.bot.send_message(chat.id, text, reply_parameters=reply)
        except TelegramError:
            log.exception(
                "Could not tell chat %s that update %s was given up", chat.id, update.update_id
            )

    return tell
