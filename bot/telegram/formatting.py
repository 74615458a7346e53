"""The model's Markdown as Telegram HTML, in messages Telegram always accepts.

Telegram refuses unclosed or badly nested tags and counts its 4096 limit after entity parsing, in
UTF-16 units. So HTML is never cut: the Markdown source is split (paragraphs, lines, sentences,
spaces, a hard cut) and each piece is rendered on its own. Each tag is opened and closed by one
call, so the output is well-formed by construction; markers that do not pair up stay literal.
Nesting follows the Bot API rules read strictly: <code>/<pre> only at the top level, no <a> in a
<blockquote> (it becomes "label (url)"). Rendering never makes the text longer than its source,
so a piece cut by source length always fits.
"""

from __future__ import annotations

import html as _html
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

TELEGRAM_TEXT_LIMIT = 4096
TELEGRAM_CAPTION_LIMIT = 1024

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_QUOTE = re.compile(r" {0,3}>(?:[ \t]?>)*[ \t]?")
_HEADING = re.compile(r" {0,3}#{1,6}(?=[ \t]|$)")
_BOLD_LINE = re.compile(r"[ \t]*(\*\*|__)\S.*\1:?[ \t]*$")  # "**Day 1**" used as a heading
_RULE = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_BULLET = re.compile(r"([ \t]*)[-*+][ \t]+")
_TOKEN = re.compile(  # an escape, a backtick or emphasis run, a link, a bare URL
    r"\\[!-/:-@\[-`{-~]|`+|\*+|_+|~+"
    r"|\[(?P<label>[^\[\]\n]{1,2000})\]\(\s*(?P<url>[^\s()<>]+(?:\([^\s()<>]*\)[^\s()<>]*)*)"
    r'(?:\s+"[^"\n]*")?\s*\)'
    r"|(?:https?|tg)://[^\s<>`]*[^\s<>`.,;:!?'\")\]*_~]",
    re.I,
)
_SAFE_URL = re.compile(r"(?:https?|tg)://\S", re.I)
_STYLE = {
    "*": ("i",),
    "_": ("i",),
    "**": ("b",),
    "__": ("b",),
    "***": ("b", "i"),
    "___": ("b", "i"),
    "~~": ("s",),
}
_TAG = re.compile(r"<[^>]*>")
_EMPTY_TAG = re.compile(r"<(b|i|s|u|code|pre|a|blockquote)(?: [^>]*)?>(\s*)</\1>")
_A_TAG = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.S)
_SURROGATE = re.compile("[\ud800-\udfff]")
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
    out: list[str] = []
    gap = ""
    for kind, lines in _scan(_normalize(md)):
        if kind == "blank":
            gap = "\n\n"
            continue
        if kind == "fence":
            html = _pre(lines)
        elif kind == "quote":
            quoted = frozenset({"blockquote"})
            body = "\n".join(_line(_QUOTE.sub("", line, 1), quoted) for line in lines)
            html = f"<blockquote>{body.strip()}</blockquote>" if _visible(body).strip() else ""
        else:
            html = _line(lines[0], frozenset())
        if html:
            out += [gap, html] if out else [html]
            gap = "\n"
    html = "".join(out)
    while (tidy := _EMPTY_TAG.sub(r"\2", html)) != html:  # a tag around nothing visible
        html = tidy
    return html


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
    for piece in _pack(_units(_normalize(md), limit), limit):
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


def _normalize(md: str) -> str:
    # Telegram refuses NUL bytes, and a lone surrogate cannot even be encoded for the request.
    md = md.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return _SURROGATE.sub("\ufffd", md)


def _visible(html: str) -> str:
    return _html.unescape(_TAG.sub("", html))


def _plain(html: str) -> str:
    def link(m: re.Match[str]) -> str:
        url = _html.unescape(m.group(1))
        return m.group(2) if _visible(m.group(2)) == url else f"{m.group(2)} ({escape(url)})"

    return _visible(_A_TAG.sub(link, html))


