"""Posting an illustrated story: one rich message where Telegram has them, else each
section's text with its photos and videos, in order."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    InputMediaPhoto,
    InputMediaVideo,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError

from bot.i18n import _, is_rtl
from bot.service.media_files import MediaFiles
from bot.service.reexports import Item
from bot.service.story import Section, Story, quote_voice_notes
from bot.service.words import shown_label
from bot.telegram.rendering import html_visible_length, markdown_to_html, to_plain
from bot.telegram.replies import send_markdown
from bot.telegram.rich import JSON, RichMessages, RichUnavailable
from bot.telegram.rich_story import story_parts
from bot.telegram.splitting import TELEGRAM_CAPTION_LIMIT

log = logging.getLogger(__name__)

MEDIA_GROUP_LIMIT = 10
BOT_UPLOAD_LIMIT = 50 * 1024 * 1024  # the cloud Bot API's limit for files a bot sends
Media = InputMediaPhoto | InputMediaVideo


def story_buttons() -> InlineKeyboardMarkup:
    """What can follow a story: the landmarks, the same story as text, the export."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(_("🗺 Places I missed"), callback_data="landmarks"),
                InlineKeyboardButton(_("📝 Text only"), callback_data="story_text"),
            ],
            [InlineKeyboardButton(_("📄 Export as a web page"), callback_data="export")],
        ]
    )


async def post_story(
    bot: Bot,
    chat_id: int,
    story: Story,
    items: Sequence[Item],
    files: MediaFiles,
    *,
    album_name: str,
    reply_to: int | None,
    placeholder_id: int | None,
    rich: RichMessages | None = None,
    language: str | None = None,
) -> None:
    """Post the story: as one rich message where Telegram has them (more for a long album),
    else the classic way (the title, each section's text with its media, the closing).

    Voice notes are not posted again: a section quotes those it drew on under its text."""
    closing = story.closing or _("✨ That was the story of “%(album)s”.") % {"album": album_name}
    resume = 0
    if rich is not None and rich.available:
        rest = await _post_rich(
            bot, chat_id, story, items, files, rich, closing, reply_to, placeholder_id, language
        )
        if rest is None:
            return
        resume = rest
    story = quote_voice_notes(story, items)
    if resume == 0:
        opening = f"# {story.title}" + (f"\n\n{story.intro}" if story.intro else "")
        await send_markdown(
            bot, chat_id, opening, reply_to=reply_to, edit_message_id=placeholder_id
        )
    by_number = {item.position: item for item in items}
    for section in story.sections[resume:]:
        media = [by_number[n] for n in section.media if n in by_number]
        await _post_section(bot, chat_id, section, media, files)
    await send_markdown(bot, chat_id, closing, reply_markup=story_buttons())


async def _post_rich(
    bot: Bot,
    chat_id: int,
    story: Story,
    items: Sequence[Item],
    files: MediaFiles,
    rich: RichMessages,
    closing: str,
    reply_to: int | None,
    placeholder_id: int | None,
    language: str | None,
) -> int | None:
    """Post the story as rich messages; None when all went, else the first section still to
    post the classic way (0: nothing went, the title included)."""
    cited = {n for section in story.sections for n in section.media}
    pictures = [i for i in items if i.kind != "audio" and i.position in cited]
    media, to_upload = _rich_media(pictures)
    parts = story_parts(story, items, media, closing)
    rtl = is_rtl(language)
    for number, part in enumerate(parts):
        message = part.message(rtl)
        text = json.dumps(message)
        named = {k: item for k, item in to_upload.items() if f'"attach://{k}"' in text}
        markup = story_buttons() if number == len(parts) - 1 else None
        edit_id = placeholder_id if number == 0 else None
        first_reply = reply_to if number == 0 else None
        if not await _post_part(
            bot, chat_id, rich, message, named, files, markup, first_reply, edit_id
        ):
            if number == 0:
                return 0
            return min(part.sections, default=len(story.sections))
    return None


def _rich_media(items: Sequence[Item]) -> tuple[dict[int, dict[str, str]], dict[str, Item]]:
    """Each picture as InputMedia: by Telegram's file_id where it is one of ours, else an
    attach:// upload of our own copy (photos sent as files, HEIC), named here and read only
    for the message that shows it; too big a video is left out."""
    media: dict[int, dict[str, str]] = {}
    to_upload: dict[str, Item] = {}
    for item in items:
        origin = item.media.origin
        kind = "photo" if item.kind == "photo" else "video"
        if origin.telegram_type == kind and origin.file_id:
            media[item.position] = {"type": kind, "media": origin.file_id}
            continue
        if kind == "video" and item.media.source.size > BOT_UPLOAD_LIMIT:
            continue
        key = f"{kind}{item.position}"
        to_upload[key] = item
        media[item.position] = {"type": kind, "media": f"attach://{key}"}
    return media, to_upload


async def _post_part(
    bot: Bot,
    chat_id: int,
    rich: RichMessages,
    message: JSON,
    named: Mapping[str, Item],
    files: MediaFiles,
    markup: InlineKeyboardMarkup | None,
    reply_to: int | None,
    edit_id: int | None,
) -> bool:
    """One rich message with the files it names, read here and let go on return (a story's
    uploads are never all in memory at once); False where it could not go."""
    uploads = await _uploads(named, files)
    if uploads is None:
        return False
    if edit_id is not None:
        try:  # the group's "writing..." placeholder becomes the story
            await rich.edit(bot, chat_id, edit_id, message, reply_markup=markup, uploads=uploads)
            return True
        except RichUnavailable:
            if not rich.available:
                return False
    try:
        await rich.send(
            bot, chat_id, message, reply_to=reply_to, reply_markup=markup, uploads=uploads
        )
    except RichUnavailable:
        return False
    return True


