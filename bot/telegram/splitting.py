"""The model's Markdown cut into messages Telegram always accepts.

Telegram counts its 4096 limit after entity parsing, in UTF-16 units. So HTML is never cut: the
Markdown source is split (paragraphs, lines, sentences, spaces, a hard cut) and each piece is
rendered on its own (bot/telegram/rendering.py). Rendering never makes the text longer than its
source, so a piece cut by source length fits.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from bot.service.markdown import normalize, parse_blocks
from bot.telegram.rendering import html_to_plain, markdown_to_html, to_plain, utf16_len

TELEGRAM_TEXT_LIMIT = 4096
TELEGRAM_CAPTION_LIMIT = 1024

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")  # a line that would open a code block
_QUOTE = re.compile(r" {0,3}>")
_BOLD_LINE = re.compile(r"[ \t]*(\*\*|__)\S.*\1:?[ \t]*$")  # "**Day 1**" used as a heading
_MARKUP = re.compile(r"[\\`*_~\[\]<>#&:=+|-]|^\d")  # characters that may render as less
# Where a too-long text may break, best first; group 1 is the whitespace dropped at the break.
_LINE_BREAKS = (re.compile(r"[.!?…。！？][\"'”’»)\]]*(\s+)"), re.compile(r"(\s+)"))
_NEWLINE = re.compile(r"(\n)")


def split_markdown(md: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Cut Markdown into non-empty pieces whose HTML and plain text fit in `limit` UTF-16 units."""
    return [piece for piece, _ in split_rendered(md, limit)]


def render_chunks(md: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Telegram HTML messages for `md`, each non-empty and within `limit` visible UTF-16 units."""
    return [html for _, html in split_rendered(md, limit)]


def split_rendered(md: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[tuple[str, str]]:
    """The pieces of `split_markdown`, each with its Telegram HTML (rendered once, to fit)."""
    if limit < 2:
        raise ValueError("limit must be at least 2 (one character can take 2 UTF-16 units)")
    out: list[tuple[str, str]] = []
    for piece in _pack(_units(normalize(md), limit), limit):
        html = markdown_to_html(piece)
        if utf16_len(plain := html_to_plain(html)) <= limit:
            out += [(piece, html)] if plain.strip() else []
            continue
        # Never seen: rendering moved a cut's meaning. Cuts by source length always fit.
        for text, _ in _fragments(piece, limit, (_NEWLINE, *_LINE_BREAKS)):
            if html_to_plain(html := markdown_to_html(text)).strip():
                out.append((text, html))
    return out


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
            # Closed when its lines are more than the opener and the content's lines (the
            # content's last line has no newline when the text ends inside the block).
            body = token.content.count("\n") + (
                not token.content.endswith("\n") and bool(token.content)
            )
            fences[start] = end, body < end - start - 1
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
