"""What the fake Bot API checks in a rich message (Bot API 10.1+), as Telegram does.

Shapes as aiogram 3.31 transcribes the official page (InputRichMessage, InputRichBlock*,
RichText*); limits as the client libraries transcribe them: 32,768 characters, 500 blocks,
16 levels of nesting, 50 media per message. Error descriptions follow Telegram's style; where
the exact wording is not documented the fake's is an informed guess (tests match on a few
words, not the whole sentence).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .telegram_html import utf16_len

JSON = dict[str, Any]

MAX_RICH_CHARACTERS = 32_768
MAX_RICH_BLOCKS = 500
MAX_RICH_NESTING = 16
MAX_RICH_MEDIA = 50

RICH_TEXT_TYPES = frozenset(
    "bold italic underline strikethrough spoiler date_time text_mention subscript superscript "
    "marked code custom_emoji mathematical_expression url email_address phone_number "
    "bank_card_number mention hashtag cashtag bot_command button anchor anchor_link reference "
    "reference_link".split()
)
MEDIA_BLOCKS = {"photo": "photo", "video": "video", "animation": "animation", "audio": "audio",
                "document": "document", "voice_note": "voice_note"}  # fmt: skip
TEXT_BLOCKS = frozenset({"paragraph", "heading", "pre", "footer", "expandable_blockquote",
                         "pullquote", "mathematical_expression"})  # fmt: skip
CONTAINER_BLOCKS = frozenset({"blockquote", "collage", "slideshow", "details"})
OTHER_BLOCKS = frozenset({"divider", "anchor", "list", "table", "map", "buttons", "thinking"})
BLOCK_TYPES = TEXT_BLOCKS | CONTAINER_BLOCKS | OTHER_BLOCKS | set(MEDIA_BLOCKS)
MEDIA_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MEDIA_LINK = re.compile(r"tg://(photo|video|audio|document)\?id=([^\s\"'<>)\]]*)")

# (kind, media value) -> the file_id it stands for; raises RichError for an unknown file.
MediaResolver = Callable[[str, Any], str]


class RichError(Exception):
    """A rich message Telegram refuses: the description after "Bad Request: "."""


@dataclass
class RichCheck:
    """What a valid rich message holds: its text as a reader sees it, and its media in order."""

    plain: str
    media: list[tuple[str, str]] = field(default_factory=list)  # (kind, file_id)
    characters: int = 0
    blocks: int = 0
    depth: int = 0


def check_rich_message(rich: Any, resolve: MediaResolver) -> RichCheck:
    """Validate an InputRichMessage; return what it shows or raise RichError."""
    if not isinstance(rich, dict):
        raise RichError("can't parse rich message JSON object")
    unknown = set(rich) - {"html", "markdown", "blocks", "is_rtl", "skip_entity_detection",
                           "media"}  # fmt: skip
    if unknown:
        raise RichError(f"unknown field {sorted(unknown)[0]} in the rich message")
    given = [k for k in ("html", "markdown", "blocks") if rich.get(k) not in (None, "", [])]
    if len(given) != 1:
        raise RichError("exactly one of html, markdown or blocks must be specified")
    for flag in ("is_rtl", "skip_entity_detection"):
        if flag in rich and not isinstance(rich[flag], bool):
            raise RichError(f"{flag} must be a Boolean")
    check = RichCheck("")
    if given == ["blocks"]:
        if rich.get("media"):
            raise RichError("media can be used only with html or markdown")
        texts: list[str] = []
        _blocks(rich["blocks"], 1, check, texts, resolve)
        check.plain = "\n\n".join(t for t in texts if t)
    else:
        source = str(rich[given[0]])
        _references(source, rich.get("media"), check, resolve)
        check.plain = re.sub(r"<[^>]*>", "", source)
        check.characters = utf16_len(check.plain)
        check.blocks = max(1, source.count("\n\n") + 1)
    _limits(check)
    return check


def _limits(check: RichCheck) -> None:
    if check.characters > MAX_RICH_CHARACTERS:
        raise RichError("RICH_MESSAGE_TOO_LONG: the message has more than 32768 characters")
    if check.blocks > MAX_RICH_BLOCKS:
        raise RichError("RICH_MESSAGE_TOO_MANY_BLOCKS: the message has more than 500 blocks")
    if check.depth > MAX_RICH_NESTING:
        raise RichError("RICH_MESSAGE_TOO_DEEP: blocks are nested more than 16 levels deep")
    if len(check.media) > MAX_RICH_MEDIA:
        raise RichError("RICH_MESSAGE_TOO_MANY_MEDIA: the message has more than 50 media")


def _references(source: str, media: Any, check: RichCheck, resolve: MediaResolver) -> None:
    """html/markdown content: every tg://photo?id=... must name an entry of `media`."""
    entries: dict[str, JSON] = {}
    for entry in media or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("media"), dict):
            raise RichError("can't parse InputRichMessageMedia")
        ident = str(entry.get("id", ""))
        if not MEDIA_ID.fullmatch(ident):
            raise RichError(f"invalid media identifier '{ident}'")
        entries[ident] = entry["media"]
    for kind, ident in MEDIA_LINK.findall(source):
        if ident not in entries:
            raise RichError(f"unknown media reference tg://{kind}?id={ident}")
        target = entries[ident]
        if target.get("type") != kind:
            raise RichError(f"media {ident} is not a {kind}")
        check.media.append((kind, resolve(kind, target.get("media"))))


