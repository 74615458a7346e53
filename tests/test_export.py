"""Story export: a self-contained HTML page (checked in a real Chromium) and a Markdown zip."""

from __future__ import annotations

import io
import os
import re
import time
import tracemalloc
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from playwright.sync_api import sync_playwright

from bot import i18n
from bot.service import export
from bot.service.export import (
    StoryFiles,
    export_file_name,
    render_html,
    render_markdown_zip,
)
from bot.service.markdown import page_html
from bot.service.story import Section, Story
from storage.local_blobs import LocalBlobStore
from storage.protocols import BlobStore
from storage.records import Blob, Item, Media, MediaFacts, Origin, from_iso

DATA = Path(__file__).parent / "data"
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Pictures decoded and video metadata read, so the screenshot shows them and not a spinner.
SETTLED = """async () => {
  await Promise.all([...document.images].map(i => i.decode()));
  await Promise.all([...document.querySelectorAll("video")].map(v => v.readyState >= 2 ||
    new Promise(done => v.addEventListener("loadeddata", done, {once: true}))));
}"""
IMAGES_LOADED = "[...document.images].map(i => i.complete && i.naturalWidth > 0)"
FITS_WIDTH = "document.documentElement.scrollWidth <= window.innerWidth"
VIDEO_ERRORS = "[...document.querySelectorAll('video')].map(v => v.error)"
SECTION_PHRASES = [
    "We climbed to Ajuda before the heat",
    "pastéis de nata, still warm",
    "Someone typed <script>alert(1)</script> into the notes",
    "In the Netherlands the ducks came to us",
    "fewer trams",
]
FERRY = "https://example.com/ferry?day=1&lang=pt"
ALBUM = "Four cities & a pond <b>"

STORY = Story(
    title="Four cities & a pond",
    intro=(
        "Ten years of trips in one album: **old streets**, *slow coffee* and a few ducks. "
        "We kept the ferry times [here](" + FERRY + ")."
    ),
    sections=(
        Section(
            heading="Morning in Lisbon",
            text=(
                "We climbed to Ajuda before the heat (photo 1). The tram was full: we walked.\n\n"
                "What we ate:\n\n"
                "- pastéis de nata, still warm\n"
                "- grilled sardines & bread\n"
                "- one more pastel, *obviously*"
            ),
            media=(1,),
        ),
        Section(
            heading="Rain in Seattle, sun in Rome",
            text=(
                "Seattle gave us grey water and a ferry (photo 2); Rome gave us light (photo 3). "
                "Someone typed <script>alert(1)</script> into the notes, and a "
                "[bad link](javascript:alert(1)) too."
            ),
            media=(2, 3, 5),
        ),
        Section(
            heading="The duck pond",
            text="In the Netherlands the ducks came to us (video 4).",
            media=(4,),
        ),
    ),
    closing="Next time: *more ducks*, fewer trams.",
)

# (file, kind, mime, taken_at, time_source, place, latitude, longitude, camera, duration, size)
FILES = [
    ("lisbon_iphone_xr.heic", "photo", "image/heic", "2019-08-21T11:21:36", "exif",
     "Ajuda, Lisbon, Portugal", 38.69954, -9.20775, "Apple iPhone XR", None, (3024, 4032)),
    ("seattle_iphone5_orientation3.jpg", "photo", "image/jpeg", "2012-09-29T16:11:25", "exif",
     "Seattle, Washington, United States", 47.62717, -122.33733, "Apple iPhone 5", None,
     (3264, 2448)),
    ("rome_iphone4.jpg", "photo", "image/jpeg", "2011-01-13T14:33:39", "exif",
     "Rome, Lazio, Italy", 41.853, 12.48883, "Apple iPhone 4", None, (1296, 968)),
    ("netherlands_ducks_with_gps.mp4", "video", "video/mp4", "2020-11-20T14:04:36+00:00",
     "container", "Almelo, Overijssel, Netherlands", 52.36929, 6.67609, None, 3.635,
     (1280, 720)),
    ("israel_iphone6_with_gps.mov", "video", "video/quicktime", "2019-07-24T11:25:40+03:00",
     "container", "Giv'at Shmuel, Tel Aviv, Israel", 32.0929, 34.862, "Apple iPhone 6", 4.0,
     (320, 568)),
]  # fmt: skip
CAPTIONS = {3: "Rome <img src=x onerror=alert(1)> & more"}


