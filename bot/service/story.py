"""The story as structured output: its schema, parsing and repair, previews and Markdown."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import from_json

from bot.i18n import _
from bot.service.words import clock, shown_label
from storage.records import Item

log = logging.getLogger(__name__)

STORY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "description": "The story's title, a few words."},
        "intro": {
            "type": "string",
            "description": "One or two opening sentences in Markdown, or empty.",
        },
        "sections": {
            "type": "array",
            "description": "The trip in time order: one section per place, day or moment.",
            "items": {
                "type": "object",
                "properties": {
                    "heading": {"type": "string", "description": "A short heading."},
                    "text": {
                        "type": "string",
                        "description": "Markdown paragraphs; cite media as (photo 3).",
                    },
                    "media": {
                        "type": "array",
                        "description": "Numbers of the photos and videos this section shows "
                        "(and of voice notes it draws on).",
                        "items": {"type": "integer"},
                    },
                },
                "required": ["heading", "text", "media"],
            },
        },
        "closing": {"type": "string", "description": "One or two closing sentences, or empty."},
    },
    "required": ["title", "sections"],
}


@dataclass(frozen=True)
class Section:
    """A part of the story and the album items (by number) it shows."""

    heading: str
    text: str
    media: tuple[int, ...]


@dataclass(frozen=True)
class Story:
    """A checked story: every cited number exists, every item is shown once somewhere."""

    title: str
    intro: str
    sections: tuple[Section, ...]
    closing: str
    repairs: tuple[str, ...] = field(default=())  # what the bot had to fix, for the logs

    def markdown(self) -> str:
        """The story as Markdown text (media cited in the text, not embedded)."""
        blocks = [f"# {self.title}"]
        if self.intro:
            blocks.append(self.intro)
        for section in self.sections:
            heading = f"## {section.heading}\n\n" if section.heading else ""
            blocks.append(f"{heading}{section.text}".rstrip())
        if self.closing:
            blocks.append(self.closing)
        return "\n\n".join(b.strip() for b in blocks if b.strip())


class StoryFormatError(ValueError):
    """The model's answer is not a usable story."""


def parse_story(answer: str, items: Sequence[Item]) -> Story:
    """Read the model's JSON story and make it consistent with the album (in time order).

    Numbers that name no item are dropped; a section left citing nothing is dropped too (a
    section no photo supports is how invented places get in); items no section shows join the
    section nearest to them in time order, so no photo goes missing from the story.
    """
    return _from_data(_load(answer), items)


def story_from_markdown(answer: str, items: Sequence[Item]) -> Story:
    """A story from a plain Markdown answer (the model ignored the schema): sections by heading."""
    title = ""
    sections: list[dict[str, Any]] = []
    current: dict[str, Any] = {"heading": "", "lines": []}
    for line in answer.strip().splitlines():
        if line.startswith("# ") and not title and not sections and not current["lines"]:
            title = line[2:].strip()
        elif line.startswith("## "):
            sections.append(current)
            current = {"heading": line[3:].strip(), "lines": []}
        else:
            current["lines"].append(line)
    sections.append(current)
    raw = []
    for section in sections:
        text = "\n".join(section["lines"]).strip()
        if text or section["heading"]:
            raw.append({"heading": section["heading"], "text": text, "media": _cited(text)})
    intro = ""
    if len(raw) > 1 and not raw[0]["heading"] and not raw[0]["media"]:
        intro = raw.pop(0)["text"]  # text before the first heading opens the story
    known = {i.position for i in items}
    if raw and not any(set(s["media"]) & known for s in raw):
        # Nothing cited at all: one section that shows the whole album.
        text = "\n\n".join(
            (f"**{s['heading']}**\n\n" if s["heading"] else "") + s["text"] for s in raw
        )
        raw = [{"heading": "", "text": text, "media": [i.position for i in items[:1]]}]
    return _from_data({"title": title, "intro": intro, "sections": raw}, items)


_CITATION = re.compile(r"\b(?:photos?|videos?|voice\s+notes?)\s+(\d+)(?:\s*[–-]\s*(\d+))?", re.I)


def _cited(text: str) -> list[int]:
    numbers: list[int] = []
    for match in _CITATION.finditer(text):
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        if 0 < last - first < 50:
            numbers.extend(range(first, last + 1))
        else:
            numbers.append(first)
    return numbers


