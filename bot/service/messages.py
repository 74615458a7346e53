"""What a traveller's text or shared location means for the album, independent of Telegram."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum

from bot.media.places import describe_place


class TextIntent(Enum):
    """What to do with a text message."""

    IGNORE = "ignore"  # not for the bot, or nothing left once the mention is gone
    NOTE = "note"  # something about the trip: it joins the album's context
    QUESTION = "question"  # for the model: answered in the album's conversation


async def text_intent(
    text: str,
    *,
    private: bool,
    addressed: bool,
    replied_to_bot: bool,
    replied_to_media: bool,
    in_conversation: Callable[[], Awaitable[bool]],
) -> TextIntent:
    """Whether a text (without the bot's @mention) is a note, a question or not for the bot.

    `in_conversation` says whether the album's conversation has begun; it is asked only when
    nothing else decides, since it reads the database.
    """
    if not for_the_bot(
        private=private,
        addressed=addressed,
        replied_to_bot=replied_to_bot,
        replied_to_media=replied_to_media,
    ):
        return TextIntent.IGNORE  # group chatter that is not for the bot
    if not text.strip():
        return TextIntent.IGNORE
    # Once the story is under way, what people write is about it (a question or a correction).
    if replied_to_media or "?" in text or await in_conversation():
        return TextIntent.QUESTION
    return TextIntent.NOTE


def for_the_bot(
    *, private: bool, addressed: bool, replied_to_bot: bool, replied_to_media: bool
) -> bool:
    """Whether something said (a text, a voice note) is for the bot: everything in a private
    chat; in a group only what mentions the bot or replies to it or to a photo or video."""
    return private or addressed or replied_to_bot or replied_to_media


async def location_note(
    latitude: float,
    longitude: float,
    title: str | None = None,
    address: str | None = None,
) -> str:
    """'Shared a place: Time Out Market, Av. 24 de Julho (38.70697, -9.14594), near Lisbon'.

    A venue has a title and an address (either may be empty); a bare location has neither.
    """
    where = f"({latitude:.5f}, {longitude:.5f})"
    place = await describe_place(latitude, longitude)  # offline: no coordinates leave the bot
    near = f", near {place.label()}" if place else ""
    if title is not None or address is not None:
        name = ", ".join(part for part in (title, address) if part)
        return f"Shared a place: {name} {where}{near}"
    return f"Shared a location: {where}{near}"
