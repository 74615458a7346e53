"""Model Markdown -> Telegram HTML: rendering, splitting, and the invariants Telegram relies on."""

from __future__ import annotations

import cProfile
import html as html_module
import itertools
import re
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.service.markdown import page_html
from bot.telegram.rendering import (
    escape,
    html_visible_length,
    markdown_to_html,
    to_plain,
    utf16_len,
)
from bot.telegram.splitting import (
    TELEGRAM_CAPTION_LIMIT,
    TELEGRAM_TEXT_LIMIT,
    render_chunks,
    split_markdown,
)
from tests.fakes.telegram_html import parse_html
from tests.long_story import long_story, paragraph

# A strict checker of our own: Telegram's tags only, attributes only on <a>, the Bot API nesting
# rules read strictly, the four entities we emit, and no tag around nothing visible.
_PIECE = re.compile(r'<(/?)([a-z-]+)((?: [a-z]+="[^"<>]*")*)>|&(lt|gt|amp|quot);|([^<>&]+)')
_TAGS = {"b", "i", "s", "u", "code", "pre", "a", "blockquote"}
_ENTITY = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def check_telegram_html(html: str, *, with_links: bool = False) -> str:
    """Assert `html` is strict Telegram HTML and return its visible text (plus link URLs)."""
    stack: list[tuple[str, str, int]] = []  # tag, href, length of the text when it opened
    text: list[str] = []
    pos = 0
    while pos < len(html):
        m = _PIECE.match(html, pos)
        assert m, f"raw markup character at {pos}: {html[pos : pos + 30]!r}"
        pos = m.end()
        closing, name, attrs, entity, chars = m.groups()
        if chars is not None:
            text.append(chars)
        elif entity:
            text.append(_ENTITY[entity])
        elif closing:
            assert not attrs and stack and stack[-1][0] == name, f"bad end tag </{name}>: {html!r}"
            _, href, start = stack.pop()
            assert "".join(text[start:]).strip(), f"<{name}> around nothing visible: {html!r}"
            if href and with_links:
                text.append(f" ({href})")
        else:
            open_tags = {tag for tag, _, _ in stack}
            assert name in _TAGS, f"unsupported tag <{name}>"
            assert not open_tags & {"code", "pre"}, f"<{name}> inside code: {html!r}"
            assert name not in open_tags, f"<{name}> nested in itself: {html!r}"
            if name in ("code", "pre"):
                assert not stack, f"<{name}> inside <{stack[-1][0]}>: {html!r}"
            if name == "a":
                assert "blockquote" not in open_tags, f"link inside a quote: {html!r}"
                found = re.fullmatch(r' href="([^"]*)"', attrs)
                assert found and re.match(r"(https?|tg)://", found.group(1), re.I), attrs
                assert not re.search(r"&(?!(lt|gt|amp|quot);)", found.group(1)), attrs
                url = re.sub(r"&(lt|gt|amp|quot);", lambda e: _ENTITY[e.group(1)], found.group(1))
                stack.append((name, url, len(text)))
                continue
            assert not attrs, f"attributes on <{name}>"
            if name == "blockquote":
                assert not stack, f"blockquote inside <{stack[-1][0]}>"
            stack.append((name, "", len(text)))
    assert not stack, f"unclosed <{stack[-1][0]}>: {html!r}"
    return "".join(text)


# Rendering -----------------------------------------------------------------------------------


def test_heading_becomes_bold_line() -> None:
    html = markdown_to_html("## Day 1: Lisbon ##\nWe arrived.")
    assert html == "<b>Day 1: Lisbon</b>\nWe arrived."


def test_hashtag_is_not_a_heading() -> None:
    assert markdown_to_html("#travel #lisbon") == "#travel #lisbon"


def test_bold_italic_strike_and_code() -> None:
    md = "**bold** __also__ *it* _it_ ***both*** ~~gone~~ `x < y`"
    assert markdown_to_html(md) == (
        "<b>bold</b> <b>also</b> <i>it</i> <i>it</i> <b><i>both</i></b> <s>gone</s> "
        "<code>x &lt; y</code>"
    )


