"""The story as files to keep or publish: one self-contained web page, or Markdown and images.

The page loads nothing from anywhere: photos, video posters and small videos are data URIs and
the styles are inline (a Content-Security-Policy tells the browser so), so the file reads the
same offline years from now. Model and traveller text is escaped by Jinja's autoescaping; the
story's Markdown becomes HTML in bot/service/markdown.py, which escapes every text it writes.
Everything is blocking (decoding photos and video frames): callers run it in a worker thread.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import re
import threading
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import IO, Any

import av
import jinja2
from PIL import Image

from bot.errors import MediaRejected
from bot.i18n import _, is_rtl, ngettext
from bot.media.images import web_image
from bot.service.markdown import page_html
from bot.service.story import Story, quote_voice_notes
from bot.service.words import counted, shown_label
from storage.protocols import BlobStore
from storage.records import Item

log = logging.getLogger(__name__)

WEB_MAX_SIDE = 1600
WEB_QUALITY = 80
MAX_PAGE_VIDEO = 8 * 1024 * 1024  # larger videos would make the page too heavy for a phone
MAX_ZIP_VIDEO = 20 * 1024 * 1024
_VIDEO_EXTENSIONS = {"video/mp4": "mp4", "video/quicktime": "mov", "video/3gpp": "3gp"}
_WINDOWS_RESERVED = re.compile(r"con|prn|aux|nul|com\d|lpt\d")


@dataclass(frozen=True)
class _Media:
    """An album item ready to show: its picture (a photo, or a video's first frame)."""

    item: Item
    jpeg: bytes
    size: tuple[int, int]
    video: Path | None  # the original file, for a video

    @property
    def label(self) -> str:
        """'photo 3', or '▶ video 4 · 0:04' with the length when known."""
        if self.video is None:
            return shown_label(self.item.label)
        duration = self.item.media.facts.duration
        length = f" · {_clock(duration)}" if duration else ""
        return f"▶ {shown_label(self.item.label)}{length}"


@dataclass(frozen=True)
class _Look:
    """How heavy an export's media are: picture size and quality, and the largest video kept."""

    side: int
    quality: int
    max_video: int


def render_html(
    story: Story,
    items: Sequence[Item],
    blobs: BlobStore,
    *,
    album_name: str,
    language: str | None,
    max_bytes: int | None = None,
) -> bytes:
    """The story as one self-contained HTML page, its photos and small videos inside it.

    With `max_bytes` (what Telegram lets a bot send), a page that would be heavier leaves its
    videos out (their first frames stay), then uses smaller pictures, so that a long trip still
    fits. Only if even the smallest pictures are too heavy is the page larger than asked.
    Voice notes are quoted under their section's text, not embedded.
    """
    story = quote_voice_notes(story, items)

    def render(media: dict[int, _Media], look: _Look) -> bytes:
        page = io.BytesIO()
        _page(story, media, look, page, album_name=album_name, language=language)
        return page.getvalue()

    return _fitted(story, items, blobs, render, _Look(WEB_MAX_SIDE, WEB_QUALITY, MAX_PAGE_VIDEO),
                   max_bytes, encoded=True)  # fmt: skip


def render_markdown_zip(
    story: Story,
    items: Sequence[Item],
    blobs: BlobStore,
    *,
    album_name: str,
    max_bytes: int | None = None,
) -> bytes:
    """A zip of story.md and its images/ (and videos up to 20 MB), ready for a static blog.

    `max_bytes` as for render_html: videos go first, then picture size. Voice notes are
    quoted under their section's text."""
    story = quote_voice_notes(story, items)

    def render(media: dict[int, _Media], look: _Look) -> bytes:
        buffer = io.BytesIO()
        _zip(story, media, look, buffer, album_name=album_name)
        return buffer.getvalue()

    return _fitted(story, items, blobs, render, _Look(WEB_MAX_SIDE, WEB_QUALITY, MAX_ZIP_VIDEO),
                   max_bytes, encoded=False)  # fmt: skip


class StoryFiles:
    """The page and the zip of render_html and render_markdown_zip, written straight into files
    whatever their size (the folder command's): neither file is held in memory, and the web
    pictures, most of an export's work, are made once for both and kept while this lives."""

    def __init__(
        self,
        story: Story,
        items: Sequence[Item],
        blobs: BlobStore,
        *,
        album_name: str,
        language: str | None,
    ) -> None:
        self.story = quote_voice_notes(story, items)
        self.items = items
        self.blobs = blobs
        self.album_name = album_name
        self.language = language
        self._media: dict[int, _Media] | None = None
        self._making = threading.Lock()

    def write_page(self, target: IO[bytes]) -> None:
        """Write the web page into `target` as it is made (blocking: decodes the pictures)."""
        look = _Look(WEB_MAX_SIDE, WEB_QUALITY, MAX_PAGE_VIDEO)
        _page(self.story, self._pictures(look), look, target,
              album_name=self.album_name, language=self.language)  # fmt: skip

    def write_markdown_zip(self, target: IO[bytes]) -> None:
        """Write the Markdown zip into `target` as it is made (blocking, as write_page)."""
        look = _Look(WEB_MAX_SIDE, WEB_QUALITY, MAX_ZIP_VIDEO)
        _zip(self.story, self._pictures(look), look, target, album_name=self.album_name)

    def _pictures(self, look: _Look) -> dict[int, _Media]:
        # The page's and the zip's pictures are the same (only the largest video kept differs).
        with self._making:
            if self._media is None:
                self._media = _prepare(self.story, self.items, self.blobs, look)
            return self._media


SMALLEST_SIDE = 480  # below this a blog picture is a thumbnail: better to say it does not fit
SMALLER_QUALITY = 72


def _fitted(
    story: Story,
    items: Sequence[Item],
    blobs: BlobStore,
    render: Callable[[dict[int, _Media], _Look], bytes],
    look: _Look,
    max_bytes: int | None,
    *,
    encoded: bool,
) -> bytes:
    """The export rendered with `look`, made lighter step by step while over `max_bytes`."""
    media = _prepare(story, items, blobs, look)
    result = render(media, look)
    if max_bytes is None or len(result) <= max_bytes:
        return result
    look = replace(look, max_video=0)
    result = b""  # (each attempt's bytes are let go before the next is made)
    result = render(media, look)
    for _attempt in range(3):
        if len(result) <= max_bytes or look.side <= SMALLEST_SIDE:
            break
        # Picture bytes grow with their area: shrink the side by the square root of what is
        # needed, with a margin, and re-encode from the originals.
        pictures = sum(len(m.jpeg) for m in media.values()) * (4 / 3 if encoded else 1)
        room = max_bytes * 0.95 - (len(result) - pictures)
        ratio = max(room, 0) / pictures if pictures else 0
        side = max(SMALLEST_SIDE, min(int(look.side * math.sqrt(ratio) * 0.95), look.side - 1))
        look = replace(look, side=side, quality=SMALLER_QUALITY)
        log.info("Export over %d bytes: pictures of %d px instead", max_bytes, side)
        result, media = b"", {}
        media = _prepare(story, items, blobs, look)
        result = render(media, look)
    return result


def _page(
    story: Story,
    media: dict[int, _Media],
    look: _Look,
    target: IO[bytes],
    *,
    album_name: str,
    language: str | None,
) -> None:
    sections = [
        {
            "heading": section.heading,
            "text": page_html(section.text),
            "figures": [_figure(media[n], look.max_video) for n in section.media if n in media],
        }
        for section in story.sections
    ]
    # A BCP 47 tag: a catalog's "pt_BR" is "pt-BR".
    code = re.sub(r"[^A-Za-z0-9-]", "", (language or "").replace("_", "-"))[:35] or "und"
    template = _templates().get_template("story.html.j2")
    # Written piece by piece, each picture's data: URI made as it is written, so the page is
    # the only large thing in memory (a 100-photo page is tens of MB), and not even that when
    # `target` is a file.
    pieces = template.generate(
        lang=code,
        dir="rtl" if is_rtl(code) else "ltr",
        album=album_name if album_name.strip() != story.title.strip() else "",
        title=story.title,
        summary=_summary(media.values()),
        intro=page_html(story.intro),
        sections=sections,
        closing=page_html(story.closing),
    )
    for piece in pieces:
        target.write(piece.encode("utf-8"))


def _zip(
    story: Story, media: dict[int, _Media], look: _Look, target: IO[bytes], *, album_name: str
) -> None:
    digits = max(2, len(str(max(media, default=0))))
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        byline = " · ".join(filter(None, [album_name.strip(), _summary(media.values())]))
        blocks = [f"# {story.title}", f"*{_md_escape(byline)}*" if byline else "", story.intro]
        for section in story.sections:
            blocks += [f"## {section.heading}" if section.heading else "", section.text]
            for number in section.media:
                if number in media:
                    blocks.append(_md_figure(media[number], archive, digits, look.max_video))
        blocks += [story.closing, "*" + _("Made with photostory") + "*"]
        text = "\n\n".join(block.strip() for block in blocks if block.strip()) + "\n"
        archive.writestr("story.md", text)


def export_file_name(album_name: str, ext: str) -> str:
    """A safe file name for an export: an ASCII slug of the album name ("story" if none)."""
    ascii_name = unicodedata.normalize("NFKD", album_name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-") or "story"
    if _WINDOWS_RESERVED.fullmatch(slug):
        slug = f"{slug}-story"
    suffix = re.sub(r"[^a-z0-9]", "", ext.lower())
    return f"{slug}.{suffix}" if suffix else slug


# Pictures ----------------------------------------------------------------------------------------


def _prepare(
    story: Story, items: Sequence[Item], blobs: BlobStore, look: _Look
) -> dict[int, _Media]:
    """The web pictures of the items the story shows, by item number."""
    by_number = {item.position: item for item in items}
    media: dict[int, _Media] = {}
    for number in (n for section in story.sections for n in section.media):
        item = by_number.get(number)
        if item is None or number in media:
            continue
        source = blobs.path_for(item.media.source.sha256)
        try:
            if item.kind == "video":
                jpeg = _poster(source, look)
            else:
                jpeg = web_image(source, max_side=look.side, quality=look.quality)
            with Image.open(io.BytesIO(jpeg)) as image:
                size = image.size
        except (OSError, ValueError, MediaRejected, av.FFmpegError) as exc:
            # One unreadable file should not cost the traveller the whole export.
            log.warning("Export leaves out %s: %s", item.label, exc)
            continue
        media[number] = _Media(item, jpeg, size, source if item.kind == "video" else None)
    return media


def _poster(path: Path, look: _Look) -> bytes:
    """A video's first frame, upright and downscaled, as a JPEG."""
    with av.open(str(path), options={"protocol_whitelist": "file"}) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        frame = next(container.decode(container.streams.video[0]), None)
        if frame is None:
            raise ValueError("no video frame")
        image, rotation = frame.to_image(), frame.rotation  # type: ignore[no-untyped-call]
    if rotation:  # counterclockwise degrees, as PIL's rotate() takes them
        image = image.rotate(rotation, expand=True)
    image.thumbnail((look.side, look.side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=look.quality, optimize=True, progressive=True)
    return buffer.getvalue()


def _figure(media: _Media, max_video: int) -> dict[str, Any]:
    item = media.item
    video = None
    if media.video is not None and media.video.stat().st_size <= max_video:
        declared = item.media.origin.mime_type
        mime = "video/mp4" if declared == "video/quicktime" else declared
        video = _DataUri(mime or "video/mp4", media.video.read_bytes)
    return {
        "image": _DataUri("image/jpeg", lambda: media.jpeg),
        "width": media.size[0],
        "height": media.size[1],
        "video": video,
        "poster_only": media.video is not None and video is None,
        "label": media.label,
        "details": " · ".join(
            filter(None, [_when(item, "%Y-%m-%d %H:%M"), item.media.facts.place])
        ),
        "caption": (item.media.origin.caption or "").strip(),
        "alt": (item.media.origin.caption or "").strip() or _alt(media),
    }


def _md_figure(media: _Media, archive: zipfile.ZipFile, digits: int, max_video: int) -> str:
    stem = f"images/{media.item.kind}-{media.item.position:0{digits}d}"
    archive.writestr(f"{stem}.jpg", media.jpeg, compress_type=zipfile.ZIP_STORED)
    markdown = f"![{_md_escape(_alt(media))}]({stem}.jpg)"
    if media.video is not None and media.video.stat().st_size <= max_video:
        name = f"{stem}.{_VIDEO_EXTENSIONS.get(media.item.media.origin.mime_type or '', 'mp4')}"
        archive.write(media.video, name, compress_type=zipfile.ZIP_STORED)
        markdown += f"\n\n[{_md_escape(media.label)}]({name})"
    return markdown


def _alt(media: _Media) -> str:
    """'photo 3 — 2019-08-21, Lisbon, Portugal'."""
    where = ", ".join(filter(None, [_when(media.item, "%Y-%m-%d"), media.item.media.facts.place]))
    return f"{media.label.removeprefix('▶ ')} — {where}" if where else media.label


def _summary(media: Iterable[_Media]) -> str:
    """'3 photos · 1 video · 2012-10-04 – 2019-08-21'."""
    items = [m.item for m in media]
    days = sorted({day for item in items if (day := _when(item, "%Y-%m-%d"))})
    kinds: list[str] = [item.kind for item in items]
    counts = [counted(n, k) for k in ("photo", "video") if (n := kinds.count(k))]
    span = [f"{days[0]} – {days[-1]}" if len(days) > 1 else days[0]] if days else []
    return " · ".join(counts + span)


def _when(item: Item, pattern: str) -> str:
    """When the item was taken, as the camera's local time; empty if only the send time is known."""
    moment = item.media.facts.exact_time
    return moment.strftime(pattern) if moment else ""


def _clock(seconds: float) -> str:
    total = max(1, round(seconds))
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class _DataUri:
    """A data: URI made only when the template writes it out (it is safe HTML as it is)."""

    def __init__(self, mime: str, read: Callable[[], bytes]) -> None:
        self.mime = mime
        self.read = read

    def __html__(self) -> str:
        return _data_uri(self.mime, self.read())


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _md_escape(text: str) -> str:
    return re.sub(r"([\\\[\]*_`])", r"\\\1", text)


@cache
def _templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("bot.service", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # The page's own words ({{ _("...") }}) in the language in force where it is rendered.
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_, ngettext=ngettext, newstyle=True
    )
    return environment
