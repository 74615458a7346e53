"""One list of what counts as media: the handler's filter, the per-chat processor, the reading
of a media message and a reply's check all take the same kinds of file (the service's list)."""

from __future__ import annotations

import datetime as dtm
from typing import Any

import pytest
from telegram import (
    Animation,
    Audio,
    Chat,
    Document,
    Location,
    Message,
    PhotoSize,
    Sticker,
    Update,
    User,
    Video,
    VideoNote,
    Voice,
)

from bot.service.albums import MEDIA_TYPES
from bot.telegram.media_types import MEDIA, carries_media
from bot.telegram.message_handlers import incoming_media

CARRIED: dict[str, Any] = {
    "photo": [PhotoSize("p-small", "ps", 90, 60), PhotoSize("p-large", "pl", 1280, 960)],
    "video": Video("v", "vu", 640, 480, 5, mime_type="video/quicktime", file_name="a.mov"),
    "animation": Animation("a", "au", 320, 240, 2),
    "video_note": VideoNote("n", "nu", 240, 3),
    "voice": Voice("o", "ou", 2),
    "audio": Audio("m", "mu", 60, mime_type="audio/mpeg", file_name="tram.mp3"),
    "document": Document("d", "du", file_name="IMG_1.HEIC", mime_type="image/heic"),
}


def _message(**carried: Any) -> Message:
    ana = User(111, "Ana", False)
    date = dtm.datetime(2026, 5, 1, 12, 0, tzinfo=dtm.UTC)
    return Message(1, date, Chat(111, Chat.PRIVATE), from_user=ana, **carried)


def test_the_list_names_every_kind_of_file_a_message_may_carry() -> None:
    assert list(MEDIA_TYPES) == list(CARRIED)


@pytest.mark.parametrize("name", list(CARRIED))
def test_every_kind_of_media_is_taken_by_the_filter_and_the_reader(
    name: str,
) -> None:
    message = _message(**{name: CARRIED[name]})
    assert MEDIA.check_update(Update(1, message=message))
    assert carries_media(message)
    incoming = incoming_media(message)
    assert incoming is not None
    assert incoming.kind == MEDIA_TYPES[name].kind
    assert incoming.origin.telegram_type == name
    assert incoming.origin.mime_type is not None or name in ("audio", "document")


def test_what_a_media_message_says_about_its_file_is_read() -> None:
    photo = incoming_media(_message(photo=CARRIED["photo"]))
    assert photo is not None and photo.file_id == "p-large"  # the largest size
    assert photo.origin.mime_type == "image/jpeg"
    video = incoming_media(_message(video=CARRIED["video"]))
    assert video is not None
    assert (video.origin.mime_type, video.origin.file_name) == ("video/quicktime", "a.mov")
    voice = incoming_media(_message(voice=CARRIED["voice"]))
    assert voice is not None
    assert (voice.origin.mime_type, voice.origin.file_name) == ("audio/ogg", None)


def test_an_animation_sent_with_its_document_is_an_animation() -> None:
    # Telegram sends a GIF as both: the album takes it as the video it plays as.
    incoming = incoming_media(
        _message(animation=CARRIED["animation"], document=Document("a", "au"))
    )
    assert incoming is not None
    assert (incoming.kind, incoming.origin.telegram_type) == ("video", "animation")


@pytest.mark.parametrize(
    "carried",
    [
        {"text": "What a day"},
        {"sticker": Sticker("s", "su", 512, 512, False, False, Sticker.REGULAR)},
        {"location": Location(-9.14, 38.71)},
    ],
)
def test_other_messages_are_not_media(carried: dict[str, Any]) -> None:
    message = _message(**carried)
    assert not MEDIA.check_update(Update(1, message=message))
    assert not carries_media(message)
    assert incoming_media(message) is None
