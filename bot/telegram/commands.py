"""Command and button handlers: albums, notes, taking back, help."""

from __future__ import annotations

import html
import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot.errors import UserError
from bot.i18n import N_, _, ngettext
from bot.service.albums import Undone
from bot.service.reexports import AlbumSummary
from bot.service.words import counted
from bot.telegram.account import on_forget_button
from bot.telegram.language import on_language_button
from bot.telegram.runtime import runtime
from bot.telegram.story_handlers import (
    compare_trip,
    export_story,
    story_as_text,
    suggest_landmarks,
    write_story,
)

log = logging.getLogger(__name__)

# (command, description) as shown in Telegram's menu; registered at start-up.
COMMANDS = [
    ("story", N_("Write the story of the current album")),
    ("landmarks", N_("Well-known places nearby you did not visit")),
    ("sametrip", N_("Was the latest video shot on the same trip?")),
    ("export", N_("The story as a web page and Markdown")),
    ("new", N_("Start a new album: /new Lisbon 2026")),
    ("albums", N_("List your albums and switch between them")),
    ("note", N_("Tell me something about the trip")),
    ("undo", N_("Take back the last batch or the last question")),
    ("reset", N_("Clear the conversation, keep the photos")),
    ("rename", N_("Rename the current album")),
    ("usage", N_("Your Gemini usage and its cost")),
    ("forget", N_("Delete everything of this chat")),
    ("language", N_("Speak another language in this chat")),
    ("help", N_("What I can do")),
]


def help_text() -> str:
    """What the bot does and its commands, in the current language (HTML)."""
    return "\n".join(
        [
            _("<b>Send me the photos and videos of a trip</b>, and I will write its story."),
            "",
            _(
                "• Send photos as they are, or <i>as files</i> to keep when and where they were "
                "taken (HEIC from iPhones is fine). Albums of up to 10 at once are welcome."
            ),
            _(
                "• Tell me about the trip in a message (“our first week in Lisbon”), in captions, "
                "or in a voice note (“this was the morning we missed the ferry”): I listen to "
                "voice notes and audio files (MP3, M4A, OGG) too. A shared location or place is "
                "noted as well."
            ),
            _(
                "• /story writes a blog-post photo tour. Add a wish: "
                "<code>/story shorter, in Portuguese</code>."
            ),
            _("• /landmarks lists the well-known places nearby that your photos do not show."),
            _(
                "• Then just ask: “where was photo 3 taken?” Reply to a photo or video to ask "
                "about that one."
            ),
            _(
                "• /sametrip checks whether the latest video was shot on the same trip as the "
                "photos."
            ),
            _("• /export sends the story as a web page and as Markdown, ready to publish."),
            "",
            _("<b>Albums</b>"),
            _(
                "/new <i>name</i> starts a new album (the old ones are kept) · /albums switches · "
                "/rename <i>name</i>"
            ),
            _(
                "/undo takes back the last batch or question · "
                "/reset clears the conversation, keeps the photos"
            ),
            _("/usage shows your Gemini usage · /forget deletes everything of this chat"),
            _("/language speaks another language in this chat"),
        ]
    )


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Welcome the traveller and say what to send."""
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None:
        return
    summary = await runtime(context).services.albums.current(chat.id)
    user = update.effective_user
    hello = (
        _("Hi %(name)s! 👋") % {"name": html.escape(user.first_name)} if user else _("Hi there! 👋")
    )
    album = _("Your current album: %(album)s.") % {"album": _describe(summary)}
    await message.reply_html(f"{hello}\n\n{help_text()}\n\n{album}")


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """List what the bot does and its commands."""
    if update.effective_message is not None:
        await update.effective_message.reply_html(help_text())


async def story(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/story [wish]: write the photo tour."""
    await write_story(update, context, " ".join(context.args or []) or None)