async def _uploads(named: Mapping[str, Item], files: MediaFiles) -> dict[str, InputFile] | None:
    """Our own copies of the items a message shows by attach://<name>; None if one is gone."""
    uploads: dict[str, InputFile] = {}
    for key, item in named.items():
        if item.kind == "photo":
            data: bytes | None = await files.web_photo(item)
            name = f"{item.label}.jpg"
        else:
            data = await files.video(item, BOT_UPLOAD_LIMIT)
            name = f"{item.label}.mp4"
        if data is None:  # its file went since the album recorded it: post the classic way
            log.warning("A story's video is missing from the media store")
            return None
        uploads[key] = InputFile(data, filename=name, attach=False)
    return uploads


async def _post_section(
    bot: Bot, chat_id: int, section: Section, media: list[Item], files: MediaFiles
) -> None:
    text = f"## {section.heading}\n\n{section.text}" if section.heading else section.text
    html = markdown_to_html(text) if text.strip() else ""
    # Short sections ride on their photos as the album's caption, the way people post.
    caption = html if media and 0 < html_visible_length(html) <= TELEGRAM_CAPTION_LIMIT else None
    if caption is None and text.strip():
        await send_markdown(bot, chat_id, text)
    for index, group in enumerate(_groups(media)):
        try:
            await _post_media(bot, chat_id, group, files, caption if index == 0 else None, text)
        except TelegramError as e:
            # The words matter more than the pictures: say which could not be shown, go on.
            log.warning("Could not post media of a section: %s", type(e).__name__)
            if index == 0 and caption is not None:
                await send_markdown(bot, chat_id, text)
            labels = ", ".join(shown_label(item.label) for item in group)
            await bot.send_message(
                chat_id, _("(%(labels)s: could not be posted here.)") % {"labels": labels}
            )


def _groups(media: list[Item]) -> list[list[Item]]:
    """Media groups of at most ten, split evenly so no group is a lone straggler."""
    if not media:
        return []
    count = -(-len(media) // MEDIA_GROUP_LIMIT)
    size = len(media)
    return [media[i * size // count : (i + 1) * size // count] for i in range(count)]


async def _post_media(
    bot: Bot,
    chat_id: int,
    items: list[Item],
    files: MediaFiles,
    caption: str | None,
    source: str,
) -> None:
    inputs = await _inputs(items, files, caption)
    if not inputs:
        return
    try:
        await _send(bot, chat_id, inputs)
    except BadRequest as e:
        if caption is not None and "parse" in e.message.lower():
            inputs[0] = _with_caption(inputs[0], to_plain(source)[:TELEGRAM_CAPTION_LIMIT], None)
            await _send(bot, chat_id, inputs)
            return
        # A stale or foreign file_id: upload our own copies instead.
        log.info("Re-posting media by upload after: %s", e.message)
        await _send(bot, chat_id, await _inputs(items, files, caption, upload=True))


async def _inputs(
    items: list[Item], files: MediaFiles, caption: str | None, *, upload: bool = False
) -> list[Media]:
    found: list[Media] = []
    for item in items:
        media = await _input(item, files, None if found else caption, upload=upload)
        if media is not None:
            found.append(media)
    return found


async def _send(bot: Bot, chat_id: int, inputs: list[Media]) -> None:
    if not inputs:
        return
    if len(inputs) == 1:
        single = inputs[0]
        if isinstance(single, InputMediaPhoto):
            await bot.send_photo(
                chat_id, single.media, caption=single.caption, parse_mode=single.parse_mode
            )
        else:
            await bot.send_video(
                chat_id, single.media, caption=single.caption, parse_mode=single.parse_mode
            )
        return
    await bot.send_media_group(chat_id, inputs)


async def _input(
    item: Item, files: MediaFiles, caption: str | None, *, upload: bool = False
) -> Media | None:
    """How to post an item: by Telegram's file_id where it is one of ours, else our own copy."""
    parse = ParseMode.HTML if caption else None
    origin = item.media.origin
    if item.kind == "photo":
        if origin.telegram_type == "photo" and origin.file_id and not upload:
            return InputMediaPhoto(origin.file_id, caption=caption, parse_mode=parse)
        picture = await files.web_photo(item)
        return InputMediaPhoto(
            picture, caption=caption, parse_mode=parse, filename=f"{item.label}.jpg"
        )
    if origin.telegram_type == "video" and origin.file_id and not upload:
        return InputMediaVideo(origin.file_id, caption=caption, parse_mode=parse)
    data = await files.video(item, BOT_UPLOAD_LIMIT)  # Telegram takes at most 50 MB from bots
    if data is None:
        return None
    return InputMediaVideo(data, caption=caption, parse_mode=parse, filename=f"{item.label}.mp4")


def _with_caption(media: Media, caption: str, parse_mode: str | None) -> Media:
    if isinstance(media, InputMediaPhoto):
        return InputMediaPhoto(media.media, caption=caption, parse_mode=parse_mode)
    return InputMediaVideo(media.media, caption=caption, parse_mode=parse_mode)
