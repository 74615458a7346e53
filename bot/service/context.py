"""Builds a model request from an album: its media and context first, then the conversation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import prompts
from bot.model import MediaRef, ModelRequest, Part, Turn
from bot.service.words import clock, count
from storage.protocols import BlobStore
from storage.records import Album, Exchange, Item, Note

LANGUAGE_NAMES = {
    "en": "English", "pt": "Portuguese", "es": "Spanish", "fr": "French", "de": "German",
    "it": "Italian", "nl": "Dutch", "ru": "Russian", "uk": "Ukrainian", "pl": "Polish",
    "tr": "Turkish", "ar": "Arabic", "he": "Hebrew", "fa": "Persian", "hi": "Hindi",
    "ja": "Japanese", "ko": "Korean", "zh": "Chinese", "id": "Indonesian", "cs": "Czech",
    "sv": "Swedish", "da": "Danish", "no": "Norwegian", "nb": "Norwegian", "fi": "Finnish",
    "el": "Greek", "ro": "Romanian", "hu": "Hungarian", "vi": "Vietnamese", "th": "Thai",
}  # fmt: skip


def language_name(code: str | None) -> str:
    """A language for the system prompt from a Telegram language code ('pt-br' -> Portuguese)."""
    if not code:
        return "the language the traveller writes in (English if unsure)"
    base = code.lower().split("-")[0]
    return LANGUAGE_NAMES.get(base, f"the language with code '{code}'")


def media_ref(item: Item, blobs: BlobStore) -> MediaRef:
    """What the model adapter needs to send an item (its bytes are fetched only if sent)."""
    model = item.media.model
    return MediaRef(
        key=model.sha256,
        mime_type=model.mime_type,
        label=media_label(item),
        local_path=partial(blobs.path_for, model.sha256),
    )


def media_label(item: Item) -> str:
    """How messages name an item: "video 3 (pier.mp4)"."""
    file_name = item.media.origin.file_name
    return f"{item.label} ({file_name})" if file_name else item.label


def facts_line(item: Item) -> str:
    """The line that introduces an item to the model: number, time, place, camera, caption."""
    if item.kind == "audio":
        return _heard_line(item)
    facts, origin = item.media.facts, item.media.origin
    bits = [f"[{item.label}]"]
    if facts.exact_time:
        bits.append(f"taken {_when(facts.exact_time)}")
    elif origin.message_date:
        bits.append(f"sent {_when(origin.message_date)} (approximate: the time it was sent)")
    if facts.latitude is not None and facts.longitude is not None:
        where = f"({facts.latitude:.5f}, {facts.longitude:.5f})"
        bits.append(f"near {facts.place} {where}" if facts.place else f"at {where}")
    if facts.duration:
        bits.append(f"{facts.duration:.0f} s long")
    if facts.camera:
        bits.append(facts.camera)
    if origin.sender_name:
        bits.append(f"sent by {origin.sender_name}")
    if origin.caption:
        bits.append(f'caption: "{origin.caption}"')
    return " · ".join(bits)


def _heard_line(item: Item) -> str:
    """'[voice note N] · <m:ss> long · recorded <date> <time> (<offset>) · by <name> · caption: …'.

    A voice note is recorded in the chat and sent when the recording stops, so its message
    time is when it was recorded; an audio file may be older, unless its container says when.
    """
    facts, origin = item.media.facts, item.media.origin
    bits = [f"[{item.label}]"]
    if facts.duration:
        bits.append(f"{clock(facts.duration)} long")
    if facts.exact_time:
        bits.append(f"recorded {_when(facts.exact_time)}")
    elif origin.message_date and origin.telegram_type == "voice":
        bits.append(f"recorded {_when(origin.message_date)}")
    elif origin.message_date:
        bits.append(f"sent {_when(origin.message_date)} (approximate: the time it was sent)")
    if origin.sender_name:
        bits.append(f"by {origin.sender_name}")
    if origin.file_name:
        bits.append(f"file {origin.file_name}")
    if origin.caption:
        bits.append(f'caption: "{origin.caption}"')
    return " · ".join(bits)


def _when(moment: datetime) -> str:
    text = moment.strftime("%Y-%m-%d %H:%M")
    offset = moment.strftime("%z")
    return f"{text} ({offset[:3]}:{offset[3:]})" if offset else text


def in_time_order(items: Sequence[Item]) -> list[Item]:
    """Items ordered by when they were taken (the send time where that is unknown)."""
    return sorted(items, key=lambda item: (_moment(item), item.position))


def _moment(item: Item) -> datetime:
    for moment in (item.media.facts.exact_time, item.media.origin.message_date):
        if moment is None:
            continue
        # Offsets are known for some files only; comparing in UTC where known is the best guess.
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    return datetime.max


def album_parts(
    album: Album, items: Sequence[Item], notes: Sequence[Note], blobs: BlobStore
) -> list[Part]:
    """The album as the model sees it: the traveller's notes, a manifest, then the media."""
    ordered = in_time_order(items)
    photos = sum(1 for i in items if i.kind == "photo")
    heard = sum(1 for i in items if i.kind == "audio")
    header = [
        f'The album "{album.name}": {count(photos, "photo")}, '
        f"{count(len(items) - photos - heard, 'video')}"
        + (f", {count(heard, 'voice note')} (to listen to, not pictures)." if heard else ".")
    ]
    if notes:
        header.append("What the traveller told about the trip:")
        header.extend(f"- {n.text}" for n in notes)
    else:
        header.append("The traveller has not written anything about the trip yet.")
    if ordered:
        header.append("")
        header.append("Manifest, in the order the media were taken:")
        header.extend(facts_line(item) for item in ordered)
        header.append("")
        header.append("The media follow in the same order, each after its label.")
    parts: list[Part] = ["\n".join(header)]
    for item in ordered:
        parts.append(f"[{item.label}]")
        parts.append(media_ref(item, blobs))
    return parts


