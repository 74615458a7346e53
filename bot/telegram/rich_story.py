"""A story as Telegram rich messages: the title, then per section its heading, text, pictures,
map and quoted voice notes; a long album continues in further messages at section boundaries."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.service.reexports import Item
from bot.service.story import Section, Story, voice_note_quote
from bot.telegram.rich import MAX_BLOCKS, MAX_CHARACTERS, MAX_MEDIA, MAX_NESTING
from bot.telegram.rich_blocks import heading, inline, markdown_blocks, paragraph, size

JSON = dict[str, Any]

COLLAGE_LIMIT = 10  # more pictures than this read better as a slideshow to swipe


@dataclass
class RichPart:
    """One rich message of a story and the sections it holds (by index)."""

    blocks: list[JSON] = field(default_factory=list)
    sections: list[int] = field(default_factory=list)

    def message(self, rtl: bool) -> JSON:
        """The InputRichMessage."""
        message: JSON = {"blocks": self.blocks}
        if rtl:
            message["is_rtl"] = True
        return message


def story_parts(
    story: Story,
    items: Sequence[Item],
    media: Mapping[int, JSON],
    closing: str,
) -> list[RichPart]:
    """The story as rich messages within Telegram's limits, split between sections.

    `media` maps an item's number to its InputMedia (by file_id, or an attach:// upload);
    an item missing there is left out of the pictures."""
    by_number = {item.position: item for item in items}
    opening = [heading(story.title, 1), *markdown_blocks(story.intro)]
    parts = [RichPart(list(opening))]
    for index, section in enumerate(story.sections):
        blocks = section_blocks(section, by_number, media)
        if parts[-1].sections and not _fits(parts[-1].blocks + blocks):
            parts.append(RichPart())  # the next message starts with this section
        if _fits(parts[-1].blocks + blocks):
            parts[-1].blocks.extend(blocks)
        else:  # a section larger than a whole message: its blocks spread over several
            for piece in (p for block in blocks for p in _within_limits(block)):
                if parts[-1].blocks and not _fits([*parts[-1].blocks, piece]):
                    parts.append(RichPart())
                parts[-1].blocks.append(piece)
                if index not in parts[-1].sections:
                    parts[-1].sections.append(index)
        if index not in parts[-1].sections:
            parts[-1].sections.append(index)
    ending = markdown_blocks(closing)
    if not _fits(parts[-1].blocks + ending):
        parts.append(RichPart())
    parts[-1].blocks.extend(ending)
    return [p for p in parts if p.blocks]


def section_blocks(
    section: Section, by_number: Mapping[int, Item], media: Mapping[int, JSON]
) -> list[JSON]:
    """A section: heading, text, its voice notes quoted, a map where it has GPS, its pictures."""
    blocks: list[JSON] = [heading(section.heading, 2)] if section.heading else []
    blocks += markdown_blocks(section.text)
    items = [by_number[n] for n in section.media if n in by_number]
    heard = [i for i in items if i.kind == "audio"]
    if heard:
        quotes = [paragraph(inline(voice_note_quote(i))) for i in heard]
        blocks.append({"type": "blockquote", "blocks": quotes})
    if (where := map_block(items)) is not None:
        blocks.append(where)
    shown = [_picture(media[i.position]) for i in items if i.position in media]
    if len(shown) == 1:
        blocks.append(shown[0])
    elif len(shown) <= COLLAGE_LIMIT and shown:
        blocks.append({"type": "collage", "blocks": shown})
    elif shown:
        for start in range(0, len(shown), MAX_MEDIA):
            blocks.append({"type": "slideshow", "blocks": shown[start : start + MAX_MEDIA]})
    return blocks


def map_block(items: Sequence[Item]) -> JSON | None:
    """A map centred on the section's located media, zoomed to show them all."""
    located = [i.media.facts for i in items if i.kind != "audio" and i.media.facts.has_location()]
    if not located:
        return None
    lats = [f.latitude for f in located if f.latitude is not None]
    lons = [f.longitude for f in located if f.longitude is not None]
    spread = max(max(lats) - min(lats), max(lons) - min(lons), 0.005)
    zoom = min(max(round(math.log2(360 / (spread * 1.5))), 2), 15)
    block: JSON = {
        "type": "map",
        "location": {"latitude": sum(lats) / len(lats), "longitude": sum(lons) / len(lons)},
        "zoom": zoom,
    }
    place = next((f.place for f in located if f.place), None)
    if place:
        block["caption"] = {"text": place}
    return block


def _picture(media: JSON) -> JSON:
    kind = "video" if media.get("type") == "video" else "photo"
    return {"type": kind, kind: media}


def _fits(blocks: list[JSON]) -> bool:
    characters, count, depth, media = size(blocks)
    return (
        characters <= MAX_CHARACTERS
        and count <= MAX_BLOCKS
        and depth <= MAX_NESTING
        and media <= MAX_MEDIA
    )


def _within_limits(block: JSON) -> list[JSON]:
    """A block too big for one message, cut: a long paragraph at sentences, a list by items."""
    if _fits([block]):
        return [block]
    if block.get("type") == "list" and len(block["items"]) > 1:
        half = len(block["items"]) // 2
        return [
            *_within_limits({**block, "items": block["items"][:half]}),
            *_within_limits({**block, "items": block["items"][half:]}),
        ]
    text = block.get("text")
    if isinstance(text, str):
        cut = len(text) // 2
        return [
            *_within_limits({**block, "text": text[:cut]}),
            *_within_limits({**block, "text": text[cut:]}),
        ]
    if isinstance(text, list) and len(text) > 1:
        half = len(text) // 2
        return [
            *_within_limits({**block, "text": text[:half]}),
            *_within_limits({**block, "text": text[half:]}),
        ]
    return [block]  # nothing sensible to cut; Telegram will say no and the story falls back


def draft_message(markdown: str, rtl: bool) -> JSON:
    """The story written so far as a rich draft: the newest sections that fit in one message."""
    blocks = markdown_blocks(markdown) or [paragraph("…")]
    while len(blocks) > 1 and not _fits(blocks):
        blocks = blocks[1:]
    message: JSON = {"blocks": blocks}
    if rtl:
        message["is_rtl"] = True
    return message