def test_italic_inside_bold_nests() -> None:
    assert markdown_to_html("**a *b* c**") == "<b>a <i>b</i> c</b>"


def test_bold_inside_heading_is_not_doubled() -> None:
    assert markdown_to_html("# The **big** day") == "<b>The big day</b>"


def test_code_inside_bold_loses_its_code_tag() -> None:
    assert markdown_to_html("**run `ls` now**") == "<b>run ls now</b>"


def test_snake_case_is_not_italic() -> None:
    md = "see snake_case_name and file_name_1.jpg"
    assert markdown_to_html(md) == md


def test_unclosed_bold_stays_literal() -> None:
    assert markdown_to_html("**never closed and *half") == "**never closed and *half"


def test_crossing_markers_stay_well_formed() -> None:
    html = markdown_to_html("**a _b** c_")
    check_telegram_html(html)
    assert html == "<b>a _b</b> c_"


def test_stray_asterisks_stay_literal() -> None:
    assert markdown_to_html("5 * 3 = 15 * 1") == "5 * 3 = 15 * 1"
    assert markdown_to_html("rated 4.5*") == "rated 4.5*"


def test_script_tag_is_escaped() -> None:
    html = markdown_to_html('<script>alert("x")</script> & <b>')
    assert html == '&lt;script&gt;alert("x")&lt;/script&gt; &amp; &lt;b&gt;'


def test_escape_touches_only_lt_gt_amp() -> None:
    assert escape("<a href=\"x\">'&'</a>") == "&lt;a href=\"x\"&gt;'&amp;'&lt;/a&gt;"


def test_existing_entity_is_shown_literally() -> None:
    assert to_plain("AT&amp;T") == "AT&amp;T"


def test_http_link_becomes_anchor() -> None:
    html = markdown_to_html("[the **map**](https://maps.example.com/a_(b)?q=1&z=2)")
    assert html == '<a href="https://maps.example.com/a_(b)?q=1&amp;z=2">the <b>map</b></a>'


def test_tg_link_becomes_anchor() -> None:
    assert markdown_to_html("[Ann](tg://user?id=42)") == '<a href="tg://user?id=42">Ann</a>'


def test_other_schemes_stay_text() -> None:
    md = "[click](javascript:alert(1)) [mail](mailto:a_b@c.d)"
    assert markdown_to_html(md) == md


def test_quote_in_href_is_escaped() -> None:
    html = markdown_to_html('[x](http://e.xample/"onmouseover=1)')
    assert html == '<a href="http://e.xample/&quot;onmouseover=1">x</a>'
    check_telegram_html(html)


def test_bare_url_underscores_are_not_italic() -> None:
    md = "photos at https://ex.ample/_raw_/img_1.jpg, enjoy"
    assert markdown_to_html(md) == md


def test_bullets_become_dots_and_numbers_stay() -> None:
    md = "- one\n* two\n+ three\n  - nested\n1. first\n2) second"
    assert markdown_to_html(md) == "• one\n• two\n• three\n  • nested\n1. first\n2) second"


def test_quote_becomes_blockquote() -> None:
    html = markdown_to_html("> She said **no**.\n> > Twice.\nThen left.")
    assert html == "<blockquote>She said <b>no</b>.\nTwice.</blockquote>\nThen left."


def test_link_inside_quote_is_spelled_out() -> None:
    html = markdown_to_html("> see [the map](https://m.ap/x)")
    assert html == "<blockquote>see the map (https://m.ap/x)</blockquote>"


def test_rules_become_a_line() -> None:
    assert markdown_to_html("a\n\n---\n\n* * *\n\nb") == "a\n\n———\n\n———\n\nb"


def test_fenced_code_becomes_escaped_pre() -> None:
    md = "Run:\n```python\nif a < b and **c**:\n    pass\n```\nDone."
    assert markdown_to_html(md) == "Run:\n<pre>if a &lt; b and **c**:\n    pass</pre>\nDone."


