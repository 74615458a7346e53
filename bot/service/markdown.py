"""Story Markdown parsed once, by markdown-it-py, and rendered as the exported page's HTML.

Every output walks the same tokens: the chat's Telegram HTML (bot/telegram/rendering.py) and the
web page (`page_html`, here). The parser is CommonMark with what a story needs and nothing a
model could slip in:
- raw HTML is text (html off) and entities stay as typed (no "&amp;" decoding): what the model
  wrote is what the reader sees;
- ~~strike~~ on; bare http(s) URLs are links (linkify), with no guessing at "example.com";
  no typographer: quotes and dashes stay as written. Tables stay off: their rows read well as
  the text they are;
- links only to http(s) and tg: URLs, kept as written (escaped when rendered, never re-encoded);
  images become links, since neither output loads anything from elsewhere;
- no indented code blocks (an indented story line is prose) and fenced code only where the
  fence starts its line; no link reference definitions (a "[a]: url" line stays visible);
- a quote is the lines that start with ">": no lazy continuation, so a line without ">" after
  a quote is not quoted, as it looks;
- nesting is capped (markdown-it's maxNesting), so no input recurses without bound.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_block.blockquote import blockquote
from markdown_it.rules_block.fence import fence
from markdown_it.token import Token
from markupsafe import Markup, escape

__all__ = ["Token", "normalize", "page_html", "parse", "parse_blocks", "swap_strong_into_em"]

SAFE_URL = re.compile(r"(?:https?|tg)://\S", re.I)
_SURROGATE = re.compile("[\ud800-\udfff]")


class _StoryMarkdown(MarkdownIt):
    """CommonMark as configured above: links to http(s) and tg only, URLs left as written."""

    def validateLink(self, url: str) -> bool:
        return bool(SAFE_URL.match(url))

    def normalizeLink(self, url: str) -> str:
        return url  # not percent-encoded: the renderers escape it, and it reads as written

    def normalizeLinkText(self, link: str) -> str:
        return link


def _quote(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """CommonMark's block quote, ending at the first line that does not start with ">"."""
    last = start + 1
    while last < end and state.sCount[last] - state.blkIndent < 4:
        pos = state.bMarks[last] + state.tShift[last]
        if pos >= state.eMarks[last] or state.src[pos] != ">":
            break
        last += 1
    line_max, state.lineMax = state.lineMax, last  # where its paragraphs must stop too
    try:
        return blockquote(state, start, last, silent)
    finally:
        state.lineMax = line_max


