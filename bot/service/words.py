"""Counting things in messages: "1 photo", "3 photos"; durations: "0:42"."""

from __future__ import annotations

import re

from bot.i18n import N_, _, ngettext

# Items are labelled in English ("photo 3") for the model, which names them so in its answers
# and the code parses that back; the traveller reads them in their language.
_LABELS = {
    "photo": N_("photo %(number)d"),
    "video": N_("video %(number)d"),
    "voice note": N_("voice note %(number)d"),
}
_LABEL = re.compile(r"^(photo|video|voice note) (\d+)")


def count(number: int, noun: str, plural: str | None = None) -> str:
    """The number with its noun, plural unless exactly one."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def counted(number: int, kind: str) -> str:
    """'3 photos', '5 фотографий': how many photos, videos, voice notes ("audio") or notes, in
    the current language with its plural forms (for the traveller; the model reads count())."""
    if kind == "photo":
        text = ngettext("%(count)d photo", "%(count)d photos", number)
    elif kind == "video":
        text = ngettext("%(count)d video", "%(count)d videos", number)
    elif kind == "audio":
        text = ngettext("%(count)d voice note", "%(count)d voice notes", number)
    elif kind == "note":
        text = ngettext("%(count)d note", "%(count)d notes", number)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return text % {"count": number}


def shown_label(label: str) -> str:
    """An item's label for the traveller: 'photo 3 (beach.jpg)' -> 'фото 3 (beach.jpg)'."""
    match = _LABEL.match(label)
    if match is None:
        return label
    return _(_LABELS[match[1]]) % {"number": int(match[2])} + label[match.end() :]


def clock(seconds: float) -> str:
    """A duration as a player shows it: '0:42', '12:05', '1:02:09' (at least a second)."""
    total = max(1, round(seconds))
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
