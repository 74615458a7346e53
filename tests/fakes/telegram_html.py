"""Telegram's parse modes (HTML, MarkdownV2, Markdown) re-implemented for the fake Bot API.

`parse_html` is a port of TDLib's `parse_html` (td/telegram/MessageEntity.cpp), which is what the
Bot API server runs for `parse_mode=HTML`: same tags, same entity decoding, same error texts, byte
offsets counted in UTF-8 and entity offsets in UTF-16 code units. Note that TDLib keeps an
unknown `&...` literally (its own test: "&laquo;" -> "&laquo;"), so a bare `&` is accepted, as on
the real server; `strict_entities=True` rejects it for callers that want the documented rule.
The Markdown parsers are approximations of TDLib's: they reject what Telegram rejects in the
common cases (reserved characters, unclosed entities) without every corner of the original.
"""

from __future__ import annotations

import re
from typing import Any

Entity = dict[str, Any]

_SPACE = frozenset(b" \t\r\n\v\0")  # TDLib's is_space() counts the terminating NUL as a space
_HTML_TAGS = frozenset(
    "a b strong i em s strike del u ins tg-spoiler tg-emoji tg-time span pre code "
    "blockquote".split()
)
_SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_NAMED_ENTITIES = {b"lt": ord("<"), b"gt": ord(">"), b"amp": ord("&"), b"quot": ord('"')}
# TDLib's sort order for entities starting at the same offset with the same length.
_PRIORITY = {
    "blockquote": 0,
    "expandable_blockquote": 0,
    "pre": 11,
    "code": 20,
    "text_link": 49,
    "text_mention": 49,
    "bold": 90,
    "italic": 91,
    "underline": 92,
    "strikethrough": 93,
    "spoiler": 94,
    "custom_emoji": 99,
}
_SURROGATE_ERROR = (
    "Text contains invalid Unicode characters after decoding HTML entities, "
    "check for unmatched surrogate code units"
)
_DATE_FORMAT = re.compile(r"(r|w?[dD]?[tT]?)")


class TelegramParseError(ValueError):
    """Text Telegram refuses in a parse mode; `description` follows "can't parse entities: "."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class TelegramHTMLError(TelegramParseError):
    """HTML that Telegram refuses."""


class TelegramMarkdownError(TelegramParseError):
    """Markdown or MarkdownV2 that Telegram refuses."""


def utf16_len(text: str) -> int:
    """Length of `text` in UTF-16 code units, the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _at(data: bytes, i: int) -> int:
    """Byte at `i`, or 0 past the end (TDLib reads a NUL-terminated C string)."""
    return data[i] if i < len(data) else 0


def _units(byte: int) -> int:
    """UTF-16 units contributed by a UTF-8 byte: counted on lead bytes, 2 for 4-byte sequences."""
    if byte & 0xC0 == 0x80:
        return 0
    return 2 if byte >= 0xF0 else 1


def _decode_entity(data: bytes, pos: int) -> tuple[int, int]:
    """Decode the character reference at `pos` (an '&'); (0, pos) when it is not one."""
    end, code = pos + 1, 0
    if _at(data, pos + 1) == ord("#"):
        end += 1
        if _at(data, pos + 2) == ord("x"):
            end += 1
            while _at(data, end) and chr(data[end]) in "0123456789abcdefABCDEF":
                code = code * 16 + int(chr(data[end]), 16)
                end += 1
        else:
            while 0x30 <= _at(data, end) <= 0x39:
                code = code * 10 + data[end] - 0x30
                end += 1
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return 0, pos
    else:
        while chr(_at(data, end)).isascii() and chr(_at(data, end)).isalpha():
            end += 1
        code = _NAMED_ENTITIES.get(data[pos + 1 : end], 0)
        if not code:
            return 0, pos
    if _at(data, end) == ord(";"):
        end += 1
    return code, end