@dataclass
class Album:
    blobs: BlobStore
    items: list[Item]
    html: bytes = b""
    zip: bytes = b""
    seconds: dict[str, float] = field(default_factory=dict)


def make_items(blobs: BlobStore) -> list[Item]:
    items = []
    for number, row in enumerate(FILES, start=1):
        name, kind, mime, taken, source, place, lat, lon, camera, duration, size = row
        sha, length = blobs.put_bytes((DATA / name).read_bytes())
        blob = Blob(sha, length, mime)
        media = Media(
            kind=kind,
            source=blob,
            model=blob,
            origin=Origin(
                file_id=f"file-{number}",
                file_unique_id=f"unique-{number}",
                file_name=name,
                mime_type=mime,
                caption=CAPTIONS.get(number),
                chat_message_id=100 + number,
                sender_id=42,
                sender_name="Ana",
                message_date=datetime(2024, 5, 1, 10, tzinfo=UTC),
                telegram_type=kind,
            ),
            facts=MediaFacts(
                taken_at=from_iso(taken),
                time_source=source,
                latitude=lat,
                longitude=lon,
                camera=camera,
                width=size[0],
                height=size[1],
                duration=duration,
                place=place,
            ),
        )
        items.append(Item(number, 1, 1, number, media, "2024-05-01T10:00:01+00:00"))
    return items


@pytest.fixture(scope="module")
def album(tmp_path_factory: pytest.TempPathFactory) -> Album:
    blobs = LocalBlobStore(tmp_path_factory.mktemp("data"))
    blobs.prepare()
    result = Album(blobs, make_items(blobs))
    start = time.perf_counter()
    result.html = render_html(STORY, result.items, blobs, album_name=ALBUM, language="pt-br")
    result.seconds["html"] = time.perf_counter() - start
    start = time.perf_counter()
    result.zip = render_markdown_zip(STORY, result.items, blobs, album_name=ALBUM)
    result.seconds["zip"] = time.perf_counter() - start
    return result


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the page's visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._hidden += tag in ("style", "title")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("style", "title")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


def parse(html: bytes) -> _Tags:
    parser = _Tags()
    parser.feed(html.decode("utf-8"))
    return parser


def test_page_is_self_contained_and_links_only_what_the_story_links(album: Album) -> None:
    page = parse(album.html)
    names = {tag for tag, _ in page.tags}
    assert not names & {"script", "link", "iframe", "object", "embed", "base", "form"}
    for tag, attrs in page.tags:
        for name in ("src", "poster", "srcset", "data", "action"):
            if name in attrs:
                assert attrs[name].startswith("data:"), (tag, name, attrs[name][:80])
        if "href" in attrs:
            assert attrs["href"] == FERRY, attrs["href"]  # the one link the story has
    assert not re.search(r"url\(|@import", album.html.decode())
    # Three photos and two video posters, all web JPEGs; both small videos are embedded.
    assert album.html.count(b"data:image/jpeg;base64,") == 5
    assert album.html.count(b'src="data:video/mp4;base64,') == 2


def test_page_names_every_item_with_its_time_and_place(album: Album) -> None:
    text = " ".join("".join(parse(album.html).text).split())
    for label in ("photo 1", "photo 2", "photo 3", "▶ video 4 · 0:04", "▶ video 5 · 0:04"):
        assert label in text
    assert "photo 1 · 2019-08-21 11:21 · Ajuda, Lisbon, Portugal" in text
    assert "Made with photostory" in text
    assert '<html lang="pt-br" dir="ltr">' in album.html.decode()