def _scan(md: str) -> Iterator[tuple[str, list[str]]]:
    """Group lines into ("fence" | "quote" | "line" | "blank", lines)."""
    lines = md.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        j = i + 1
        if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
            while j < len(lines) and not _closes(lines[j], m.group(1)):
                j += 1
            kind, j = "fence", j + 1
        elif _QUOTE.match(lines[i]):
            while j < len(lines) and _QUOTE.match(lines[j]):
                j += 1
            kind = "quote"
        else:
            kind = "line" if lines[i].strip() else "blank"
        yield kind, lines[i:j]
        i = j


def _closes(line: str, fence: str) -> bool:
    s = line.strip()
    indent = len(line) - len(line.lstrip(" "))
    return indent <= 3 and len(s) >= len(fence) and s == fence[0] * len(s)


def _pre(lines: list[str]) -> str:
    opener = lines[0].lstrip(" ")
    fence = opener[: len(opener) - len(opener.lstrip(opener[0]))]
    code = "\n".join(lines[1:-1] if len(lines) > 1 and _closes(lines[-1], fence) else lines[1:])
    return f"<pre>{escape(code)}</pre>" if code.strip() else ""


def _line(line: str, ctx: frozenset[str]) -> str:
    line = line.rstrip()
    if _RULE.match(line):
        return "———"
    if h := _HEADING.match(line):
        text = line[h.end() :].strip()
        bare = text.rstrip("#")  # an optional closing "##", when separated by a space
        text = bare.strip() if bare != text and (not bare or bare[-1] in " \t") else text
        return f"<b>{_inline(text, ctx | {'b'})}</b>" if text else ""
    if b := _BULLET.match(line):
        return b.group(1) + "• " + _inline(line[b.end() :], ctx)
    return _inline(line, ctx)


class _Tok(NamedTuple):
    kind: str  # "t" text, "c" code span, "l" link, "d" emphasis delimiter run
    text: str
    url: str = ""
    opens: bool = False
    closes: bool = False


def _inline(text: str, ctx: frozenset[str]) -> str:
    """Render one line's inline Markdown; `ctx` holds the tags already open around it."""
    toks: list[_Tok] = []
    pos = 0
    lonely_ticks: set[int] = set()  # backtick run lengths with no later match
    while m := _TOKEN.search(text, pos):
        if m.start() > pos:
            toks.append(_Tok("t", text[pos : m.start()]))
        run, pos = m.group(), m.end()
        if run[0] == "\\":  # a backslash escape: the character itself, never markup
            toks.append(_Tok("t", run[1]))
        elif run[0] == "`":
            end = None
            if len(run) not in lonely_ticks:
                end = re.compile(f"(?<!`)`{{{len(run)}}}(?!`)").search(text, pos)
                if end is None:
                    lonely_ticks.add(len(run))
            if end and text[pos : end.start()].strip():
                toks.append(_Tok("c", text[pos : end.start()]))
                pos = end.end()
            else:
                toks.append(_Tok("t", run))
        elif run[0] == "[":  # mailto:, javascript: and friends stay text
            label, url = m.group("label", "url")
            toks.append(_Tok("l", label, url) if _SAFE_URL.match(url) else _Tok("t", run))
        elif run[0] in "*_~":
            opens, closes = _flanking(text, m.start(), pos)
            toks.append(_Tok("d", run, "", opens, closes) if run in _STYLE else _Tok("t", run))
        else:  # a bare URL stays literal, so its underscores never turn into italics
            toks.append(_Tok("t", run))
    if pos < len(text):
        toks.append(_Tok("t", text[pos:]))
    return _render_tokens(toks, _pair(toks), ctx)


