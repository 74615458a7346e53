"""The bot's words in the traveller's language: gettext catalogs, one language per task.

Strings are written in English in the code and wrapped in `_()` / `ngettext()`; the catalogs in
bot/locales/<language>/LC_MESSAGES/photostory.po translate them (Babel extracts and compiles
them, see README). The language in force is a context variable: a Telegram update sets its
chat's language before any handler runs, and everything that update does (replies, errors
raised deep in the service, background tasks it starts) speaks it. English is the fallback.

Catalogs load lazily, once per language. The install compiles each .po to a .mo; where a .mo is
missing or older than its .po (a fresh clone, an edited translation) it is compiled in memory,
the only place Babel is imported at run time.
"""

from __future__ import annotations

import contextlib
import functools
import gettext
import io
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import date
from pathlib import Path

log = logging.getLogger(__name__)

DOMAIN = "photostory"
LOCALES = Path(__file__).resolve().parent / "locales"
DEFAULT = "en"

# Each catalog's code, with its name in its own language (the /language buttons).
LANGUAGES: dict[str, str] = {
    "en": "English",
    "de": "Deutsch",
    "ru": "Русский",
    "ar": "العربية",
    "es": "Español",
    "pt_BR": "Português (Brasil)",
    "fr": "Français",
    "it": "Italiano",
    "uk": "Українська",
    "tr": "Türkçe",
    "id": "Bahasa Indonesia",
}
_RIGHT_TO_LEFT = {"ar", "fa", "he", "ur", "ps", "sd", "yi", "dv", "ckb"}

_current: ContextVar[str] = ContextVar("language", default=DEFAULT)
# What the model writes in (stories, answers): a language code, any language with or without a
# catalog; None when unknown. Set with the language in force, per update.
_writes: ContextVar[str | None] = ContextVar("writes", default=None)


def negotiate(code: str | None) -> str:
    """The catalog for a Telegram or POSIX language code ("pt-br", "en-US", "ru_RU.UTF-8")."""
    if not code:
        return DEFAULT
    tag = code.split(".")[0].split("@")[0].replace("-", "_")
    language, _sep, region = tag.partition("_")
    language = language.lower()
    exact = f"{language}_{region.upper()}" if region else language
    if exact in LANGUAGES:
        return exact
    if language in LANGUAGES:
        return language
    # A language we have in one region only ("pt" -> "pt_BR").
    regional = [known for known in LANGUAGES if known.split("_")[0] == language]
    return regional[0] if regional else DEFAULT


def is_rtl(language: str | None) -> bool:
    """Whether a language is written right to left (Arabic, Persian, Hebrew...)."""
    return negotiate_base(language) in _RIGHT_TO_LEFT if language else False


def negotiate_base(code: str) -> str:
    """The bare language of a code: "pt_BR" -> "pt", "ar-EG" -> "ar"."""
    return code.replace("-", "_").split("_")[0].lower()


def current() -> str:
    """The language in force in this task."""
    return _current.get()


def use(language: str) -> None:
    """Speak this language for the rest of the current task (and the tasks it starts)."""
    _current.set(language if language in LANGUAGES else negotiate(language))


def writes() -> str | None:
    """The language the model writes in for this task ("fa", "pt_BR"), None when unknown."""
    return _writes.get()


def write_in(language: str | None) -> None:
    """Have the model write in this language for the rest of the current task."""
    _writes.set(language)


@contextlib.contextmanager
def using(language: str) -> Iterator[None]:
    """Speak this language inside the block only."""
    token = _current.set(language if language in LANGUAGES else negotiate(language))
    try:
        yield
    finally:
        _current.reset(token)


def _(message: str) -> str:
    """The message in the current language."""
    return catalog(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or (one of the language's) plural forms for n, in the current language."""
    return catalog(_current.get()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a string for extraction without translating it yet (translated where it is shown)."""
    return message


@functools.cache
def catalog(language: str) -> gettext.NullTranslations:
    """A language's translations, loaded on first use; English (the source) needs none."""
    if language == DEFAULT or language not in LANGUAGES:
        return gettext.NullTranslations()
    po = LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    mo = po.with_suffix(".mo")
    try:
        if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
            with mo.open("rb") as f:
                return gettext.GNUTranslations(f)
        return gettext.GNUTranslations(io.BytesIO(compile_po(po)))
    except (OSError, ValueError) as e:
        log.error("The %s catalog could not be loaded (%s); speaking English", language, e)
        return gettext.NullTranslations()


def compile_po(po: Path) -> bytes:
    """A .po file compiled to .mo bytes (fuzzy entries left out, as msgfmt does)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as f:
        messages = read_po(f, locale=po.parent.parent.name)
    out = io.BytesIO()
    write_mo(out, messages)
    return out.getvalue()


def local_date(day: date) -> str:
    """A day as the current language writes it short ("07 Dec 2026", "07 дек. 2026")."""
    from babel.dates import format_date  # only when a date is shown: Babel's data is big

    return format_date(day, "dd MMM y", locale=_current.get())
