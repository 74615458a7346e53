"""The model's Markdown as Telegram HTML, in messages Telegram always accepts.

The tokens come from the one parser (bot/service/markdown.py); this is their Telegram renderer.
Telegram refuses unclosed or badly nested tags and counts its 4096 limit after entity parsing, in
UTF-16 units. So HTML is never cut: the Markdown source is split (paragraphs, lines, sentences,
spaces, a hard cut) and each piece is rendered on its own. Each tag is written whole by one
call, so the output is well-formed by construction. Nesting follows the Bot API rules read
strictly: <code>/<pre> only at the top level, no <a> in a <blockquote> (it becomes "label (url)").
Rendering never makes the text longer than its source, so a piece cut by source length fits.
"""

from __future__ import annotations

import html as _html
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from bot.service.markdown import Token, normalize, parse, parse_blocks, swap_strong_into_em

TELEGRAM_TEXT_LIMIT = 4096
TELEGRAM_CAPTION_LIMIT = 1024

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")  # a line that would open a code block
_QUOTE = re.compile(r" {0,3}>")
_BOLD_LINE = re.compile(r"[ \t]*(\*\*|__)\S.*\1:?[ \t]*$")  # "**Day 1**" used as a heading
_MARKUP = re.compile(r"[\\`*_~\[\]<>#&:=+|-]|^\d")  # characters that may render as less
_TAG = re.compile(r"<[^>]*>")
_A_TAG = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.S)
# Where a too-long text may break, best first; group 1 is the whitespace dropped at the break.
_LINE_BREAKS = (re.compile(r"[.!?…。！？][\"'”’»)\]]*(\s+)"), re.compile(r"(\s+)"))
_NEWLINE = re.compile(r"(\n)")


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
    return _plain(markdown_to_html(md))