def checked_link(url: str) -> str:
    """Approximate TDLib's get_checked_link: normalise a URL, or "" when Telegram drops it."""
    if not url or any(ch.isspace() for ch in url):
        return ""
    scheme = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*)://", url)
    if scheme and scheme.group(1).lower() in ("tg", "ton", "tonsite"):
        return url
    if scheme and scheme.group(1).lower() not in ("http", "https"):
        return ""
    if not scheme:
        url = "http://" + url
    rest_at = url.index("//") + 2
    host_end = next((k for k in range(rest_at, len(url)) if url[k] in "/?#"), len(url))
    host = url[rest_at:host_end].rsplit("@", 1)[-1].split(":")[0]
    if "." not in host.strip("."):
        return ""
    if host_end == len(url) or url[host_end] != "/":
        url = url[:host_end] + "/" + url[host_end:]
    return url


def _sorted(entities: list[Entity]) -> list[Entity]:
    """Order entities the way TDLib does: offset, then longer first, then type priority."""
    return sorted(entities, key=lambda e: (e["offset"], -e["length"], _PRIORITY.get(e["type"], 50)))


def parse_html(text: str, *, strict_entities: bool = False) -> tuple[str, list[Entity]]:
    """Parse Telegram HTML into (plain text, Bot API entity dicts) or raise TelegramHTMLError."""
    data = text.encode("utf-8")
    if b"\0" in data:
        raise TelegramHTMLError("Text must not contain null bytes")
    out = bytearray()
    utf16 = 0
    stack: list[tuple[str, str, int, int, int]] = []  # tag, argument, date, utf16 start, byte start
    entities: list[Entity] = []
    i = 0
    while i < len(data):
        c = data[i]
        if c == ord("&"):
            code, end = _decode_entity(data, i)
            if code:
                if 0xD800 <= code <= 0xDFFF:
                    raise TelegramHTMLError(_SURROGATE_ERROR)
                out += chr(code).encode("utf-8")
                utf16 += 2 if code > 0xFFFF else 1
                i = end
                continue
            if strict_entities:
                raise TelegramHTMLError(f"Character entity expected at byte offset {i}")
        if c != ord("<"):
            utf16 += _units(c)
            out.append(c)
            i += 1
            continue
        begin = i
        i += 1
        if _at(data, i) != ord("/"):
            i = _parse_start_tag(data, begin, i, utf16, len(out), stack)
            continue
        if not stack:
            raise TelegramHTMLError(f"Unexpected end tag at byte offset {begin}")
        while _at(data, i) not in _SPACE and _at(data, i) != ord(">"):
            i += 1
        end_tag = data[begin + 2 : i].decode("utf-8", "replace").lower()
        while _at(data, i) in _SPACE and _at(data, i) != 0:
            i += 1
        if _at(data, i) != ord(">"):
            raise TelegramHTMLError(f"Unclosed end tag at byte offset {begin}")
        tag, argument, date, start, byte_start = stack.pop()
        if end_tag and end_tag != tag:
            raise TelegramHTMLError(
                f"Unmatched end tag at byte offset {begin}, "
                f'expected "</{tag}>", found "</{end_tag}>"'
            )
        if utf16 > start:
            inner = out[byte_start:].decode("utf-8")
            _close_html_entity(entities, tag, argument, date, start, utf16 - start, inner)
        i += 1
    if stack:
        raise TelegramHTMLError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    for entity in entities:
        entity.pop("_language", None)
    return out.decode("utf-8"), _sorted(entities)