def _fence(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """CommonMark's fenced code, only where the fence starts its line (up to three spaces in).

    Behind a list marker or a ">" it is text: Telegram has no code block inside a quote, and a
    block that starts a line is what a reader takes for code.
    """
    pos = state.bMarks[start] + state.tShift[start]
    indent = state.src[state.src.rfind("\n", 0, pos) + 1 : pos]
    return len(indent) <= 3 and not indent.strip(" ") and fence(state, start, end, silent)


def _parser() -> MarkdownIt:
    md = _StoryMarkdown("commonmark", {"html": False, "linkify": True, "maxNesting": 20})
    md.enable(["strikethrough", "linkify"])
    md.disable(["code", "reference", "entity"])
    md.block.ruler.at("blockquote", _quote, {"alt": ["paragraph", "blockquote", "list"]})
    md.block.ruler.at("fence", _fence, {"alt": ["paragraph", "blockquote", "list"]})
    md.core.ruler.disable("linkify")  # the inline rule finds "scheme://" links; no guessing
    assert md.linkify is not None  # linkify-it-py, declared in pyproject.toml
    md.linkify.set({"fuzzy_link": False, "fuzzy_email": False, "fuzzy_ip": False})
    return md


_MARKDOWN = _parser()


def normalize(md: str) -> str:
    """Line ends as "\\n", NUL bytes gone, lone surrogates replaced: text any output accepts."""
    md = md.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return _SURROGATE.sub("\ufffd", md)


def parse(md: str) -> list[Token]:
    """The block tokens of `md` (inline tokens as their `children`), after `normalize`."""
    return _MARKDOWN.parse(normalize(md))


def parse_blocks(md: str) -> list[Token]:
    """The block tokens of `md` alone, its inline text left unparsed: its structure, cheaply."""
    tokens: list[Token] = []
    _MARKDOWN.block.parse(normalize(md), _MARKDOWN, {}, tokens)
    return tokens


def swap_strong_into_em(tokens: Sequence[Token]) -> list[Token]:
    """Inline tokens with "***x***" as strong around em (markdown-it puts em outside)."""
    out = [token for token in tokens if token.content or token.type != "text"]
    opened: list[int] = []
    match: dict[int, int] = {}
    for i, token in enumerate(out):
        if token.nesting == 1:
            opened.append(i)
        elif token.nesting == -1 and opened:
            match[opened.pop()] = i
    for i, token in enumerate(out[:-1]):
        j = match.get(i)
        nxt = out[i + 1]
        if token.type == "em_open" and nxt.type == "strong_open" and j is not None:
            k = match.get(i + 1)
            if k is not None and k + 1 == j:
                out[i], out[i + 1], out[k], out[j] = out[i + 1], out[i], out[j], out[k]
    return out


# The page -----------------------------------------------------------------------------------------

_PAGE_TAGS = {
    "paragraph": "p",
    "heading": "h3",  # the page's own h1 (title) and h2 (sections) sit above the story's
    "bullet_list": "ul",
    "ordered_list": "ol",
    "list_item": "li",
    "blockquote": "blockquote",
    "em": "em",
    "strong": "strong",
    "s": "s",
}


@dataclass
class _Open:
    tag: str
    parts: list[str] = field(default_factory=list)


def page_html(md: str) -> Markup:
    """Story Markdown as the page's safe HTML: paragraphs, lists, quotes, emphasis, links."""
    blocks: list[str] = []
    stack: list[_Open] = [_Open("")]
    items = 0  # list items open: a line break inside one reads as a space
    for token in parse(md):
        if token.type == "inline":
            stack[-1].parts.append(_page_inline(token.children or [], items > 0))
        elif token.type == "fence":
            code = escape(token.content.rstrip("\n")).replace("\n", Markup("<br>"))
            stack[-1].parts.append(f"<p><code>{code}</code></p>" if code.strip() else "")
        elif token.type == "hr":
            stack[-1].parts.append("<p>———</p>")
        elif token.nesting == 1:
            tag = _PAGE_TAGS.get(token.type.removesuffix("_open"), "")
            stack.append(_Open("" if token.hidden else tag))  # a tight list's items have no <p>
            items += token.type == "list_item_open"
        elif token.nesting == -1:
            done = stack.pop()
            items -= token.type == "list_item_close"
            body = "".join(done.parts)
            stack[-1].parts.append(f"<{done.tag}>{body}</{done.tag}>" if done.tag else body)
        if len(stack) == 1 and stack[0].parts:
            blocks += [part for part in stack[0].parts if part]
            stack[0].parts.clear()
    return Markup("\n".join(blocks))  # safe: every text went through escape()


def _page_inline(tokens: Sequence[Token], in_item: bool) -> str:
    stack: list[_Open] = [_Open("")]
    for token in swap_strong_into_em(tokens):
        parts = stack[-1].parts
        if token.type == "text":
            parts.append(escape(token.content))
        elif token.type == "softbreak":
            parts.append(" " if in_item else "<br>")
        elif token.type == "hardbreak":
            parts.append("<br>")
        elif token.type == "code_inline":
            parts.append(f"<code>{escape(token.content)}</code>")
        elif token.type == "image":
            parts.append(_page_link(str(token.attrs["src"]), escape(token.content)))
        elif token.type == "link_open":
            stack.append(_Open(str(token.attrs["href"])))
        elif token.type == "link_close":
            done = stack.pop()
            stack[-1].parts.append(_page_link(done.tag, "".join(done.parts)))
        elif token.nesting == 1:
            stack.append(_Open(_PAGE_TAGS[token.type.removesuffix("_open")]))
        elif token.nesting == -1:
            done = stack.pop()
            stack[-1].parts.append(f"<{done.tag}>{''.join(done.parts)}</{done.tag}>")
    return "".join(stack[0].parts)


def _page_link(url: str, label: str) -> str:
    if not re.match(r"https?://", url, re.I):
        return label or str(escape(url))  # a tg: link means nothing on a page
    return f'<a href="{escape(url)}">{label or escape(url)}</a>'
