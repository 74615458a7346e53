"""The chat's language: set before any handler runs, chosen with /language, told to Telegram."""

from __future__ import annotations

import asyncio
import logging

from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import i18n
from bot.errors import UserError
from bot.i18n import _
from bot.telegram.runtime import runtime

log = logging.getLogger(__name__)

# What Telegram shows before the first message (the "What can this bot do?" box) and on the
# bot's profile.
DESCRIPTION = i18n.N_(
    "Send me the photos, videos and voice notes of a trip, and I will write its story: "
    "a photo tour you can read here or publish as a web page. Then ask me anything about it."
)
SHORT_DESCRIPTION = i18n.N_("I turn the photos and videos of a trip into its story.")


async def speak_chat_language(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A PTB callback for group -1: everything this update does speaks its chat's language."""
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    user = update.effective_user
    language = await runtime(context).services.languages.for_chat(
        update.effective_chat.id, user.language_code if user else None
    )
    i18n.use(language.speaks)
    i18n.write_in(language.writes)


async def language_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/language [code]: speak another language in this chat; buttons when none is named."""
    chat, message = update.effective_chat, update.effective_message
    if chat is None or message is None:
        return
    wanted = " ".join(context.args or []).strip()
    if not wanted:
        await message.reply_text(_("Which language shall I speak here?"), reply_markup=_choices())
        return
    try:
        language = await runtime(context).services.languages.choose(chat.id, wanted)
    except UserError as e:
        await message.reply_text(str(e))
        return
    i18n.use(language)
    i18n.write_in(language)
    await message.reply_text(_chosen())


async def on_language_button(update: Update, context: ContextTypes.DEFAULT_TYPE, code: str) -> None:
    """A /language button was tapped."""
    query, chat = update.callback_query, update.effective_chat
    if query is None or chat is None:
        return
    language = await runtime(context).services.languages.choose(chat.id, code)
    i18n.use(language)
    i18n.write_in(language)
    await query.answer()
    await query.edit_message_text(_chosen())


def _chosen() -> str:
    # TRANSLATORS: %(language)s is this language's own name, e.g. "Deutsch".
    return _("Done: I will speak %(language)s in this chat.") % {
        "language": i18n.LANGUAGES[i18n.current()]
    }


def _choices() -> InlineKeyboardMarkup:
    buttons = [
        InlineKeyboardButton(name, callback_data=f"language:{code}")
        for code, name in i18n.LANGUAGES.items()
    ]
    return InlineKeyboardMarkup([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


def telegram_code(language: str) -> str:
    """The two-letter code Telegram keys per-language settings by ("pt_BR" -> "pt")."""
    return i18n.negotiate_base(language)


async def register(bot: Bot, commands: list[tuple[str, str]]) -> None:
    """Tell Telegram the command menu and descriptions in every language (English by default).

    All at once and best effort: a refused one is logged, the bot works without it."""

    async def one(language: str) -> None:
        code = None if language == i18n.DEFAULT else telegram_code(language)
        with i18n.using(language):
            menu = [BotCommand(name, _(description)) for name, description in commands]
            description, short = _(DESCRIPTION), _(SHORT_DESCRIPTION)
        try:
            await bot.set_my_commands(menu, language_code=code)
            await bot.set_my_description(description, language_code=code)
            await bot.set_my_short_description(short, language_code=code)
        except TelegramError as e:
            log.warning("Could not register the %s command menu with Telegram: %s", language, e)

    await asyncio.gather(*(one(language) for language in i18n.LANGUAGES))
