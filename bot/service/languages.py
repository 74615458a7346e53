"""Which language a chat is spoken to in: its own choice (/language), else its writer's."""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import UserError
from bot.i18n import LANGUAGES, _, negotiate, negotiate_base
from storage import Storage


@dataclass(frozen=True)
class ChatLanguage:
    """How a chat is spoken to: the bot's sentences, and what the model writes its stories and
    answers in (the same language, but the model writes languages the bot has no catalog for)."""

    speaks: str  # a catalog of LANGUAGES
    writes: str | None  # a language code; None when the chat chose none and its writer has none


class LanguageService:
    """A chat's language, kept in the database."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def for_chat(self, chat_id: int, telegram_code: str | None) -> ChatLanguage:
        """The chat's chosen language, else its writer's Telegram language."""
        chosen = await self.storage.albums.language(chat_id)
        if chosen in LANGUAGES:
            return ChatLanguage(speaks=chosen, writes=chosen)
        return ChatLanguage(speaks=negotiate(telegram_code), writes=telegram_code)

    async def choose(self, chat_id: int, wanted: str) -> str:
        """Make the chat speak a language ("de", "pt-br", "Deutsch"); the catalog chosen."""
        language = find_language(wanted)
        if language is None:
            known = ", ".join(code for code in LANGUAGES)
            raise UserError(
                _("I don't speak “%(wanted)s” yet. I know: %(known)s.")
                % {"wanted": wanted, "known": known}
            )
        await self.storage.albums.set_language(chat_id, language)
        return language


def find_language(wanted: str) -> str | None:
    """A catalog by its code ("pt-br", "DE") or its own name ("Deutsch"), or None."""
    text = wanted.strip()
    for code, name in LANGUAGES.items():
        if text.casefold() in {code.casefold(), name.casefold()}:
            return code
    if negotiate_base(text) == "en":
        return "en"
    language = negotiate(text)
    return None if language == "en" else language  # negotiate() falls back to English