def focus_parts(item: Item, blobs: BlobStore) -> list[Part]:
    """An item shown (or a voice note played) again next to a question about it."""
    again = "(played again)" if item.kind == "audio" else "(shown again)"
    return [f"{facts_line(item)} {again}", media_ref(item, blobs)]


def build_request(
    *,
    system: str,
    album: list[Part],
    history: Sequence[Exchange],
    focus_items: dict[int, Item],
    blobs: BlobStore,
    prompt: str,
    focus: Item | None,
    kind: str,
    json_schema: dict[str, Any] | None = None,
    album_id: int | None = None,
) -> ModelRequest:
    """The whole request: album first (inside the first user turn), earlier turns, the new one."""
    turns: list[Turn] = []
    pending_album: list[Part] = list(album)
    for exchange in history:
        parts = pending_album + _user_parts(
            exchange.prompt, focus_items.get(exchange.focus_item_id or -1), blobs
        )
        pending_album = []
        turns.append(Turn("user", tuple(parts)))
        turns.append(Turn("model", (exchange.answer_text,), raw=exchange.answer_content))
    turns.append(Turn("user", tuple(pending_album + _user_parts(prompt, focus, blobs))))
    return ModelRequest(
        system=system,
        turns=tuple(turns),
        kind=kind,
        json_schema=json_schema,
        context_parts=len(album),
        album_id=album_id,
    )


def _user_parts(prompt: str, focus: Item | None, blobs: BlobStore) -> list[Part]:
    if focus is None:
        return [prompt]
    return [*focus_parts(focus, blobs), prompt]


def system_prompt(language_code: str | None) -> str:
    """The system instruction, in the traveller's language."""
    return prompts.render("system", language=language_name(language_code))


def story_prompt(wish: str | None) -> str:
    """The request for the photo tour, with the traveller's wish if any."""
    extra = (
        f"\nThe traveller's wish for this story: {wish.strip()}" if wish and wish.strip() else ""
    )
    return prompts.render("story", wish=extra)


def question_prompt(question: str, focus: Item | None) -> str:
    """A follow-up question, singled out to one item when the traveller replied to it."""
    lead = prompts.render("focus", label=focus.label, kind=focus.noun) + "\n\n" if focus else ""
    return prompts.render("question", focus=lead, question=question.strip())