def test_story_text_and_captions_are_escaped(album: Album) -> None:
    html = album.html.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    assert "<h1>Four cities &amp; a pond</h1>" in html
    assert "Four cities &amp; a pond &lt;b&gt;" in html  # the album name
    assert "Rome &lt;img src=x onerror=alert(1)&gt; &amp; more" in html
    for tag, attrs in parse(album.html).tags:
        assert not [name for name in attrs if name.startswith("on")], tag
    assert 'href="javascript' not in html
    assert "[bad link](javascript:alert(1))" in html  # left as text


def test_markdown_becomes_simple_safe_html() -> None:
    html = page_html(
        "**Day 1** in *Porto* & _Braga_\nnext line\n\n- one\n- two\n  still two\n\n"
        "1. first\n2. second\n\n> quoted\n\n### Later\n\n"
        "`<code>` and [link](https://a.example/x_y_z) and https://b.example/p?q=1&r=2."
    )
    assert html == (
        "<p><strong>Day 1</strong> in <em>Porto</em> &amp; <em>Braga</em><br>next line</p>\n"
        "<ul><li>one</li><li>two still two</li></ul>\n"
        "<ol><li>first</li><li>second</li></ol>\n"
        "<blockquote><p>quoted</p></blockquote>\n"
        "<h3>Later</h3>\n"
        '<p><code>&lt;code&gt;</code> and <a href="https://a.example/x_y_z">link</a> and '
        '<a href="https://b.example/p?q=1&amp;r=2">https://b.example/p?q=1&amp;r=2</a>.</p>'
    )
    # A quote in a URL stays inside the attribute.
    assert page_html('[x](https://e.example/"onmouseover="1)') == (
        '<p><a href="https://e.example/&#34;onmouseover=&#34;1">x</a></p>'
    )
    assert page_html("") == ""


PIECES = [*"ab <>&\"'*_`[]()#->\\\n1. ", "https://x.example/", "javascript:", "onerror="]
MARKDOWNISH = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)
ALLOWED_TAGS = {"p", "br", "strong", "em", "ul", "ol", "li", "blockquote", "h3", "code", "a"}


@given(MARKDOWNISH)
def test_any_markdown_gives_only_our_tags_and_http_links(text: str) -> None:
    tags = parse(page_html(text).encode()).tags
    for tag, attrs in tags:
        assert tag in ALLOWED_TAGS, (tag, text)
        assert set(attrs) <= ({"href"} if tag == "a" else set()), (tag, attrs, text)
        assert tag != "a" or attrs["href"].startswith(("http://", "https://")), (attrs, text)


def test_a_video_too_big_for_the_page_shows_its_poster(
    album: Album, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "MAX_PAGE_VIDEO", 1000)
    html = render_html(
        Story("Ducks", "", (Section("Pond", "Quack.", (4,)),), ""),
        album.items,
        album.blobs,
        album_name="Ducks",
        language=None,
    ).decode()
    assert "data:video" not in html
    assert '<span class="play">▶ video 4 · 0:04</span>' in html
    assert "video not included: too heavy for the page" in html
    assert '<html lang="und"' in html


def test_zip_holds_the_markdown_and_every_picture_it_references(album: Album) -> None:
    with zipfile.ZipFile(io.BytesIO(album.zip)) as archive:
        names = set(archive.namelist())
        story = archive.read("story.md").decode()
        referenced = re.findall(r"\]\((images/[^)]+)\)", story)
        assert set(referenced) == names - {"story.md"}
        assert "![photo 1 — 2019-08-21, Ajuda, Lisbon, Portugal](images/photo-01.jpg)" in story
        assert "[▶ video 4 · 0:04](images/video-04.mp4)" in story
        assert "images/video-05.mov" in names
        assert story.startswith("# Four cities & a pond\n\n*Four cities & a pond <b> · ")
        assert story.index("(video 4).") < story.index("images/video-04.jpg")
        assert story.rstrip().endswith("*Made with photostory*")
        sizes = {n: Image.open(io.BytesIO(archive.read(n))).size for n in names if ".jpg" in n}
    # Upright and downscaled: the Lisbon HEIC is portrait, Seattle's orientation 3 landscape,
    # the rotated iPhone 6 video's poster portrait.
    assert sizes["images/photo-01.jpg"] == (1200, 1600)
    assert sizes["images/photo-02.jpg"] == (1600, 1200)
    assert sizes["images/video-05.jpg"] == (320, 568)