def _from_data(data: dict[str, Any], items: Sequence[Item]) -> Story:
    order = [i.position for i in items]  # items arrive in time order
    known = set(order)
    repairs: list[str] = []
    sections: list[Section] = []
    shown: set[int] = set()
    for raw in data.get("sections") or []:
        if not isinstance(raw, dict):
            continue
        heading = _text(raw.get("heading"))
        text = _text(raw.get("text"))
        media: list[int] = []
        for number in raw.get("media") or []:
            value = _int(number)
            if value is None or value not in known:
                repairs.append(f"section '{heading}' cited missing item {number!r}")
            elif value in shown or value in media:
                continue  # each item is shown once, where it first appears
            else:
                media.append(value)
        if not media:
            repairs.append(f"dropped section '{heading}': it cites no photo or video")
            continue
        shown.update(media)
        sections.append(Section(heading, text, tuple(media)))
    if not sections:
        raise StoryFormatError("the story cites none of the album's photos or videos")
    # Voice notes are heard, not shown: one no section drew on is not placed anywhere.
    heard = {i.position for i in items if i.kind == "audio"}
    missing = [n for n in order if n not in shown and n not in heard]
    if missing:
        repairs.append(f"placed uncited items {missing} by time")
        sections = _place_missing(sections, missing, order)
    story = Story(
        title=_text(data.get("title")) or _("Our trip"),
        intro=_text(data.get("intro")),
        sections=tuple(sections),
        closing=_text(data.get("closing")),
        repairs=tuple(repairs),
    )
    for repair in repairs:
        log.info("Story repaired: %s", repair)
    return story


def quote_voice_notes(story: Story, items: Sequence[Item]) -> Story:
    """The story as it is posted or exported: voice notes are not pictures, so a section's
    voice notes leave its media and are quoted under its text ('🎙 voice note 3, 0:42, Ana')."""
    heard = {i.position: i for i in items if i.kind == "audio"}
    if not heard:
        return story
    sections = []
    for section in story.sections:
        quotes = [voice_note_quote(heard[n]) for n in section.media if n in heard]
        text = "\n\n".join(filter(None, [section.text, *quotes]))
        media = tuple(n for n in section.media if n not in heard)
        sections.append(Section(section.heading, text, media))
    return Story(story.title, story.intro, tuple(sections), story.closing, story.repairs)


def voice_note_quote(item: Item) -> str:
    """How a voice note is named where a picture would be: '🎙 *voice note 3* (0:42, Ana)'."""
    duration = item.media.facts.duration
    details = ", ".join(
        filter(None, [clock(duration) if duration else "", item.media.origin.sender_name or ""])
    )
    return f"🎙 *{shown_label(item.label)}*" + (f" ({details})" if details else "")


def _place_missing(sections: list[Section], missing: list[int], order: list[int]) -> list[Section]:
    index = {number: i for i, number in enumerate(order)}
    extra: dict[int, list[int]] = {}
    for number in missing:
        nearest = min(
            range(len(sections)),
            key=lambda s: min(abs(index[number] - index[m]) for m in sections[s].media),
        )
        extra.setdefault(nearest, []).append(number)
    placed = []
    for i, section in enumerate(sections):
        media = sorted((*section.media, *extra.get(i, [])), key=index.__getitem__)
        placed.append(Section(section.heading, section.text, tuple(media)))
    return placed


def _load(answer: str) -> dict[str, Any]:
    text = answer.strip()
    fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", text, re.S)
    if fenced:
        text = fenced.group(1)
    data = _read_prefix(text)  # a cut-off answer still has its first sections
    if not isinstance(data, dict):
        raise StoryFormatError("the answer is not a JSON object")
    return data


def preview_markdown(partial: str) -> str:
    """Markdown of what a streamed, still incomplete JSON story holds so far."""
    data = _read_prefix(partial)
    if not isinstance(data, dict):
        return ""
    blocks = []
    if title := _text(data.get("title")):
        blocks.append(f"# {title}")
    if intro := _text(data.get("intro")):
        blocks.append(intro)
    for raw in data.get("sections") or []:
        if isinstance(raw, dict):
            heading, text = _text(raw.get("heading")), _text(raw.get("text"))
            blocks.append(f"## {heading}\n\n{text}" if heading else text)
    if closing := _text(data.get("closing")):
        blocks.append(closing)
    return "\n\n".join(b for b in blocks if b.strip())


def _read_prefix(text: str) -> Any:
    """A JSON document or a prefix of one, the last string kept as far as it got (None if it is
    not JSON at all)."""
    try:
        return from_json(text, allow_partial="trailing-strings")
    except ValueError:
        return None


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None
