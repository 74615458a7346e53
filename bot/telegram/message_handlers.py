"""Handlers for what travellers send: photos, videos, voice notes, files, text and locations."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
from telegram import Bot, Message, Update
from telegram.constants import ChatType, MessageEntityType
from telegram.error import BadRequest, NetworkError
from telegram.ext import ContextTypes

from bot.errors import AlbumFull, MediaRejected, UserError
from bot.i18n import N_, _
from bot.service.albums import MEDIA_TYPES, IncomingMedia
from bot.service.downloads import DownloadInterrupted, Fetch, retrying
from bot.service.messages import TextIntent, for_the_bot, text_intent
from bot.service.reexports import Origin
from bot.telegram.durable import chat_lock, received_at
from bot.telegram.media_types import carries_media, media_type
from bot.telegram.runtime import runtime
from bot.telegram.story_handlers import answer_question

DOWNLOAD_CHUNK = 64 * 1024


async def on_media(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Store a photo, video, voice note or file in the chat's album; acknowledged per burst."""
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None:
        return
    incoming = incoming_media(message)
    if incoming is None:
        return
    if incoming.kind == "audio" and not _spoken_to_bot(message, chat.type, context.bot):
        return  # in a group a voice note is talk, like a text: only one for the bot is taken
    rt = runtime(context)
    try:
        # Numbered, counted and its acknowledgement's job deferred in one transaction.
        await rt.services.albums.receive(
            incoming,
            acknowledge=rt.acks.job(chat.id),
            received_at=received_at(),
            updates_lock=chat_lock(chat.id),
        )
    except UserError as refused:
        if isinstance(refused, AlbumFull) and not await rt.services.albums.first_time(
            chat.id, "album_full"
        ):
            return  # an album of ten sent to a full album gets one answer, not ten
        # A file's refusal from bot/media is an English constant: translated here, where it is
        # said (a refusal made in the chat's language is left as it is).
        await message.reply_text(_(str(refused)), do_quote=True)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Plain text: context for the album while collecting, otherwise a question about it."""
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None or not message.text:
        return
    rt = runtime(context)
    text, addressed = _strip_mention(message, context.bot.username)
    replied = message.reply_to_message
    intent = await text_intent(
        text,
        private=chat.type == ChatType.PRIVATE,
        addressed=addressed,
        replied_to_bot=_replies_to_bot(message, context.bot.id),
        replied_to_media=replied is not None and carries_media(replied),
        in_conversation=lambda: rt.services.conversation.has_conversation(chat.id),
    )
    if intent is TextIntent.IGNORE:
        return
    if intent is TextIntent.QUESTION:
        await answer_question(update, context, text, replied.message_id if replied else None)
        return
    user = update.effective_user
    await rt.services.albums.add_note(
        chat.id, text, user.id if user else None, user.full_name if user else None
    )
    await rt.acks.added(chat.id)


async def on_location(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A shared location or place joins the album's context as a note, named offline."""
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None or message.location is None:
        return
    if chat.type != ChatType.PRIVATE and not _replies_to_bot(message, context.bot.id):
        return  # in a group, "meet here" is for the others: only a reply to the bot is a note
    location, venue, user = message.location, message.venue, update.effective_user
    rt = runtime(context)
    await rt.services.albums.add_location(
        chat.id,
        location.latitude,
        location.longitude,
        title=venue.title if venue is not None else None,
        address=venue.address if venue is not None else None,
        sender_id=user.id if user else None,
        sender_name=user.full_name if user else None,
    )
    await rt.acks.added(chat.id)


def _replies_to_bot(message: Message, bot_id: int) -> bool:
    """Whether the message answers one of the bot's own messages."""
    replied = message.reply_to_message
    return replied is not None and replied.from_user is not None and replied.from_user.id == bot_id


# What the bot cannot use, with what to do instead (said in private chats only: in a group
# these are members talking to each other).
UNUSABLE = {
    "sticker": N_("Stickers cannot go into the album."),
    "contact": N_("Contacts cannot go into the album."),
    "poll": N_("Polls cannot go into the album."),
    "dice": N_("Dice cannot go into the album."),
    "story": N_("Telegram stories cannot go into the album: send the photo or video itself."),
}
UNUSABLE_ADVICE = N_(
    "Send photos and videos, and tell me about the trip in a text or voice message."
)