def _parse_start_tag(
    data: bytes, begin: int, i: int, utf16: int, byte_pos: int, stack: list[Any]
) -> int:
    """Parse `<tag attr=...>` starting at `begin`, push it on `stack`, return the index after it."""
    while _at(data, i) not in _SPACE and _at(data, i) != ord(">"):
        i += 1
    if _at(data, i) == 0:
        raise TelegramHTMLError(f"Unclosed start tag at byte offset {begin}")
    tag = data[begin + 1 : i].decode("utf-8", "replace").lower()
    if tag not in _HTML_TAGS:
        raise TelegramHTMLError(f'Unsupported start tag "{tag}" at byte offset {begin}')
    argument, date = "", 0
    while _at(data, i) != ord(">"):
        while _at(data, i) != 0 and _at(data, i) in _SPACE:
            i += 1
        if _at(data, i) == ord(">"):
            break
        name_begin = i
        while _at(data, i) not in _SPACE and chr(_at(data, i)) not in "=>/\"'":
            i += 1
        name = data[name_begin:i].decode("utf-8", "replace")
        if not name:
            raise TelegramHTMLError(
                f'Empty attribute name in the tag "{tag}" at byte offset {begin}'
            )
        while _at(data, i) != 0 and _at(data, i) in _SPACE:
            i += 1
        if _at(data, i) != ord("="):
            if _at(data, i) == 0:
                raise TelegramHTMLError(f'Unclosed start tag "{tag}" at byte offset {begin}')
            if tag == "blockquote" and name == "expandable":
                argument = "1"
            continue
        i += 1
        while _at(data, i) != 0 and _at(data, i) in _SPACE:
            i += 1
        if _at(data, i) == 0:
            raise TelegramHTMLError(f'Unclosed start tag "{tag}" at byte offset {begin}')
        if chr(_at(data, i)) not in "'\"":
            token_begin = i
            while chr(_at(data, i)).isascii() and (
                chr(_at(data, i)).isalnum() or _at(data, i) in b".-"
            ):
                i += 1
            value = data[token_begin:i].decode("ascii").lower()
            if _at(data, i) not in _SPACE and _at(data, i) != ord(">"):
                raise TelegramHTMLError(
                    f"Unexpected end of name token at byte offset {token_begin}"
                )
        else:
            quote = data[i]
            i += 1
            raw = bytearray()
            while _at(data, i) not in (quote, 0):
                if data[i] == ord("&"):
                    code, end = _decode_entity(data, i)
                    if code:
                        raw += chr(code).encode("utf-8", "surrogatepass")
                        i = end
                        continue
                raw.append(data[i])
                i += 1
            if _at(data, i) == quote:
                i += 1
            value = raw.decode("utf-8", "replace")
        if _at(data, i) == 0:
            raise TelegramHTMLError(f"Unclosed start tag at byte offset {begin}")
        if tag == "a" and name == "href":
            argument = value
        elif tag == "code" and name == "class" and value.startswith("language-"):
            argument = value[len("language-") :]
        elif tag == "span" and name == "class" and value.startswith("tg-"):
            argument = value[len("tg-") :]
        elif (tag, name) in (("tg-emoji", "emoji-id"), ("tg-time", "format")):
            argument = value
        elif tag == "blockquote" and name == "expandable":
            argument = "1"
        elif tag == "tg-time" and name == "unix":
            date = int(re.match(r"-?\d*", value).group() or 0)  # type: ignore[union-attr]
    if tag == "span" and argument != "spoiler":
        raise TelegramHTMLError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
    stack.append((tag, argument, date, utf16, byte_pos))
    return i + 1


def _close_html_entity(
    entities: list[Entity],
    tag: str,
    argument: str,
    date: int,
    offset: int,
    length: int,
    inner: str,
) -> None:
    """Append the entity a closed, non-empty HTML tag produces (or none, like TDLib)."""
    span: Entity = {"offset": offset, "length": length}
    last = entities[-1] if entities else None
    same_span = last is not None and (last["offset"], last["length"]) == (offset, length)
    if tag in _SIMPLE_TAGS:
        entities.append({"type": _SIMPLE_TAGS[tag], **span})
    elif tag == "tg-emoji":
        if not re.fullmatch(r"-?\d{1,19}", argument) or int(argument) == 0:
            raise TelegramHTMLError("Invalid custom emoji identifier specified")
        entities.append({"type": "custom_emoji", **span, "custom_emoji_id": argument})
    elif tag == "tg-time":
        if not _DATE_FORMAT.fullmatch(argument):
            raise TelegramHTMLError("Invalid date format specified")
        if date > 0:
            fmt = {"date_time_format": argument} if argument else {}
            entities.append({"type": "date_time", **span, "unix_time": date, **fmt})
    elif tag == "a":
        url = checked_link(argument or inner)
        if url:
            entities.append({"type": "text_link", **span, "url": url})
    elif tag == "pre":
        if last is not None and same_span and last["type"] == "code" and last.get("_language"):
            last.update(type="pre", language=last.pop("_language"))
        else:
            entities.append({"type": "pre", **span})
    elif tag == "code":
        if last is not None and same_span and last["type"] == "pre" and argument:
            last["language"] = argument
        else:
            entities.append({"type": "code", **span, "_language": argument})
    elif tag == "blockquote":
        entities.append({"type": "expandable_blockquote" if argument else "blockquote", **span})


