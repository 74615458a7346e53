"""The model's Markdown as rich-message blocks (Bot API 10.1+), and their size against the limits.

One parser (markdown-it-py, CommonMark) reads the Markdown; this module renders its tree as
InputRichBlock and RichText objects, in the JSON shapes of the Bot API (checked in the tests
against aiogram's typed models). Raw HTML is not enabled: the model's `<b>` stays text.
"""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from bot.telegram.rendering import utf16_len

JSON = dict[str, Any]
RichText = str | list[Any] | JSON

_PARSER = MarkdownIt("commonmark", {"html": False}).enable("strikethrough")
_STYLES = {"strong": "bold", "em": "italic", "s": "strikethrough"}


def heading(text: str, size: int) -> JSON:
    """A heading block, size 1 (largest) to 6."""
    return {"type": "heading", "text": inline(text), "size": min(max(size, 1), 6)}


def paragraph(text: RichText) -> JSON:
    """A paragraph block of rich text."""
    return {"type": "paragraph", "text": text}


def markdown_blocks(markdown: str) -> list[JSON]:
    """Paragraphs, headings, lists, quotes and code of a Markdown text, as blocks."""
    if not markdown.strip():
        return []
    return _blocks(SyntaxTreeNode(_PARSER.parse(markdown)).children)


def inline(markdown: str) -> RichText:
    """One line of Markdown (bold, italics, links, code) as rich text."""
    tree = SyntaxTreeNode(_PARSER.parse(markdown))
    parts: list[RichText] = []
    for node in tree.walk():
        if node.type == "inline":
            if parts:
                parts.append(" ")
            parts.extend(_inline(node.children))
    return _joined(parts) if parts else markdown


def _blocks(nodes: list[SyntaxTreeNode]) -> list[JSON]:
    blocks: list[JSON] = []
    for node in nodes:
        if node.type == "paragraph":
            blocks.append(paragraph(_text_of(node)))
        elif node.type == "heading":
            level = int(node.tag[1:]) if node.tag[1:].isdigit() else 2
            blocks.append({"type": "heading", "text": _text_of(node), "size": level})
        elif node.type in ("bullet_list", "ordered_list"):
            blocks.append(_list(node))
        elif node.type == "blockquote":
            blocks.append({"type": "blockquote", "blocks": _blocks(node.children)})
        elif node.type in ("fence", "code_block"):
            blocks.append({"type": "pre", "text": node.content.rstrip("\n")})
        elif node.type == "hr":
            blocks.append({"type": "divider"})
    return [b for b in blocks if b.get("text") != "" and b.get("blocks") != []]


def _list(node: SyntaxTreeNode) -> JSON:
    ordered = node.type == "ordered_list"
    start = int(str(node.attrs.get("start", 1))) if ordered else 1
    items: list[JSON] = []
    for number, child in enumerate(node.children, start=start):
        item: JSON = {"blocks": _blocks(child.children) or [paragraph("")]}
        if ordered:
            item.update(value=number, type="1")
        items.append(item)
    return {"type": "list", "items": items}


def _text_of(node: SyntaxTreeNode) -> RichText:
    parts: list[RichText] = []
    for child in node.children:
        if child.type == "inline":
            parts.extend(_inline(child.children))
    return _joined(parts)


def _inline(nodes: list[SyntaxTreeNode]) -> list[RichText]:
    parts: list[RichText] = []
    for node in nodes:
        if node.type == "text":
            parts.append(node.content)
        elif node.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif node.type == "code_inline":
            parts.append({"type": "code", "text": node.content})
        elif node.type in _STYLES:
            parts.append({"type": _STYLES[node.type], "text": _joined(_inline(node.children))})
        elif node.type == "link":
            label = _joined(_inline(node.children))
            url = str(node.attrs.get("href", ""))
            safe = url.lower().startswith(("http://", "https://", "tg://"))
            parts.append({"type": "url", "text": label, "url": url} if safe else label)
        elif node.type == "image":  # no pictures from the model's text: its alt text stays
            parts.extend(_inline(node.children))
        else:
            parts.append(node.content)
    return parts


def _joined(parts: list[RichText]) -> RichText:
    """Adjacent strings merged; a lone string stays a string (the wire's simplest form)."""
    merged: list[RichText] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    if not merged:
        return ""
    return merged[0] if len(merged) == 1 else merged


def size(blocks: list[JSON]) -> tuple[int, int, int, int]:
    """(characters in UTF-16 units, blocks counted nested, deepest nesting, media) of blocks."""
    characters = count = depth = media = 0

    def visit(value: Any, level: int) -> None:
        nonlocal characters, count, depth, media
        if isinstance(value, list):
            for entry in value:
                visit(entry, level)
        elif isinstance(value, dict):
            kind = value.get("type")
            nested = level
            if "blocks" in value or kind in _BLOCK_TYPES:
                count += 1 if kind in _BLOCK_TYPES else 0
                nested = level + 1
                depth = max(depth, nested)
            if kind in ("photo", "video") and isinstance(value.get(kind), dict):
                media += 1
            for key, entry in value.items():
                if key in ("text", "credit", "blocks", "items", "caption"):
                    visit(entry, nested)
        elif isinstance(value, str):
            characters += utf16_len(value)

    visit(blocks, 0)
    return characters, count, depth, media


_BLOCK_TYPES = frozenset(
    "paragraph heading pre footer divider list blockquote expandable_blockquote pullquote "
    "collage slideshow table details map buttons photo video animation audio document "
    "voice_note".split()
)