def test_unclosed_fence_runs_to_the_end() -> None:
    assert markdown_to_html("```\ncode *x*\n\nmore") == "<pre>code *x*\n\nmore</pre>"


def test_empty_markup_renders_nothing() -> None:
    assert markdown_to_html("#\n\n```\n```\n\n>") == ""
    assert render_chunks("  \n\n```\n\n```\n") == []
    assert render_chunks("") == []


def test_backslash_escapes_show_the_character() -> None:
    html = markdown_to_html(r"\*not italic\* and \# \_x\_ C:\dir")
    assert html == r"*not italic* and # _x_ C:\dir"


def test_bullet_with_bold_label() -> None:
    assert markdown_to_html("* **Where:** Porto") == "• <b>Where:</b> Porto"


def test_emoji_and_rtl_text_pass_through() -> None:
    md = "👩‍👩‍👧 🇵🇹 שלום **مرحبا** e\u0301"
    assert markdown_to_html(md) == "👩‍👩‍👧 🇵🇹 שלום <b>مرحبا</b> e\u0301"


def test_nul_and_lone_surrogates_are_made_safe() -> None:
    html = markdown_to_html("a\x00b \ud83d c\r\nd")
    assert html == "ab \ufffd c\nd"
    html.encode("utf-8")


def test_utf16_len_counts_astral_characters_twice() -> None:
    assert utf16_len("a😀é") == 4
    assert utf16_len("👩‍👩‍👧") == 8


def test_html_visible_length_removes_tags_and_decodes_entities() -> None:
    assert html_visible_length('<b>&lt;</b><a href="http://x.y">😀</a> &amp;') == 5


def test_to_plain_drops_markup_and_keeps_link_targets() -> None:
    md = "# Title\n**bold** [map](https://m.ap) `x`\n> quoted\n- item"
    assert to_plain(md) == "Title\nbold map (https://m.ap) x\nquoted\n• item"


# Splitting -----------------------------------------------------------------------------------


def test_short_story_is_one_chunk() -> None:
    assert render_chunks("# Trip\n\nWe went **far**.") == ["<b>Trip</b>\n\nWe went <b>far</b>."]


def test_long_story_splits_at_paragraphs() -> None:
    paragraphs = [paragraph(n) for n in range(40)]
    pieces = split_markdown("\n\n".join(paragraphs), limit=1000)
    assert len(pieces) > 1
    assert all(part in paragraphs for piece in pieces for part in piece.split("\n\n"))
    assert "\n\n".join(pieces) == "\n\n".join(paragraphs)
    for piece, after in itertools.pairwise(pieces):  # each piece is as full as it can be
        assert utf16_len(to_plain(piece + "\n\n" + after.split("\n\n")[0])) > 1000


def test_paragraph_too_long_breaks_at_line_breaks() -> None:
    lines = [f"line {k} " + "x" * 50 for k in range(40)]
    pieces = split_markdown("\n".join(lines), limit=500)
    assert all(part in lines for piece in pieces for part in piece.split("\n"))
    assert "\n".join(pieces) == "\n".join(lines)


def test_single_giant_paragraph_is_split_at_sentences() -> None:
    sentences = [f"Sentence number {k} is about the sea and the sky." for k in range(300)]
    pieces = split_markdown(" ".join(sentences), limit=1000)
    assert len(pieces) > 1
    assert all(piece.endswith(".") for piece in pieces)
    assert " ".join(pieces) == " ".join(sentences)


def test_giant_word_is_hard_cut_without_breaking_emoji() -> None:
    family = "👩‍👩‍👧"
    pieces = split_markdown(family * 400, limit=100)
    assert "".join(pieces) == family * 400
    assert all(piece.startswith("👩") and utf16_len(piece) <= 100 for piece in pieces)


def test_cut_line_never_turns_into_a_code_fence() -> None:
    chunks = render_chunks("```&amp;` and ```python stays text", limit=5)
    shown = "".join(check_telegram_html(c) for c in chunks)
    assert shown.replace(" ", "") == "```&amp;`and```pythonstaystext"


