"""The service's reading of texts and shared locations (no Telegram involved)."""

from __future__ import annotations

import pytest

from bot.service.messages import TextIntent, location_note, text_intent

IGNORE, NOTE, QUESTION = TextIntent.IGNORE, TextIntent.NOTE, TextIntent.QUESTION


class Conversation:
    """Answers whether the conversation has begun, and counts how often it was asked."""

    def __init__(self, begun: bool) -> None:
        self.begun = begun
        self.asked = 0

    async def __call__(self) -> bool:
        self.asked += 1
        return self.begun


@pytest.mark.parametrize(
    ("text", "private", "addressed", "to_bot", "to_media", "begun", "intent"),
    [
        # Private chats: everything is for the bot.
        ("We took the train", True, False, False, False, False, NOTE),
        ("Where was this?", True, False, False, False, False, QUESTION),
        ("Make it shorter", True, False, False, False, True, QUESTION),  # story under way
        ("That is my sister", True, False, False, True, False, QUESTION),  # about a photo
        ("   ", True, False, False, False, False, IGNORE),
        # Groups: only what is addressed to the bot, replies to it, or replies to media.
        ("We took the train", False, False, False, False, False, IGNORE),
        ("Where was this?", False, False, False, False, True, IGNORE),
        ("We took the train", False, True, False, False, False, NOTE),
        ("We took the train", False, False, True, False, False, NOTE),
        ("Where was this?", False, False, True, False, False, QUESTION),
        ("That is my sister", False, False, False, True, False, QUESTION),
        ("", False, True, False, False, False, IGNORE),  # only the @mention was there
    ],
)
async def test_text_intent(
    text: str,
    private: bool,
    addressed: bool,
    to_bot: bool,
    to_media: bool,
    begun: bool,
    intent: TextIntent,
) -> None:
    decided = await text_intent(
        text,
        private=private,
        addressed=addressed,
        replied_to_bot=to_bot,
        replied_to_media=to_media,
        in_conversation=Conversation(begun),
    )
    assert decided is intent


async def test_the_conversation_is_looked_up_only_when_it_decides() -> None:
    conversation = Conversation(begun=True)
    for text, private in (("chatter", False), ("Why?", True), ("  ", True)):
        await text_intent(
            text,
            private=private,
            addressed=False,
            replied_to_bot=False,
            replied_to_media=False,
            in_conversation=conversation,
        )
    assert conversation.asked == 0
    await text_intent(
        "We took the train",
        private=True,
        addressed=False,
        replied_to_bot=False,
        replied_to_media=False,
        in_conversation=conversation,
    )
    assert conversation.asked == 1


async def test_a_location_is_named_after_the_nearest_place() -> None:
    note = await location_note(38.699539, -9.207747)
    assert note == "Shared a location: (38.69954, -9.20775), near Ajuda, Lisbon, Portugal"


async def test_a_venue_gives_its_title_and_address() -> None:
    note = await location_note(38.699539, -9.207747, "Time Out Market", "Av. 24 de Julho 49")
    assert note.startswith("Shared a place: Time Out Market, Av. 24 de Julho 49 (38.69954, ")
    assert note.endswith(", near Ajuda, Lisbon, Portugal")


async def test_a_venue_without_an_address_and_nowhere_near_a_town() -> None:
    assert (
        await location_note(0.0, -30.0, "Raft", "") == "Shared a place: Raft (0.00000, -30.00000)"
    )
    assert await location_note(0.0, -30.0) == "Shared a location: (0.00000, -30.00000)"