async def landmarks(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/landmarks: places nearby the album does not show."""
    await suggest_landmarks(update, context)


async def same_trip(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/sametrip: was the latest video (or the one replied to) shot on the same trip?"""
    await compare_trip(update, context)


async def export(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/export: the latest story as a web page and a Markdown zip."""
    await export_story(update, context)


async def new_album(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/new [name]: start a fresh album."""
    chat, message = update.effective_chat, update.effective_message
    if chat is None or message is None:
        return
    rt = runtime(context)
    await rt.acks.close(chat.id)
    album = await rt.services.albums.new_album(chat.id, " ".join(context.args or []))
    await message.reply_html(
        _(
            "📁 New album <b>%(name)s</b>. Send its photos and videos; "
            "your other albums are kept (/albums)."
        )
        % {"name": html.escape(album.name)}
    )


async def albums(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/albums: the chat's albums, with buttons to switch."""
    chat, message = update.effective_chat, update.effective_message
    if chat is None or message is None:
        return
    rt = runtime(context)
    await rt.acks.close(chat.id)
    summaries, current = await rt.services.albums.list_albums(chat.id)
    text, markup = _album_list(summaries, current)
    await message.reply_html(text, reply_markup=markup)


async def rename(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/rename name: rename the current album."""
    chat, message = update.effective_chat, update.effective_message
    if chat is None or message is None:
        return
    try:
        album = await runtime(context).services.albums.rename(chat.id, " ".join(context.args or []))
    except UserError as e:
        await message.reply_text(str(e))
        return
    await message.reply_html(
        _("✏️ The album is now called <b>%(name)s</b>.") % {"name": html.escape(album.name)}
    )


async def note(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/note text: add context about the trip at any time."""
    chat, message = update.effective_chat, update.effective_message
    if chat is None or message is None:
        return
    text = " ".join(context.args or []).strip()
    if not text:
        await message.reply_text(
            _("Write the note after the command, e.g. /note We travelled by train.")
        )
        return
    rt = runtime(context)
    user = update.effective_user
    await rt.services.albums.add_note(
        chat.id, text, user.id if user else None, user.full_name if user else None
    )
    await rt.acks.added(chat.id)


async def undo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/undo: take back the last batch of media/notes or the last question and answer."""
    chat, message = update.effective_chat, update.effective_message
    if chat is None or message is None:
        return
    rt = runtime(context)
    await rt.acks.close(chat.id)
    try:
        undone = await rt.services.albums.undo(chat.id)
    except UserError as e:
        await message.reply_text(str(e))
        return
    await message.reply_text(_undone_text(undone))


async def reset(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/reset: forget the conversation, keep the media."""
    chat, message = update.effective_chat, update.effective_message
    if chat is None or message is None:
        return
    rt = runtime(context)
    album, cleared = await rt.services.conversation.reset(chat.id)
    if not cleared:
        await message.reply_text(
            _("There is no conversation to clear in “%(album)s”.") % {"album": album.name}
        )
        return
    await message.reply_text(
        ngettext(
            "🧹 Cleared the conversation about “%(album)s” (%(count)d exchange). The photos "
            "and notes are still there: /story starts afresh.",
            "🧹 Cleared the conversation about “%(album)s” (%(count)d exchanges). The photos "
            "and notes are still there: /story starts afresh.",
            cleared,
        )
        % {"album": album.name, "count": cleared}
    )


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a command the bot does not know."""
    if update.effective_message is not None:
        await update.effective_message.reply_text(
            _("I don't know that command. /help lists what I can do.")
        )


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Inline buttons: switch album, undo a batch, write the story, list landmarks."""
    query = update.callback_query
    chat = update.effective_chat
    if query is None or chat is None:
        return
    data = query.data or ""
    rt = runtime(context)
    action, _sep, arg = data.partition(":")
    try:
        if action == "album" and arg.isdigit():
            summary = await rt.services.albums.switch_album(chat.id, int(arg))
            await query.answer(_("Now adding to “%(album)s”.") % {"album": summary.album.name})
            summaries, current = await rt.services.albums.list_albums(chat.id)
            text, markup = _album_list(summaries, current)
            await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)
        elif action == "undo" and arg.isdigit():
            # The service ends the batch's burst: its acknowledgement becomes this answer.
            undone = await rt.services.albums.undo_batch(chat.id, int(arg))
            await query.answer(_("Taken back."))
            await query.edit_message_text(_undone_text(undone))
        elif action == "story":
            await query.answer()
            await write_story(update, context, None)
        elif action == "landmarks":
            await query.answer()
            await suggest_landmarks(update, context)
        elif action == "forget":
            await on_forget_button(update, context, arg)
        elif action == "language":
            await on_language_button(update, context, arg)
        elif action == "export":
            await query.answer()
            await export_story(update, context)
        elif action == "story_text":
            await query.answer()
            await story_as_text(update, context)
        else:
            await query.answer(_("This button no longer works."))
    except UserError as e:
        await query.answer(str(e), show_alert=True)


def _describe(summary: AlbumSummary) -> str:
    bits = [f"<b>{html.escape(summary.album.name)}</b>", counted(summary.photos, "photo")]
    if summary.videos:
        bits.append(counted(summary.videos, "video"))
    if summary.voice_notes:
        bits.append(counted(summary.voice_notes, "audio"))
    if summary.notes:
        bits.append(counted(summary.notes, "note"))
    return ", ".join(bits)


def _album_list(summaries: list[AlbumSummary], current: int) -> tuple[str, InlineKeyboardMarkup]:
    lines = [_("<b>Your albums</b> (tap one to add to it):")]
    buttons = []
    for summary in summaries[:20]:
        mark = "✅ " if summary.album.id == current else ""
        lines.append(f"{mark}{_describe(summary)}")
        label = f"{mark}{summary.album.name} · {summary.items}"
        buttons.append(
            [InlineKeyboardButton(label[:60], callback_data=f"album:{summary.album.id}")]
        )
    if len(summaries) > 20:
        older = len(summaries) - 20
        lines.append(
            ngettext("…and %(count)d older one.", "…and %(count)d older ones.", older)
            % {"count": older}
        )
    return "\n".join(lines), InlineKeyboardMarkup(buttons)


def _undone_text(undone: Undone) -> str:
    if undone.question is not None:
        return _("↩️ Took back the last exchange (%(question)s). Ask again whenever you like.") % {
            "question": _clip(undone.question)
        }
    parts = []
    for kind in ("photo", "video", "audio"):
        if n := undone.kinds.get(kind, 0):
            parts.append(counted(n, kind))
    if undone.notes:
        parts.append(counted(undone.notes, "note"))
    return _("↩️ Took back %(what)s from “%(album)s”.") % {
        "what": ", ".join(parts),
        "album": undone.album_name,
    }


def _clip(text: str, size: int = 60) -> str:
    flat = " ".join(text.split())
    return f"“{flat[: size - 1]}…”" if len(flat) > size else f"“{flat}”"
