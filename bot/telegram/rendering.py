"""The model's Markdown as Telegram HTML that always parses.

The tokens come from the one parser (bot/service/markdown.py); this is their Telegram renderer.
Telegram refuses unclosed or badly nested tags, so each tag is written whole by one call and
the output is well-formed by construction. Nesting follows the Bot API rules read strictly:
<code>/<pre> only at the top level, no <a> in a <blockquote> (it becomes "label (url)").
Rendering never makes the text longer than its source, which lets bot/telegram/splitting.py cut
the source by length (see there).
"""

from __future__ import annotations

import html as _html
import re
from dataclasses import dataclass, field

from bot.service.markdown import Token, parse, swap_strong_into_em

_TAG = re.compile(r"<[^>]*>")
_A_TAG = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.S)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's limits and entity offsets."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def escape(text: str) -> str:
    """Escape the three characters Telegram's HTML parse mode needs escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def html_visible_length(html: str) -> int:
    """UTF-16 length of the text Telegram shows for `html` (tags removed, entities decoded)."""
    return utf16_len(_visible(html))


def markdown_to_html(md: str) -> str:
    """Render model Markdown as Telegram HTML that always parses."""
    return _HtmlWriter().render(parse(md))


def to_plain(md: str) -> str:
    """The text without markup (links as "label (url)"): for users or chats without HTML."""
    return html_to_plain(markdown_to_html(md))


def html_to_plain(html: str) -> str:
    """The visible text of rendered HTML, links as "label (url)"."""

    def link(m: re.Match[str]) -> str:
        url = _html.unescape(m.group(1))
        return m.group(2) if _visible(m.group(2)) == url else f"{m.group(2)} ({escape(url)})"

    return _visible(_A_TAG.sub(link, html))


def _visible(html: str) -> str:
    return _html.unescape(_TAG.sub("", html))


@dataclass
class _Open:
    """An element being written: its tag (None when only its text shows) and its content."""

    tag: str | None
    lines: list[int] | None = None  # where it is in the source (blocks)
    parts: list[str] = field(default_factory=list)
    shown: bool = False  # holds a visible character other than whitespace
    href: str = ""
    quote: bool = False
    # A quote's surrounding flow, kept aside: its lists do not indent the quote's own.
    outside: tuple[bool, int, str, int] = (False, 0, "", 0)


_INLINE_TAGS = {"em_open": "i", "strong_open": "b", "s_open": "s"}


class _HtmlWriter:
    """One walk over the tokens, writing Telegram's HTML subset.

    Blocks become lines: a blank line in the source stays a blank line, headings are bold, list
    items start with "• " or their number, a rule is a line of dashes. What Telegram cannot
    nest (b in b, code in anything, a or pre in a quote) shows as text, and an element with
    nothing visible in it loses its tag.
    """

    def __init__(self) -> None:
        self.stack = [_Open(None)]
        self.active: set[str] = set()  # the tags open around the current position
        self.started = False  # a block was written: the next one starts on a new line
        self.last_line = 0  # the source line where the last block written ended
        self.prefix = ""  # list markers waiting for their item's first block
        self.depth = 0  # lists open
        self.item_lines: list[int] | None = None  # the source lines of the last item opened

    def render(self, tokens: list[Token]) -> str:
        for token in tokens:
            kind = token.type
            if kind in ("paragraph_open", "heading_open", "blockquote_open"):
                self._open("b" if kind == "heading_open" else None, token.map)
                if kind == "blockquote_open":
                    self._quote(self.stack[-1])
            elif kind in ("paragraph_close", "heading_close", "blockquote_close"):
                self._close_block()
            elif kind == "inline":
                self._inline(token.children or [])
            elif kind == "fence":
                self._fence(token)
            elif kind == "hr":
                self._write("———", token.map)
            elif kind in ("bullet_list_open", "ordered_list_open"):
                self.depth += 1
            elif kind in ("bullet_list_close", "ordered_list_close"):
                self.depth -= 1
            elif kind == "list_item_open":
                indent = "" if self.prefix else "  " * (self.depth - 1)
                self.prefix += indent + (f"{token.info}{token.markup} " if token.info else "• ")
                self.item_lines = token.map
            elif kind == "list_item_close" and self.prefix:  # an item with nothing in it
                marker, self.prefix = self.prefix.rstrip(), ""
                self._write(marker, self.item_lines)  # its lines: no blank line after it
        return "".join(self.stack[0].parts)

    # Blocks

    def _write(self, html: str, lines: list[int] | None) -> None:
        """Add a block on its own line, after a blank line where the source has one."""
        start, end = lines or (self.last_line, self.last_line)
        gap = ("\n\n" if start > self.last_line else "\n") if self.started else ""
        self.stack[-1].parts.append(gap + self.prefix + html)
        self.stack[-1].shown |= bool(_visible(html).strip())
        self.started, self.last_line, self.prefix = True, end, ""

    def _quote(self, quote: _Open) -> None:
        quote.quote = True
        if "blockquote" in self.active:  # a quote in a quote: one level is all Telegram has
            return
        quote.tag = "blockquote"
        self.active.add("blockquote")
        quote.outside = (self.started, self.last_line, self.prefix, self.depth)
        self.started, self.prefix, self.depth = False, "", 0

    def _close_block(self) -> None:
        done = self._pop()
        body = "".join(done.parts)
        if done.quote and done.tag:
            inside_end = self.last_line
            self.started, self.last_line, self.prefix, self.depth = done.outside
            if done.shown and done.lines:
                self._write(f"<blockquote>{body}</blockquote>", [done.lines[0], inside_end])
        elif done.quote:  # a quote inside a quote: its lines go into the outer one
            self._text(body, done.shown)
        elif body:
            self._write(_wrap(done.tag, body) if done.shown else body, done.lines)

    def _fence(self, token: Token) -> None:
        code = token.content.removesuffix("\n")
        if code.strip():
            self._write(f"<pre>{escape(code)}</pre>", token.map)  # never in a tag: see parse

    # Inline

    def _open(self, tag: str | None, lines: list[int] | None = None) -> None:
        if tag in self.active:
            tag = None
        self.stack.append(_Open(tag, lines))
        if tag:
            self.active.add(tag)

    def _pop(self) -> _Open:
        done = self.stack.pop()
        if done.tag:
            self.active.discard(done.tag)
        return done

    def _text(self, html: str, shown: bool) -> None:
        self.stack[-1].parts.append(html)
        self.stack[-1].shown |= shown

    def _inline(self, tokens: list[Token]) -> None:
        for token in swap_strong_into_em(tokens):
            kind = token.type
            if kind == "text":
                self._text(escape(token.content), bool(token.content.strip()))
            elif kind in ("softbreak", "hardbreak"):
                self._text("\n", False)
            elif kind == "code_inline":
                code, shown = escape(token.content), bool(token.content.strip())
                self._text(f"<code>{code}</code>" if shown and not self.active else code, shown)
            elif kind == "image":  # a link to it, named by its description
                self._open(None)
                self.stack[-1].href = str(token.attrs["src"])
                self._text(escape(token.content), bool(token.content.strip()))
                self._close_link()
            elif kind == "link_open":
                self._open(None)
                if token.markup not in ("linkify", "autolink"):  # else a bare URL
                    self.stack[-1].href = str(token.attrs["href"])
                    self.active.add("a")
            elif kind == "link_close":
                self._close_link()
            elif kind in _INLINE_TAGS:
                self._open(_INLINE_TAGS[kind])
            elif token.nesting == -1:
                self._close_inline()

    def _close_inline(self) -> None:
        done = self._pop()
        body = "".join(done.parts)
        self._text(_wrap(done.tag, body) if done.shown else body, done.shown)

    def _close_link(self) -> None:
        done = self._pop()
        self.active.discard("a")
        body, url = "".join(done.parts), done.href
        if not url:  # a bare URL: Telegram makes it a link by itself
            self._text(body, done.shown)
        elif not done.shown:  # nothing to click on: the address itself
            self._text(escape(url), True)
        elif self.active & {"a", "blockquote"}:  # Telegram allows no link there
            self._text(f"{body} ({escape(url)})", True)
        else:
            self._text(f'<a href="{escape(url).replace(chr(34), "&quot;")}">{body}</a>', True)


def _wrap(tag: str | None, html: str) -> str:
    return f"<{tag}>{html}</{tag}>" if tag else html