_MDV2_RESERVED = b"_*[]()~`>#+-=|{}.!"
_MDV2_NAMES = {
    "italic": "Italic",
    "bold": "Bold",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


def parse_markdown_v2(text: str) -> tuple[str, list[Entity]]:
    """Parse MarkdownV2 into (plain text, entities) or raise TelegramMarkdownError."""
    data = text.encode("utf-8")
    out = bytearray()
    utf16 = 0
    stack: list[dict[str, Any]] = []
    entities: list[Entity] = []
    quote_start: int | None = None
    i = 0
    while i < len(data):
        c = data[i]
        line_start = i == 0 or data[i - 1] == ord("\n")
        if line_start and not stack and quote_start is not None and c != ord(">"):
            # the quote ends with the line before; its final newline is not part of it
            entities.append(
                {"type": "blockquote", "offset": quote_start, "length": utf16 - 1 - quote_start}
            )
            quote_start = None
        if c == ord("\\") and 0 < _at(data, i + 1) <= 126:
            out.append(data[i + 1])
            utf16 += 1
            i += 2
            continue
        top = stack[-1] if stack else None
        if (top and top["type"] in ("code", "pre") and c != ord("`")) or c not in _MDV2_RESERVED:
            out.append(c)
            utf16 += _units(c)
            i += 1
            continue
        if c == ord(">") and line_start and not stack:
            quote_start = utf16 if quote_start is None else quote_start
            i += 1
            continue
        if top is not None and _mdv2_ends(top["type"], data, i):
            i = _mdv2_close(data, i, stack.pop(), out, utf16, entities)
            continue
        entry: dict[str, Any] = {"offset": utf16, "byte": i, "out": len(out), "language": ""}
        nxt = _at(data, i + 1)
        if c == ord("_") and nxt == ord("_"):
            entry["type"], i = "underline", i + 1
        elif c == ord("|") and nxt == ord("|"):
            entry["type"], i = "spoiler", i + 1
        elif c == ord("!") and nxt == ord("["):
            entry["type"], i = "custom_emoji", i + 1
        elif c == ord("`") and nxt == ord("`") and _at(data, i + 2) == ord("`"):
            i += 3
            entry["type"] = "pre"
            lang_end = i
            while _at(data, lang_end) not in _SPACE and _at(data, lang_end) != ord("`"):
                lang_end += 1
            if i != lang_end and lang_end < len(data) and data[lang_end] != ord("`"):
                entry["language"], i = data[i:lang_end].decode("utf-8", "replace"), lang_end
            if _at(data, i) in b"\r\n" and _at(data, i):
                i += (
                    2 if _at(data, i + 1) in b"\r\n" and _at(data, i + 1) not in (0, data[i]) else 1
                )
            i -= 1
        elif chr(c) in "_*~[`":
            entry["type"] = {
                "_": "italic",
                "*": "bold",
                "~": "strikethrough",
                "[": "text_link",
                "`": "code",
            }[chr(c)]
        else:
            raise TelegramMarkdownError(
                f"Character '{chr(c)}' is reserved and must be escaped with the preceding '\\'"
            )
        stack.append(entry)
        i += 1
    if stack:
        top = stack[-1]
        name = "PreCode" if top["type"] == "pre" and top["language"] else _MDV2_NAMES[top["type"]]
        raise TelegramMarkdownError(f"Can't find end of {name} entity at byte offset {top['byte']}")
    if quote_start is not None:
        entities.append(
            {"type": "blockquote", "offset": quote_start, "length": utf16 - quote_start}
        )
    return out.decode("utf-8"), _sorted([e for e in entities if e["length"] > 0])


def _mdv2_ends(kind: str, data: bytes, i: int) -> bool:
    """Whether the reserved character at `i` closes the innermost open entity `kind`."""
    c, nxt = data[i], _at(data, i + 1)
    return {
        "bold": c == ord("*"),
        "italic": c == ord("_") and nxt != ord("_"),
        "code": c == ord("`"),
        "pre": data[i : i + 3] == b"```",
        "text_link": c == ord("]"),
        "custom_emoji": c == ord("]"),
        "underline": c == ord("_") and nxt == ord("_"),
        "strikethrough": c == ord("~"),
        "spoiler": c == ord("|") and nxt == ord("|"),
    }[kind]


def _mdv2_close(
    data: bytes, i: int, entry: dict[str, Any], out: bytearray, utf16: int, entities: list[Entity]
) -> int:
    """Close `entry` at `i`, append its entity and return the index after the closing markup."""
    kind = entry["type"]
    extra: Entity = {}
    i += {"pre": 2, "underline": 1, "spoiler": 1}.get(kind, 0)
    if kind in ("text_link", "custom_emoji"):
        url = out[entry["out"] :].decode("utf-8")
        if _at(data, i + 1) == ord("("):
            i += 2
            url_begin, raw = i, bytearray()
            while i < len(data) and data[i] != ord(")"):
                if data[i] == ord("\\") and 0 < _at(data, i + 1) <= 126:
                    i += 1
                raw.append(data[i])
                i += 1
            if _at(data, i) != ord(")"):
                raise TelegramMarkdownError(f"Can't find end of a URL at byte offset {url_begin}")
            url = raw.decode("utf-8", "replace")
        if kind == "custom_emoji":
            found = re.fullmatch(r"tg://emoji\?id=(\d+)", url)
            if not found:
                raise TelegramMarkdownError("Custom emoji entity must contain a tg://emoji URL")
            extra = {"custom_emoji_id": found.group(1)}
        else:
            extra = {"url": checked_link(url)}
            if not extra["url"]:
                return i + 1
    if kind == "pre" and entry["language"]:
        extra = {"language": entry["language"]}
    if utf16 > entry["offset"]:
        entities.append(
            {"type": kind, "offset": entry["offset"], "length": utf16 - entry["offset"], **extra}
        )
    return i + 1


def parse_markdown(text: str) -> tuple[str, list[Entity]]:
    """Parse legacy Markdown (parse_mode="Markdown") or raise TelegramMarkdownError."""
    data = text.encode("utf-8")
    out = bytearray()
    utf16 = 0
    entities: list[Entity] = []
    i = 0
    while i < len(data):
        c = data[i]
        if c == ord("\\") and _at(data, i + 1) in b"_*`[":
            out.append(data[i + 1])
            utf16 += 1
            i += 2
            continue
        if c not in b"_*`[":
            out.append(c)
            utf16 += _units(c)
            i += 1
            continue
        begin, end_char, is_pre, language = i, (ord("]") if c == ord("[") else c), False, ""
        i += 1
        if c == ord("`") and data[i : i + 2] == b"``":
            i += 2
            is_pre = True
            lang_end = i
            while _at(data, lang_end) not in _SPACE and _at(data, lang_end) != ord("`"):
                lang_end += 1
            if i != lang_end and _at(data, lang_end) == ord("\n"):
                language, i = data[i:lang_end].decode("utf-8", "replace"), lang_end + 1
        start = utf16
        while i < len(data) and (data[i] != end_char or (is_pre and data[i : i + 3] != b"```")):
            utf16 += _units(data[i])
            out.append(data[i])
            i += 1
        if i == len(data):
            raise TelegramMarkdownError(
                f"Can't find end of the entity starting at byte offset {begin}"
            )
        entity: Entity = {"offset": start, "length": utf16 - start}
        if c == ord("["):
            url_end = data.find(b")", i + 2) if _at(data, i + 1) == ord("(") else -1
            url = (
                checked_link(data[i + 2 : url_end].decode("utf-8", "replace"))
                if url_end > 0
                else ""
            )
            i = url_end if url_end > 0 else i
            entity.update(type="text_link", url=url)
        else:
            entity["type"] = {"_": "italic", "*": "bold", "`": "pre" if is_pre else "code"}[chr(c)]
            if language:
                entity["language"] = language
            i += 2 if is_pre else 0
        if entity["length"] > 0 and entity.get("url", True):
            entities.append(entity)
        i += 1
    return out.decode("utf-8"), _sorted(entities)