async def on_unusable(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Something the album cannot hold: say so and what works, in private chats."""
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None or chat.type != ChatType.PRIVATE:
        return
    what = next((UNUSABLE[k] for k in UNUSABLE if getattr(message, k, None)), None)
    if what is not None:
        await message.reply_text(f"{_(what)} {_(UNUSABLE_ADVICE)}", do_quote=True)


async def on_caption_edit(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A caption edited (or removed) after sending: the stored item takes the new one."""
    message = update.edited_message
    if message is None:
        return
    await runtime(context).services.albums.update_caption(
        message.chat.id, message.message_id, message.caption or ""
    )


def incoming_media(message: Message) -> IncomingMedia | None:
    """What a media message carries, in the service's terms."""
    telegram_type = media_type(message)
    if telegram_type is None:
        return None
    carried = getattr(message, telegram_type)
    # A photo comes in several sizes, smallest first: the last is the largest.
    file = carried[-1] if telegram_type == "photo" else carried
    kind = MEDIA_TYPES[telegram_type].kind
    mime = getattr(file, "mime_type", None) or MEDIA_TYPES[telegram_type].mime_type
    name = getattr(file, "file_name", None)
    sender = message.from_user
    return IncomingMedia(
        chat_id=message.chat.id,
        kind=kind,
        file_size=file.file_size,
        origin=Origin(
            file_id=file.file_id,
            file_unique_id=file.file_unique_id,
            file_name=name,
            mime_type=mime,
            caption=message.caption,
            chat_message_id=message.message_id,
            media_group_id=message.media_group_id,
            sender_id=sender.id if sender else None,
            sender_name=sender.full_name if sender else None,
            message_date=message.date,
            telegram_type=telegram_type,
        ),
    )


def downloader(bot: Bot, http: httpx.AsyncClient, file_id: str) -> Fetch:
    """A function that streams one Telegram file to a path, retrying broken connections."""

    async def attempt(dest: Path) -> None:
        """One try: Telegram's refusals become MediaRejected, broken connections retryable."""
        try:
            telegram_file = await bot.get_file(file_id)
            await _save(http, telegram_file.file_path, dest)
        except BadRequest as e:  # before NetworkError: BadRequest is one, but final
            if "too big" in e.message.lower():
                raise MediaRejected(
                    _(
                        "Telegram says this file is too big for bots to download. "
                        "Please send a smaller or shorter version."
                    ),
                    reason="too_big",
                ) from e
            raise MediaRejected(
                _("Telegram would not hand this file over. Please send it again."),
                reason="download_failed",
            ) from e
        except (NetworkError, httpx.HTTPError) as e:
            # Only the kind of failure goes on: the text of an httpx error quotes the file URL,
            # which holds the bot token. `from None` keeps it out of any traceback too.
            raise DownloadInterrupted(type(e).__name__) from None

    return retrying(attempt, source="Telegram")


async def _save(http: httpx.AsyncClient, source: str | None, dest: Path) -> None:
    """Copy the file to `dest` in pieces: a 20 MB video never sits in memory whole."""
    if not source:
        raise OSError("Telegram gave no file path")
    if source.startswith("/"):
        # A self-hosted Bot API server in --local mode hands out paths on its own disk.
        await asyncio.to_thread(shutil.copyfile, source, dest)
        return
    async with http.stream("GET", source) as response:
        response.raise_for_status()
        with dest.open("wb") as out:
            async for chunk in response.aiter_bytes(DOWNLOAD_CHUNK):
                out.write(chunk)


def _spoken_to_bot(message: Message, chat_type: str, bot: Bot) -> bool:
    """Whether a voice note or audio file is for the bot, by the rule for texts: always in a
    private chat; in a group, a reply to the bot or to an album's photo, or a caption that
    mentions the bot."""
    replied = message.reply_to_message
    return for_the_bot(
        private=chat_type == ChatType.PRIVATE,
        addressed=_caption_mentions(message, bot.username),
        replied_to_bot=_replies_to_bot(message, bot.id),
        replied_to_media=replied is not None and carries_media(replied),
    )


def _caption_mentions(message: Message, username: str | None) -> bool:
    """Whether the caption @mentions the bot."""
    if not username:
        return False
    mentions = message.parse_caption_entities([MessageEntityType.MENTION]).values()
    return any(value.lower() == f"@{username.lower()}" for value in mentions)


def _strip_mention(message: Message, username: str | None) -> tuple[str, bool]:
    """The text without a leading/trailing @bot mention, and whether the bot was mentioned."""
    text = message.text or ""
    if not username:
        return text, False
    mentioned = False
    for entity, value in message.parse_entities([MessageEntityType.MENTION]).items():
        del entity
        if value.lower() == f"@{username.lower()}":
            mentioned = True
            text = text.replace(value, " ")
    return " ".join(text.split()) if mentioned else text, mentioned