def _flanking(text: str, start: int, end: int) -> tuple[bool, bool]:
    """CommonMark's can-open / can-close for the delimiter run text[start:end]."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    p_before, p_after = (unicodedata.category(c)[0] in "PS" for c in (before, after))
    left = not after.isspace() and (not p_after or before.isspace() or p_before)
    right = not before.isspace() and (not p_before or after.isspace() or p_after)
    if text[start] == "_":  # snake_case, file_name_1.jpg: no intraword underscore emphasis
        return left and (not right or p_before), right and (not left or p_after)
    return left, right


def _pair(toks: list[_Tok]) -> dict[int, int]:
    """Match each closing run with the nearest opener of the same run; pairs nest properly."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    by_run: dict[str, list[int]] = {}
    for i, tok in enumerate(toks):
        if tok.kind != "d":
            continue
        openers = by_run.get(tok.text)
        if tok.closes and openers:
            j = openers[-1]
            while stack:  # runs opened inside this span and never closed stay literal
                k = stack.pop()
                by_run[toks[k].text].pop()
                if k == j:
                    break
            pairs[j] = i
        elif tok.opens:
            stack.append(i)
            by_run.setdefault(tok.text, []).append(i)
    return pairs


def _render_tokens(toks: list[_Tok], pairs: dict[int, int], ctx: frozenset[str]) -> str:
    out: list[str] = []
    active = set(ctx)
    closing: dict[int, tuple[str, ...]] = {}
    for i, tok in enumerate(toks):
        if tok.kind == "t":
            out.append(escape(tok.text))
        elif tok.kind == "c":  # Telegram nests nothing around or inside code
            out.append(escape(tok.text) if active else f"<code>{escape(tok.text)}</code>")
        elif tok.kind == "l":
            out.append(_link(tok.text, tok.url, frozenset(active)))
        elif i in pairs:
            tags = tuple(t for t in _STYLE[tok.text] if t not in active)  # no <b> inside <b>
            active.update(tags)
            closing[pairs[i]] = tags
            out.append("".join(f"<{t}>" for t in tags))
        elif i in closing:
            tags = closing.pop(i)
            active.difference_update(tags)
            out.append("".join(f"</{t}>" for t in reversed(tags)))
        else:
            out.append(tok.text)
    return "".join(out)


def _link(label: str, url: str, active: frozenset[str]) -> str:
    inner = _inline(label, active | {"a"})
    if not _visible(inner).strip():
        return escape(f"[{label}]({url})")
    if "blockquote" in active:
        return f"{inner} ({escape(url)})"
    return f'<a href="{escape(url).replace(chr(34), "&quot;")}">{inner}</a>'


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
    for kind, lines in _scan(md):
        if kind == "blank":
            paras.append([])
        elif kind == "fence":
            paras[-1] += _fence_atoms(lines, limit, "\n" if paras[-1] else "\n\n")
        else:
            for line in lines:
                paras[-1] += _line_atoms(line, limit, "\n" if paras[-1] else "\n\n")
    units: list[list[_Atom]] = []
    pending: list[_Atom] = []
    for para in filter(None, paras):
        pending += para
        if not all(atom.sticky for atom in para):
            units.append(pending)
            pending = []
    return [*units, pending] if pending else units


def _line_atoms(line: str, limit: int, sep: str) -> list[_Atom]:
    cost = utf16_len(to_plain(line))
    if cost <= limit:
        sticky = bool(_HEADING.match(line) or _BOLD_LINE.match(line))
        return [_Atom(line, cost, sep, sticky=sticky)]
    quoted = bool(_QUOTE.match(line))
    atoms = [
        _Atom(text, utf16_len(text), gap, ("> " if quoted else "") + _unfence(text))
        for text, gap in _fragments(line, limit, _LINE_BREAKS)
    ]
    atoms[0].text = atoms[0].head = _unfence(atoms[0].text)  # "```x`y" cut to "```x" is a fence
    atoms[0].sep = sep
    return atoms


def _unfence(fragment: str) -> str:
    """Keep a fragment of a cut line from opening a code fence when it starts a line."""
    m = _FENCE.match(fragment)
    return fragment[: m.start(1)] + "\\" + fragment[m.start(1) :] if m else fragment


def _fence_atoms(lines: list[str], limit: int, sep: str) -> list[_Atom]:
    whole = "\n".join(lines)
    if (cost := utf16_len(to_plain(whole))) <= limit:
        return [_Atom(whole, cost, sep)]
    m = _FENCE.match(lines[0])
    assert m is not None
    closed = len(lines) > 1 and _closes(lines[-1], m.group(1))
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
