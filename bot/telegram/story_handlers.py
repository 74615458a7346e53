"""Handlers that ask the model: /story, /landmarks and follow-up questions."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from telegram import InputFile, Update
from telegram.constants import ChatAction
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.errors import ModelError, UserError
from bot.i18n import N_, _, is_rtl
from bot.service.conversation import Progress, Reply
from bot.service.reexports import TakenOver
from bot.telegram.replies import ChatProgress, send_markdown, showing
from bot.telegram.runtime import asker, runtime
from bot.telegram.story_posting import BOT_UPLOAD_LIMIT, post_story

log = logging.getLogger(__name__)

# Sentences kept in English here and translated where they are said (N_ marks them for Babel).

APOLOGY = N_("Sorry, something went wrong on my side. Nothing was lost; please try again.")
UNDELIVERED = N_(
    "I wrote the answer, but Telegram would not take it. It is saved: ask me to repeat it, "
    "or send /undo to drop it."
)

Run = Callable[[Progress], Awaitable[Reply]]


async def write_story(update: Update, context: ContextTypes.DEFAULT_TYPE, wish: str | None) -> None:
    """Write the album's photo tour, streamed into the chat."""
    rt = runtime(context)
    who = asker(update)

    async def run(progress: Progress) -> Reply:
        return await rt.services.conversation.story(who, wish, progress)

    await _answer(update, context, run, _("✍️ Writing the story of your trip…"), rich=True)


async def suggest_landmarks(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """List the well-known places nearby that the album does not show."""
    rt = runtime(context)
    who = asker(update)

    async def run(progress: Progress) -> Reply:
        return await rt.services.conversation.landmarks(who, progress)

    await _answer(update, context, run, _("🗺 Looking for the places you missed…"))


async def story_as_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send the latest story again as plain text messages, without pictures."""
    chat = update.effective_chat
    assert chat is not None
    rt = runtime(context)
    try:
        _album, story, _items = await rt.services.conversation.latest_story(chat.id)
    except UserError as e:
        await context.bot.send_message(chat.id, str(e))
        return
    await send_markdown(context.bot, chat.id, story.markdown())


async def export_story(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send the latest story as a web page and a Markdown zip, ready to publish."""
    chat = update.effective_chat
    assert chat is not None
    rt = runtime(context)
    # A long trip's pages take a while to build: the chat shows "sending a file" meanwhile.
    async with showing(context.bot, chat.id, ChatAction.UPLOAD_DOCUMENT):
        try:
            # The page's lang and dir: the language its story was written in (the chat's).
            export = await rt.services.conversation.export(
                chat.id, asker(update).language_code, BOT_UPLOAD_LIMIT
            )
        except UserError as e:
            await context.bot.send_message(chat.id, str(e))
            return
        for file in export.files:
            data = await file.make()
            if len(data) > BOT_UPLOAD_LIMIT:
                size = len(data) / 2**20
                data = b""  # not kept while the next file is made
                await context.bot.send_message(
                    chat.id,
                    _(
                        "%(file)s is %(size).1f MB even with smaller pictures, more than the "
                        "50 MB Telegram lets a bot send. A story over fewer photos would fit: "
                        "start one with /new and send the best of them."
                    )
                    % {"file": file.name, "size": size},
                )
                continue
            await context.bot.send_document(
                chat.id, InputFile(data, filename=file.name), caption=_(EXPORT_CAPTIONS[file.kind])
            )
            del data  # before the next file is made


EXPORT_CAPTIONS = {
    "page": N_("📄 The story as a web page: opens offline in any browser."),
    "markdown": N_("📝 Markdown with its images, for a blog."),
}


async def compare_trip(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Was a video (replied to, or the latest) shot on the same trip as the photos?"""
    rt = runtime(context)
    who = asker(update)
    message = update.effective_message
    replied = message.reply_to_message if message is not None else None

    async def run(progress: Progress) -> Reply:
        return await rt.services.conversation.same_trip(
            who, progress, replied.message_id if replied else None
        )

    await _answer(update, context, run, _("🔎 Comparing the video with your photos…"))


async def answer_question(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    question: str,
    replied_message_id: int | None,
) -> None:
    """A follow-up in the album's conversation."""
    rt = runtime(context)
    who = asker(update)

    async def run(progress: Progress) -> Reply:
        return await rt.services.conversation.ask(who, question, progress, replied_message_id)

    await _answer(update, context, run, _("💭 Thinking…"))


async def _answer(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    run: Run,
    placeholder: str,
    *,
    rich: bool = False,
) -> None:
    chat = update.effective_chat
    assert chat is not None
    rt = runtime(context)
    # The story is written in the chat's language: its direction follows that language.
    writes = asker(update).language_code
    # Whatever was being collected is acknowledged first; new media will start a new batch.
    await rt.acks.close(chat.id)
    message = update.effective_message
    reply_to = message.message_id if message is not None and update.callback_query is None else None
    settings = rt.services.settings
    async with ChatProgress(
        context.bot,
        chat.id,
        chat.type,
        reply_to=reply_to,
        placeholder=placeholder,
        draft_interval=settings.draft_interval,
        edit_interval=settings.edit_interval,
        rich=rt.rich if rich else None,
        rtl=is_rtl(writes),
    ) as progress:
        try:
            reply = await run(progress)
        except (UserError, ModelError) as e:
            await progress.fail(str(e))
            return
        except TakenOver:
            raise  # another worker answers: no apology from this one
        except Exception:
            log.exception("Answering failed in chat %s", chat.id)
            await progress.fail(_(APOLOGY))
            return
        try:
            if reply.story is not None:
                await post_story(
                    context.bot,
                    chat.id,
                    reply.story,
                    reply.items,
                    rt.services.media_files,
                    album_name=reply.album.name,
                    reply_to=reply_to,
                    placeholder_id=await progress.release(),
                    rich=rt.rich,
                    language=writes,
                )
            else:
                await progress.finish(reply.text)
        except TelegramError:
            # The answer is stored; say so rather than apologise as if nothing happened.
            log.exception("Telegram would not take the answer in chat %s", chat.id)
            with contextlib.suppress(TelegramError):
                await context.bot.send_message(chat.id, _(UNDELIVERED))
            return
    for notice in reply.notices:
        await context.bot.send_message(chat.id, notice)