def test_every_chunk_within_limit_counting_utf16() -> None:
    md = "\n\n".join(("😀" * 30 + " **bold 🇵🇹** ") * 20 for _ in range(10))
    chunks = render_chunks(md, limit=TELEGRAM_CAPTION_LIMIT)
    assert len(chunks) > 1
    for chunk in chunks:
        assert 0 < html_visible_length(chunk) <= TELEGRAM_CAPTION_LIMIT
        assert utf16_len(check_telegram_html(chunk)) <= TELEGRAM_CAPTION_LIMIT
    assert len(check_telegram_html(chunks[0])) < TELEGRAM_CAPTION_LIMIT // 1.5  # UTF-16, not chars


def test_links_do_not_count_their_url_against_html_but_do_for_plain() -> None:
    md = " ".join(f"[p{k}](https://example.com/{'x' * 40})" for k in range(100))
    for piece in split_markdown(md, limit=500):
        assert utf16_len(to_plain(piece)) <= 500


def test_code_fence_not_split() -> None:
    code = "```\n" + "\n".join(f"print({k})" for k in range(30)) + "\n```"
    md = paragraph(1, 90) + "\n\n" + code + "\n\n" + paragraph(2, 90)
    pieces = split_markdown(md, limit=700)
    assert code in pieces


def test_giant_code_fence_is_split_into_fenced_blocks() -> None:
    body = [f"value_{k} = compute({k}) < limit" for k in range(200)]
    chunks = render_chunks("```python\n" + "\n".join(body) + "\n```", limit=1000)
    assert len(chunks) > 1
    assert all(c.startswith("<pre>") and c.endswith("</pre>") for c in chunks)
    lines = "\n".join(check_telegram_html(c) for c in chunks).split("\n")
    assert lines == body


def test_heading_stays_with_the_paragraph_that_follows() -> None:
    md = "\n\n".join([paragraph(1, 70), "## Day two", paragraph(2, 70), paragraph(3, 70)])
    pieces = split_markdown(md, limit=800)
    assert any(piece.startswith("## Day two\n\n" + paragraph(2, 70)) for piece in pieces)
    assert not any(piece.endswith("## Day two") for piece in pieces)


def test_bold_line_used_as_heading_stays_with_its_paragraph() -> None:
    md = paragraph(1, 70) + "\n**Day two**\n" + paragraph(2, 70)
    pieces = split_markdown(md, limit=800)
    assert pieces[-1].startswith("**Day two**\n")


def test_long_quote_line_continues_as_a_quote() -> None:
    chunks = render_chunks("> " + " ".join(["word"] * 600), limit=1000)
    assert len(chunks) > 1
    assert all(c.startswith("<blockquote>") for c in chunks)


def test_limit_below_two_is_refused() -> None:
    with pytest.raises(ValueError):
        split_markdown("hello", limit=1)


def test_default_limit_is_telegrams() -> None:
    md = "\n\n".join(paragraph(n, 200) for n in range(30))
    chunks = render_chunks(md)
    assert len(chunks) > 1
    assert all(html_visible_length(c) <= TELEGRAM_TEXT_LIMIT for c in chunks)