def _blocks(
    blocks: Any, level: int, check: RichCheck, texts: list[str], resolve: MediaResolver
) -> None:
    if not isinstance(blocks, list) or not blocks:
        raise RichError("blocks must be a non-empty array of InputRichBlock")
    check.depth = max(check.depth, level)
    for block in blocks:
        _block(block, level, check, texts, resolve)


def _block(
    block: Any, level: int, check: RichCheck, texts: list[str], resolve: MediaResolver
) -> None:
    if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
        kind = block.get("type") if isinstance(block, dict) else type(block).__name__
        raise RichError(f"unsupported rich block type '{kind}'")
    check.blocks += 1
    kind = block["type"]
    if kind in TEXT_BLOCKS:
        if "text" not in block:
            raise RichError(f"text of a {kind} block is missing")
        if kind == "heading" and block.get("size") not in range(1, 7):
            raise RichError("heading size must be between 1 and 6")
        texts.append(_text(block["text"], check))
    elif kind in CONTAINER_BLOCKS:
        _blocks(block.get("blocks"), level + 1, check, texts, resolve)
        if kind in ("collage", "slideshow"):
            for child in block["blocks"]:
                if child.get("type") not in ("photo", "video", "animation"):
                    raise RichError(f"a {kind} may hold only photos, videos and animations")
    elif kind in MEDIA_BLOCKS:
        media = block.get(kind)
        if not isinstance(media, dict) or media.get("type") != MEDIA_BLOCKS[kind]:
            raise RichError(f"the {kind} of a {kind} block must be an InputMedia of type {kind}")
        check.media.append((kind, resolve(kind, media.get("media"))))
    elif kind == "list":
        items = block.get("items")
        if not isinstance(items, list) or not items:
            raise RichError("a list block needs items")
        for item in items:
            if not isinstance(item, dict):
                raise RichError("can't parse InputRichBlockListItem")
            _blocks(item.get("blocks"), level + 1, check, texts, resolve)
    elif kind == "map":
        _map(block)
    elif kind == "buttons":
        _buttons(block)
    if isinstance(block.get("caption"), dict):
        texts.append(_text(block["caption"].get("text", ""), check))


def _map(block: JSON) -> None:
    location = block.get("location")
    if not isinstance(location, dict):
        raise RichError("location of a map block is missing")
    lat, lon = location.get("latitude"), location.get("longitude")
    if not (isinstance(lat, int | float) and -90 <= lat <= 90):
        raise RichError("wrong latitude of the map")
    if not (isinstance(lon, int | float) and -180 <= lon <= 180):
        raise RichError("wrong longitude of the map")
    zoom = block.get("zoom")
    if zoom is not None and zoom not in range(25):
        raise RichError("map zoom must be between 0 and 24")


def _buttons(block: JSON) -> None:
    buttons = block.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 8:
        raise RichError("a buttons block must have 1-8 buttons")
    for button in buttons:
        actions = set(button) - {"text", "style"}
        if "text" not in button or len(actions) != 1:
            raise RichError("a button needs a text and exactly one action")
        data = button.get("callback_data")
        if data is not None and not 1 <= len(str(data).encode()) <= 64:
            raise RichError("BUTTON_DATA_INVALID")


def _text(value: Any, check: RichCheck) -> str:
    """Plain text of a RichText (a string, an array, or a typed entity), counted."""
    if isinstance(value, str):
        check.characters += utf16_len(value)
        return value
    if isinstance(value, list):
        return "".join(_text(part, check) for part in value)
    if isinstance(value, dict) and value.get("type") in RICH_TEXT_TYPES and "text" in value:
        if value["type"] == "url" and not str(value.get("url", "")):
            raise RichError("url of a rich text link is missing")
        return _text(value["text"], check)
    raise RichError("can't parse RichText")


def media_of(block: JSON) -> list[str]:
    """The media references (file ids, attach:// names) a block shows, nested ones included."""
    found: list[str] = []
    kind = block.get("type")
    if kind in MEDIA_BLOCKS and isinstance(block.get(kind), dict):
        found.append(str(block[kind].get("media")))
    for child in block.get("blocks") or []:
        found.extend(media_of(child))
    return found