def split_markdown(md: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Cut Markdown into non-empty pieces whose HTML and plain text fit in `limit` UTF-16 units."""
    return [piece for piece, _ in _chunks(md, limit)]


def render_chunks(md: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Telegram HTML messages for `md`, each non-empty and within `limit` visible UTF-16 units."""
    return [html for _, html in _chunks(md, limit)]


def _chunks(md: str, limit: int) -> list[tuple[str, str]]:
    if limit < 2:
        raise ValueError("limit must be at least 2 (one character can take 2 UTF-16 units)")
    out: list[tuple[str, str]] = []
    for piece in _pack(_units(normalize(md), limit), limit):
        html = markdown_to_html(piece)
        if utf16_len(plain := _plain(html)) <= limit:
            out += [(piece, html)] if plain.strip() else []
            continue
        # Never seen: rendering moved a cut's meaning. Cuts by source length always fit.
        for text, _ in _fragments(piece, limit, (_NEWLINE, *_LINE_BREAKS)):
            if _plain(html := markdown_to_html(text)).strip():
                out.append((text, html))
    return out


# Rendering ---------------------------------------------------------------------------------------


def _visible(html: str) -> str:
    return _html.unescape(_TAG.sub("", html))


def _plain(html: str) -> str:
    def link(m: re.Match[str]) -> str:
        url = _html.unescape(m.group(1))
        return m.group(2) if _visible(m.group(2)) == url else f"{m.group(2)} ({escape(url)})"

    return _visible(_A_TAG.sub(link, html))


@dataclass
class _Open:
    """An element being written: its tag (None when only its text shows) and its content."""

    tag: str | None
    lines: list[int] | None = None  # where it is in the source (blocks)
    parts: list[str] = field(default_factory=list)
    shown: bool = False  # holds a visible character other than whitespace
    href: str = ""
    quote: bool = False
    outside: tuple[bool, int, str] = (False, 0, "")  # a quote's surrounding flow, kept aside


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
            elif kind == "list_item_close" and self.prefix:  # an item with nothing in it
                marker, self.prefix = self.prefix.rstrip(), ""
                self._write(marker, None)
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
        quote.outside = (self.started, self.last_line, self.prefix)
        self.started, self.prefix = False, ""

    def _close_block(self) -> None:
        done = self._pop()
        body = "".join(done.parts)
        if done.quote and done.tag:
            inside_end = self.last_line
            self.started, self.last_line, self.prefix = done.outside
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


# Splitting ---------------------------------------------------------------------------------------


@dataclass
class _Atom:
    """What the packer moves: a line, a fenced block, or a fragment of a line too long."""

    text: str
    cost: int  # visible UTF-16 length once rendered (an upper bound for fragments)
    sep: str = ""  # joins it to the atom before it in the same piece
    head: str = ""  # its text when it starts a piece, if different
    sticky: bool = False  # a heading: keep it with what follows


def _units(md: str, limit: int) -> list[list[_Atom]]:
    """Paragraphs as lists of atoms, each heading-only paragraph joined to the next one."""
    paras: list[list[_Atom]] = [[]]
    for kind, lines in _blocks(md):
        if kind == "blank":
            paras.append([])
        elif kind.endswith("fence"):
            closed = kind == "fence"
            paras[-1] += _fence_atoms(lines, closed, limit, "\n" if paras[-1] else "\n\n")
        else:
            for line in lines:
                paras[-1] += _line_atoms(line, kind, limit, "\n" if paras[-1] else "\n\n")
    units: list[list[_Atom]] = []
    pending: list[_Atom] = []
    for para in filter(None, paras):
        pending += para
        if not all(atom.sticky for atom in para):
            units.append(pending)
            pending = []
    return [*units, pending] if pending else units


def _blocks(md: str) -> Iterator[tuple[str, list[str]]]:
    """The source lines as the parser groups them, each with its kind."""
    # A code block comes whole ("fence" or "unclosed fence"), as the splitter re-fences it;
    # every other line alone, as "line", "heading", "quote" or "blank".
    lines = md.split("\n")
    fences: dict[int, tuple[int, bool]] = {}  # first line -> the line after it, closed or not
    kinds: dict[int, str] = {}
    for token in parse_blocks(md):  # the lines' kinds: no need to parse their text
        if token.map is None:
            continue
        start, end = token.map
        if token.type == "fence":
            fences[start] = end, token.content.count("\n") < end - start - 1
        elif token.type in ("heading_open", "blockquote_open"):
            kinds.update(dict.fromkeys(range(start, end), token.type.removesuffix("_open")))
    i = 0
    while i < len(lines):
        if i in fences:
            end, closed = fences[i]
            yield ("fence" if closed else "unclosed fence"), lines[i:end]
            i = end
            continue
        kind = kinds.get(i, "line").replace("blockquote", "quote")
        yield (kind if lines[i].strip() else "blank"), [lines[i]]
        i += 1


def _line_atoms(line: str, kind: str, limit: int, sep: str) -> list[_Atom]:
    cost = _line_cost(line)
    if cost <= limit:
        sticky = kind == "heading" or bool(_BOLD_LINE.match(line))
        return [_Atom(line, cost, sep, sticky=sticky)]
    quoted = kind == "quote" and bool(_QUOTE.match(line))
    atoms = [
        _Atom(text, utf16_len(text), gap, ("> " if quoted else "") + _unfence(text))
        for text, gap in _fragments(line, limit, _LINE_BREAKS)
    ]
    atoms[0].text = atoms[0].head = _unfence(atoms[0].text)  # "```x`y" cut to "```x" is a fence
    atoms[0].sep = sep
    return atoms


@lru_cache(maxsize=4096)  # a streamed answer is split again at each update: its old lines repeat
def _line_cost(line: str) -> int:
    # Prose without a markup character shows as typed, so it needs no rendering to be measured.
    prose = line == line.strip() and not _MARKUP.search(line)
    return utf16_len(line if prose else to_plain(line))


def _unfence(fragment: str) -> str:
    """Keep a fragment of a cut line from opening a code fence when it starts a line."""
    m = _FENCE.match(fragment)
    return fragment[: m.start(1)] + "\\" + fragment[m.start(1) :] if m else fragment


def _fence_atoms(lines: list[str], closed: bool, limit: int, sep: str) -> list[_Atom]:
    whole = "\n".join(lines)
    if (cost := utf16_len(to_plain(whole))) <= limit:
        return [_Atom(whole, cost, sep)]
    m = _FENCE.match(lines[0])
    assert m is not None
    atoms = []
    for code, _ in _fragments("\n".join(lines[1:-1] if closed else lines[1:]), limit, (_NEWLINE,)):
        # several fenced blocks; a cut line may look like a closing fence, so outnumber it
        runs = re.findall(re.escape(m.group(1)[0]) + "+", code)
        fence = m.group(1)[0] * max(len(m.group(1)), 1 + max(map(len, runs), default=0))
        opener = lines[0][: m.start(1)] + fence + m.group(2)
        atoms.append(_Atom(f"{opener}\n{code}\n{fence}", utf16_len(code), "\n"))
    atoms[0].sep = sep
    return atoms


def _fragments(text: str, limit: int, breaks: tuple[re.Pattern[str], ...]) -> list[tuple[str, str]]:
    """Cut `text` into (fragment, whitespace dropped before it) of at most `limit` UTF-16 units."""
    out: list[tuple[str, str]] = []
    sep = ""
    while len(text) > limit or utf16_len(text) > limit:
        cut = _cut_index(text, limit)
        start = end = 0
        for k, pattern in enumerate(breaks):
            found = [m for m in pattern.finditer(text, 0, cut + 1) if m.start(1)]
            if found and (k == len(breaks) - 1 or 2 * found[-1].start(1) >= cut):  # not tiny
                start, end = found[-1].span(1)
                break
        if not start:
            start = end = _safe_cut(text, cut)
        out.append((text[:start], sep))
        sep, text = text[start:end], text[end:]
    return [(t, s) for t, s in [*out, (text, sep)] if t]


def _cut_index(text: str, limit: int) -> int:
    """The longest prefix, in code points, that fits in `limit` UTF-16 units."""
    cut = min(len(text), limit)
    units = utf16_len(text[:cut])
    while units > limit:
        cut -= 1
        units -= 2 if text[cut] > "\uffff" else 1
    return cut


def _safe_cut(text: str, cut: int) -> int:
    """Move a hard cut back so it splits no emoji sequence and no combining mark."""
    for back in range(cut, max(cut - 8, 0), -1):
        nxt = text[back]
        if not (
            unicodedata.category(nxt)[0] == "M"
            or nxt in "\u200d\ufe0e\ufe0f"
            or "\U0001f3fb" <= nxt <= "\U0001f3ff"
            or text[back - 1] == "\u200d"
        ):
            return back
    return cut


def _pack(units: list[list[_Atom]], limit: int) -> list[str]:
    """Fill pieces greedily: a paragraph that does not fit starts a new piece, then goes by atom."""
    pieces: list[str] = []
    size = limit + 1  # no piece open yet
    for unit in units:
        if size + sum(len(a.sep) + a.cost for a in unit) > limit:
            size = limit + 1
        for k, atom in enumerate(unit):
            need = atom.cost
            if atom.sticky and k + 1 < len(unit):
                need += len(unit[k + 1].sep) + unit[k + 1].cost
            if size + len(atom.sep) + need > limit:
                pieces.append(atom.head or atom.text)
                size = atom.cost
            else:
                pieces[-1] += atom.sep + atom.text
                size += len(atom.sep) + atom.cost
    return pieces