def rendering_work(md: str) -> int:
    """Every function call, Python's and C's, that rendering `md` makes: work no load changes."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        render_chunks(md)
    finally:
        profile.disable()
    return sum(entry.callcount for entry in profile.getstats())


# From n to 4n characters linear work grows 4x, quadratic 16x. Counting calls sees a blow-up in
# Python code whatever the machine's load; one inside a single C call (a regular expression
# backtracking) is left to a time limit in seconds for what takes milliseconds. The formatter's
# speed itself is a figure of the benchmark (bench/story_render.py), not a test.
GROWTH_LIMIT = 6


def test_thirty_thousand_character_story_renders_in_linear_work() -> None:
    md = long_story(100)
    assert len(md) > 30_000
    quarter = long_story(25)
    render_chunks(quarter)  # first use compiles and caches what later calls reuse
    assert rendering_work(md) < GROWTH_LIMIT * rendering_work(quarter)


# Each input is head + unit * count + tail; the guard also renders it with a quarter of the count.
ADVERSARIAL = [
    ("", "*a ", 15_000, ""),
    ("", "_a ", 15_000, ""),
    ("", "`", 30_000, ""),
    ("", "` `` ``` ", 3_000, ""),
    ("", "[", 30_000, ""),
    ("[a", " ", 30_000, ""),
    ("**", "x", 30_000, ""),
    ("# ", " ", 30_000, "x"),
    ("", "http://", 4_000, ""),
    ("", "> ", 15_000, ""),
    ("", "\n", 30_000, ""),
    ("", "- ", 15_000, ""),
]


@pytest.mark.parametrize(
    ("head", "unit", "count", "tail"),
    ADVERSARIAL,
    ids=[repr((head + unit * count + tail)[:12]) for head, unit, count, tail in ADVERSARIAL],
)
def test_adversarial_input_stays_linear_and_valid(
    head: str, unit: str, count: int, tail: str
) -> None:
    md = head + unit * count + tail
    quarter = head + unit * (count // 4) + tail
    render_chunks(quarter)  # first use compiles and caches what later calls reuse
    started = time.perf_counter()
    chunks = render_chunks(md)
    elapsed = time.perf_counter() - started
    assert elapsed < 20  # seconds; typically 1-70 ms
    assert rendering_work(md) < GROWTH_LIMIT * rendering_work(quarter)
    for chunk in chunks:
        check_telegram_html(chunk)
        assert 0 < html_visible_length(chunk) <= TELEGRAM_TEXT_LIMIT


# Property: any input at all -------------------------------------------------------------------

_ALPHABET = [
    "*",
    "**",
    "***",
    "_",
    "__",
    "~~",
    "~",
    "`",
    "```",
    "~~~",
    "#",
    "# ",
    "## ",
    "- ",
    "* ",
    "+ ",
    "1. ",
    "> ",
    ">",
    "---",
    "[",
    "]",
    "(",
    ")",
    "](",
    "http://",
    "https://ex.am/p_q",
    "tg://u?id=1",
    "mailto:",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\t",
    "\r\n",
    "<",
    ">",
    "&",
    '"',
    "&amp;",
    "<b>",
    "</i>",
    "a",
    "b",
    "Word",
    "snake_case",
    "x1",
    ".",
    "!",
    "?",
    "😀",
    "👩‍👩‍👧",
    "🇵🇹",
    "e\u0301",
    "שלום",
    "مرحبا",
    "\u200f",
    "\u2028",
]
_markdown = st.lists(st.one_of(st.sampled_from(_ALPHABET), st.text(max_size=3)), max_size=120)


def _letters_and_digits(text: str) -> list[str]:
    return re.findall(r"[^\W_]", text)


def _without_fence_info(md: str) -> str:
    """The info string after an opening fence ("```python") is markup, not text (NULs go)."""
    out: list[str] = []
    fence = ""
    for line in md.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        m = re.match(r" {0,3}(`{3,}|~{3,})(.*)", line)
        stripped = line.strip()
        if not fence and m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
            fence, line = m.group(1), ""
        elif fence and len(stripped) >= len(fence) and stripped == fence[0] * len(stripped):
            fence = ""
        out.append(line)
    return "\n".join(out)


@settings(max_examples=400, deadline=None)
@given(parts=_markdown, limit=st.one_of(st.integers(2, 60), st.integers(61, 400)))
@example(parts=["```", "\n", "***"], limit=2)  # a block ended by the text, not its fence
def test_any_input_gives_valid_chunks_within_limit_and_loses_nothing(
    parts: list[str], limit: int
) -> None:
    md = "".join(parts)
    pieces = split_markdown(md, limit)
    chunks = render_chunks(md, limit)
    assert len(chunks) == len(pieces)
    shown = []
    for piece, chunk in zip(pieces, chunks, strict=True):
        text = check_telegram_html(chunk, with_links=True)
        assert check_telegram_html(chunk).strip(), f"empty chunk {chunk!r}"
        plain, _ = parse_html(chunk, strict_entities=True)  # the fake Bot API's port of TDLib
        assert utf16_len(plain) == html_visible_length(chunk) <= limit
        assert utf16_len(to_plain(piece)) <= limit
        shown.append(text)
    assert _letters_and_digits("".join(shown)) == _letters_and_digits(_without_fence_info(md))


@settings(max_examples=300, deadline=None)
@given(parts=_markdown)
@example(parts=["- - > *"])  # a quote in nested lists once took the lists' indent inside it
@example(parts=["*", "\r0"])  # an empty item once got a blank line after it
def test_rendering_never_makes_text_longer(parts: list[str]) -> None:
    md = "".join(parts)
    html = markdown_to_html(md)
    check_telegram_html(html)
    assert html_visible_length(html) <= utf16_len(to_plain(md)) <= utf16_len(md)


# One parser: the chat and the exported page show the same text ---------------------------------

_URL = re.compile(r"(?:https?|tg)://\S*")
_PAGE_BLOCK = re.compile(r"</?(?:p|li|ul|ol|h3|blockquote)>|<br>")
_LIST_MARKERS = re.compile(r"^[ \t]*(?:(?:•|\d{1,9}[.)])[ \t]*)+", re.M)


def _seen(text: str) -> list[str]:
    """What a reader reads, for comparing: addresses (shown in the chat when Telegram allows no
    link, hidden behind one on the page) and list markers (text in the chat, <ol> numbering on
    the page) left out, and spacing ignored."""
    return _letters_and_digits(_LIST_MARKERS.sub("", _URL.sub("", text)))


def _chat_text(md: str) -> list[str]:
    return _seen("".join(check_telegram_html(chunk) for chunk in render_chunks(md)))


def _page_text(md: str) -> list[str]:
    return _seen(html_module.unescape(re.sub(r"<[^>]*>", "", _PAGE_BLOCK.sub("\n", page_html(md)))))


_CORPUS = [
    "## Day 1: Lisbon ##\nWe arrived.",
    "**bold** __also__ *it* _it_ ***both*** ~~gone~~ `x < y`",
    "**a _b** c_ and **never closed and *half, 5 * 3 = 15 * 1",
    '<script>alert("x")</script> & <b> AT&amp;T',
    "[the **map**](https://maps.example.com/a_(b)?q=1&z=2) [Ann](tg://user?id=42)",
    "[click](javascript:alert(1)) [mail](mailto:a_b@c.d) ![a photo](https://e.x/p.jpg)",
    "photos at https://ex.ample/_raw_/img_1.jpg, enjoy <https://e.x/auto>",
    "- one\n* two\n+ three\n  - nested\n1. first\n2) second\n\n3. third",
    "> She said **no**.\n> > Twice.\nThen left.\n> see [the map](https://m.ap/x)",
    "a\n\n---\n\n* * *\n\nb\nSetext\n===",
    "Run:\n```python\nif a < b and **c**:\n    pass\n```\nDone.\n```\nunclosed *x*",
    r"\*not italic\* and \# \_x\_ C:\dir",
    "👩‍👩‍👧 🇵🇹 שלום **مرحبا** e\u0301 a\x00b \ud83d c\r\nd",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "[a]: https://e.x/ref\n\n    indented prose\n\n- ```py\n  code\n  ```",
    "*a " * 300,
    "` `` ``` " * 100,
    "[" * 500 + "a" + "]" * 500,
    "> " * 50 + "deep",
    "- " * 40 + "deep",
]


@pytest.mark.parametrize("md", _CORPUS, ids=lambda md: repr(md[:12]))
def test_chat_and_page_show_the_same_text(md: str) -> None:
    assert _chat_text(md) == _page_text(md)


@settings(max_examples=300, deadline=None)
@given(parts=_markdown)
def test_chat_and_page_show_the_same_text_for_any_input(parts: list[str]) -> None:
    md = "".join(parts)
    assert _chat_text(md) == _page_text(md)