def _members(archive: bytes) -> dict[str, tuple[int, bytes]]:
    """A zip's files: how each is stored and its bytes (not when the zip was made)."""
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return {i.filename: (i.compress_type, opened.read(i)) for i in opened.infolist()}


def test_files_written_as_made_are_the_export_from_one_set_of_pictures(
    album: Album, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder command's page and zip: the bot's, but each picture made once for both, and
    the zip written into its file as it is made rather than held whole (videos inside)."""
    made: Counter[str] = Counter()
    web_image, poster = export.web_image, export._poster

    def counted_web_image(path: str | os.PathLike[str], **options: Any) -> bytes:
        made[Path(path).name] += 1
        return web_image(path, **options)

    def counted_poster(path: Path, look: Any) -> bytes:
        made[path.name] += 1
        return poster(path, look)

    monkeypatch.setattr(export, "web_image", counted_web_image)
    monkeypatch.setattr(export, "_poster", counted_poster)
    files = StoryFiles(STORY, album.items, album.blobs, album_name=ALBUM, language="pt-br")
    page, archive = tmp_path / "story.html", tmp_path / "story.zip"
    with page.open("wb") as target:
        files.write_page(target)
    tracemalloc.start()
    try:
        with archive.open("wb") as target:
            files.write_markdown_zip(target)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert page.read_bytes() == album.html
    assert _members(archive.read_bytes()) == _members(album.zip)
    assert sorted(made.values()) == [1] * 5  # three photos and two posters, once each
    # The pictures were made for the page: the zip's writing holds a small part of it at most.
    assert peak < archive.stat().st_size / 4, (peak, archive.stat().st_size)


def test_export_file_names_are_ascii_slugs() -> None:
    assert export_file_name("Lisboa — Verão 2019!", "html") == "lisboa-verao-2019.html"
    assert export_file_name("../../etc/passwd", ".zip") == "etc-passwd.zip"
    assert export_file_name("Путешествие", "zip") == "story.zip"
    assert export_file_name("CON", "html") == "con-story.html"
    assert export_file_name("x" * 200, "html") == "x" * 60 + ".html"


def test_page_renders_in_chromium_on_a_phone_and_a_desktop(album: Album, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the export test opens the page in Debian's Chromium. "
            "`make test` installs it (scripts/test-system-deps); or: sudo apt-get install -y chromium"
        )
    path = tmp_path / "story.html"
    path.write_bytes(album.html)
    ARTIFACTS.mkdir(exist_ok=True)
    visible = [STORY.title, *(s.heading for s in STORY.sections), *SECTION_PHRASES]
    start = time.perf_counter()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            pages = {}
            for name, width, height in (("phone", 390, 844), ("desktop", 1280, 900)):
                page = pages[name] = browser.new_page(viewport={"width": width, "height": height})
                page.goto(path.as_uri(), wait_until="load")
                assert page.evaluate(IMAGES_LOADED) == [True, True, True], name
                assert page.evaluate(FITS_WIDTH), f"horizontal scroll on the {name}"
                assert page.locator("h1").inner_text() == STORY.title
                for text in visible:
                    assert page.get_by_text(text).first.is_visible(), (name, text)
                page.evaluate(SETTLED)
                assert page.evaluate(VIDEO_ERRORS) == [None, None], name
            # Chrome's video controls show a loading spinner for about a second after load.
            pages["desktop"].wait_for_timeout(1200)
            for name, page in pages.items():
                page.screenshot(path=ARTIFACTS / f"export-{name}.png", full_page=True)
        finally:
            browser.close()
    seconds = time.perf_counter() - start
    print(f"browser {seconds:.1f} s, render {album.seconds}, html {len(album.html):,} bytes")


def _picture_sides(html: str) -> list[int]:
    return [max(int(w), int(h)) for w, h in re.findall(r'<img src="data:image/jpeg;base64,[^"]+" width="(\d+)" height="(\d+)"', html)]  # fmt: skip


def test_a_page_too_heavy_to_send_drops_its_videos_then_shrinks_its_pictures(album: Album) -> None:
    full = len(album.html)
    assert "data:video" in album.html.decode()
    without_videos = render_html(
        STORY, album.items, album.blobs, album_name=ALBUM, language="pt-br", max_bytes=full - 1
    )
    assert len(without_videos) < full and "data:video" not in without_videos.decode()
    assert "video not included: too heavy for the page" in without_videos.decode()
    # the same pictures (the videos' first frames now shown as pictures too)
    assert not Counter(_picture_sides(album.html.decode())) - Counter(
        _picture_sides(without_videos.decode())
    )

    pictures_only = len(without_videos)
    limit = int(pictures_only * 0.5)
    smaller = render_html(
        STORY, album.items, album.blobs, album_name=ALBUM, language="pt-br", max_bytes=limit
    )
    assert len(smaller) <= limit
    sides = _picture_sides(smaller.decode())
    assert len(sides) == len(_picture_sides(without_videos.decode()))  # every picture is there
    assert export.SMALLEST_SIDE <= max(sides) < export.WEB_MAX_SIDE


def test_a_page_that_cannot_fit_keeps_its_smallest_pictures(album: Album) -> None:
    page = render_html(
        STORY, album.items, album.blobs, album_name=ALBUM, language=None, max_bytes=10_000
    )
    assert len(page) > 10_000  # the caller tells the traveller it is too large
    assert max(_picture_sides(page.decode())) <= export.SMALLEST_SIDE


def test_a_zip_too_heavy_to_send_drops_its_videos_then_shrinks_its_pictures(album: Album) -> None:
    pictures_only = len(
        render_markdown_zip(
            STORY, album.items, album.blobs, album_name=ALBUM, max_bytes=len(album.zip) - 1
        )
    )
    limit = int(pictures_only * 0.5)
    archive = render_markdown_zip(
        STORY, album.items, album.blobs, album_name=ALBUM, max_bytes=limit
    )
    assert len(archive) <= limit
    with zipfile.ZipFile(io.BytesIO(archive)) as smaller:
        names = smaller.namelist()
        assert not any(n.endswith((".mp4", ".mov")) for n in names)
        with Image.open(io.BytesIO(smaller.read("images/photo-01.jpg"))) as picture:
            assert export.SMALLEST_SIDE <= max(picture.size) < export.WEB_MAX_SIDE


ARABIC = Story(
    title="أسبوع في لشبونة",
    intro="مشينا كثيرًا وأكلنا أكثر.",
    sections=(Section("الصباح في أجودا", "صعدنا قبل الحر.", (1, 2)),),
    closing="إلى اللقاء يا لشبونة.",
)


def test_an_arabic_story_reads_right_to_left_in_chromium(album: Album, tmp_path: Path) -> None:
    """An Arabic page, labelled in Arabic, laid out right to left by the browser itself."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: sudo apt-get install -y chromium")
    with i18n.using("ar"):  # the chat's language: the page's own words
        html = render_html(ARABIC, album.items, album.blobs, album_name=ALBUM, language="ar")
    text = html.decode()
    assert '<html lang="ar" dir="rtl">' in text
    assert "صُنع باستخدام photostory" in text and "Made with photostory" not in text
    path = tmp_path / "story-ar.html"
    path.write_bytes(html)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(path.as_uri(), wait_until="load")
            direction = "(e) => getComputedStyle(e).direction"
            assert page.locator("html").evaluate(direction) == "rtl"
            assert page.locator("h1").evaluate(direction) == "rtl"
            # Right to left for real: the heading's text hugs the right edge of the column.
            box = page.locator("h1").evaluate(
                "(e) => { const r = document.createRange(); r.selectNodeContents(e);"
                " const t = r.getBoundingClientRect(), b = e.getBoundingClientRect();"
                " return [t.left - b.left, b.right - t.right]; }"
            )
            assert box[1] < 2 < box[0], box
            page.evaluate(SETTLED)
            page.screenshot(path=ARTIFACTS / "export-arabic.png", full_page=True)
        finally:
            browser.close()
