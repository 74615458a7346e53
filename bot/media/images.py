"""Checking photos we are sent and turning them into small upright JPEGs.

Orientation, the trap that matters here: JPEG, PNG, WebP and AVIF store the picture as the
sensor saw it plus an EXIF Orientation tag, so we rotate them ourselves. Two decoders rotate on
their own, and rotating again would turn a portrait photo on its side:
- HEIC/HEIF through pillow-heif: libheif applies the container's irot/imir, and pillow-heif
  resets the tag to 1 at open (the original stays in `info["original_orientation"]`).
- TIFF in Pillow 13: open() already reports the rotated size while the tag still says 6, and
  load() rotates and deletes the tag.
So the tag is read after load() (when it is still there, it is ours to apply), HEIF is never
rotated, and the displayed size of an unloaded TIFF comes from its own width/length tags.
"""

from __future__ import annotations

import io
import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

import pillow_heif
from PIL import Image, UnidentifiedImageError

from bot.errors import MediaRejected
from bot.i18n import N_

DEFAULT_MAX_PIXELS = 64_000_000

# Formats Pillow may open for us. Anything else it could open (EPS, PSD, ICO...) is refused:
# the fewer decoders see untrusted files, the better. MPO (camera JPEGs carrying a second
# picture) comes out of the JPEG opener and is reported as JPEG.
_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF", "AVIF", "GIF", "TIFF", "BMP")
_MIME = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "HEIF": "image/heif",
    "AVIF": "image/avif",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
}
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_ISOBMFF_IMAGE_BRANDS = _HEIC_BRANDS | {b"mif1", b"msf1", b"avif", b"avis"}

# What decoders raise on damaged input, beyond OSError: Pillow plugins use SyntaxError and
# struct.error, pillow-heif uses ValueError and RuntimeError.
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    IndexError,
    TypeError,
    KeyError,
    ZeroDivisionError,
    RuntimeError,
)

# EXIF Orientation -> the transpose that makes the picture upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_QUALITIES = (85, 75, 65, 55)

_CORRUPT = N_("This file looks damaged: I could not read it as an image.")
_UNSUPPORTED = N_(
    "This file is not a photo I can take: please send a JPEG, PNG, WebP or HEIC image."
)
_TOO_LARGE = N_("This picture is too large for me to open: please send a smaller version.")

_register_lock = threading.Lock()
_registered = False


@dataclass(frozen=True)
class ImageInfo:
    """What a cheap look at an image file tells: format, MIME type, displayed size."""

    format: str
    mime_type: str
    width: int
    height: int


@dataclass(frozen=True)
class ModelImage:
    """An upright RGB JPEG small enough to send to the model."""

    jpeg: bytes
    width: int
    height: int


def register_heif() -> None:
    """Teach Pillow to open HEIC/HEIF (once per process; later calls do nothing)."""
    global _registered
    with _register_lock:
        if _registered:
            return
        # Embedded thumbnails, depth maps and auxiliary images are never used here; skipping
        # them saves memory, and without thumbnails pillow-heif's draft() never swaps the photo
        # for a 320-pixel preview.
        pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
        _registered = True


@contextmanager
def open_image(
    path: str | os.PathLike[str], max_pixels: int | None = None
) -> Iterator[Image.Image]:
    """Open an image lazily (header only), refusing what we do not take with MediaRejected."""
    register_heif()
    with open(path, "rb") as file:  # a missing file is our bug, not the user's: let it raise
        if os.fstat(file.fileno()).st_size == 0:
            raise MediaRejected(_CORRUPT, reason="corrupt")
        try:
            image = Image.open(file, formats=_FORMATS)
        except Image.DecompressionBombError as exc:
            raise MediaRejected(_TOO_LARGE, reason="too_large") from exc
        except UnidentifiedImageError as exc:
            # A file that starts like a JPEG or PNG but does not parse is damaged, not alien.
            if _looks_like_image(file):
                raise MediaRejected(_CORRUPT, reason="corrupt") from exc
            raise MediaRejected(_UNSUPPORTED, reason="unsupported") from exc
        except _DECODE_ERRORS as exc:
            raise MediaRejected(_CORRUPT, reason="corrupt") from exc
        with image:
            width, height = image.size
            if width <= 0 or height <= 0:
                raise MediaRejected(_CORRUPT, reason="corrupt")
            if max_pixels is not None and width * height > max_pixels:
                raise MediaRejected(_TOO_LARGE, reason="too_large")
            if image.format in ("HEIF", "AVIF") and _isobmff_truncated(file):
                # libheif paints missing tiles green instead of failing: check the boxes.
                raise MediaRejected(_CORRUPT, reason="corrupt")
            yield image


def probe_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Check from the header that a file is an image we take; raises MediaRejected if not."""
    with open_image(path, max_pixels) as image:
        fmt = "JPEG" if image.format == "MPO" else str(image.format)
        mime = _MIME[fmt]
        if fmt == "HEIF" and _major_brand(path) in _HEIC_BRANDS:
            mime = "image/heic"
        width, height = displayed_size(image)
        return ImageInfo(format=fmt, mime_type=mime, width=width, height=height)


def check_decodes(
    path: str | os.PathLike[str], max_side: int = 1024, max_pixels: int = DEFAULT_MAX_PIXELS
) -> None:
    """Decode the picture (at reduced scale where the format allows) to prove it is whole.

    Cheap enough to run before acknowledging a photo (2 ms for a Telegram photo), so a damaged
    file is answered at once while the model's copy is made later. HEIF is not decoded here:
    libheif paints missing tiles instead of failing, and open_image already checked its boxes.
    """
    with open_image(path, max_pixels) as image:
        if image.format in ("HEIF", "AVIF"):
            return
        _decode_smaller(image, max_side)
        try:
            image.load()
        except Image.DecompressionBombError as exc:
            raise MediaRejected(_TOO_LARGE, reason="too_large") from exc
        except _DECODE_ERRORS as exc:
            raise MediaRejected(_CORRUPT, reason="corrupt") from exc


def prepare_for_model(
    path: str | os.PathLike[str],
    max_side: int = 1024,
    max_bytes: int = 150_000,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ModelImage:
    """Decode, turn upright, shrink and re-encode a photo as a JPEG of at most `max_bytes`."""
    upright, _ = _load_upright(path, max_side, max_pixels)
    image = upright
    while True:
        for quality in _QUALITIES:
            data = _encode(image, quality)
            if len(data) <= max_bytes:
                return ModelImage(jpeg=data, width=image.width, height=image.height)
        if max(image.size) <= 32:
            raise ValueError(f"max_bytes={max_bytes} is too small for any JPEG")
        # Still too big at the lowest quality: give up pixels rather than more quality,
        # resampling from the first upright picture each time so blur does not pile up.
        image = _fit(upright, max(32, int(max(image.size) * 0.8)))


def web_image(
    path: str | os.PathLike[str],
    max_side: int = 1600,
    quality: int = 80,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> bytes:
    """An upright JPEG for web pages, keeping the colour profile so browsers show true colours."""
    image, icc_profile = _load_upright(path, max_side, max_pixels)
    return _encode(image, quality, progressive=True, icc_profile=icc_profile)


def orientation(image: Image.Image) -> int:
    """The EXIF Orientation tag (1-8) of an opened image; 1 when absent or nonsense."""
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception:  # Pillow raises many types on broken EXIF; orientation is optional
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def displayed_size(image: Image.Image) -> tuple[int, int]:
    """Width and height of an opened (not yet loaded) image as it should be shown."""
    if image.format == "HEIF":
        return image.size
    width, height = image.size
    if image.format == "TIFF":  # Pillow 13 already swapped image.size: start from the tags
        tags = getattr(image, "tag_v2", {})
        stored_width, stored_height = tags.get(256), tags.get(257)
        if isinstance(stored_width, int) and isinstance(stored_height, int):
            width, height = stored_width, stored_height
    return (height, width) if orientation(image) in (5, 6, 7, 8) else (width, height)


def _load_upright(
    path: str | os.PathLike[str], max_side: int, max_pixels: int
) -> tuple[Image.Image, bytes | None]:
    """Decode at reduced size where the format allows, convert to RGB, shrink, turn upright."""
    with open_image(path, max_pixels) as image:
        icc = image.info.get("icc_profile") if image.mode in ("RGB", "RGBA") else None
        _decode_smaller(image, max_side)
        try:
            image.load()
            # After load(): a decoder that rotates by itself has removed the tag by now.
            # HEIF is upright whatever its tag says (see the module docstring).
            transpose = None if image.format == "HEIF" else _UPRIGHT.get(orientation(image))
            rgb = _to_rgb(image)
        except Image.DecompressionBombError as exc:
            raise MediaRejected(_TOO_LARGE, reason="too_large") from exc
        except _DECODE_ERRORS as exc:
            raise MediaRejected(_CORRUPT, reason="corrupt") from exc
        # Shrink before rotating: same result, and the rotation copies the small picture only.
        rgb = _fit(rgb, max_side)
        if transpose is not None:
            rgb = rgb.transpose(transpose)
        if rgb is image:  # closing the file would take the pixels with it
            rgb = image.copy()
    return rgb, icc if isinstance(icc, bytes) and icc else None


def _decode_smaller(image: Image.Image, max_side: int) -> None:
    """Before load(): let libjpeg decode at 1/2, 1/4 or 1/8 scale when `max_side` allows, so a
    12 MP photo never fully lands in memory. draft() keeps the result at least as large as asked;
    other formats decode whole."""
    if image.format in ("JPEG", "MPO"):
        scale = max_side / max(image.size)
        if scale < 1:
            image.draft("RGB", (_ceil(image.width * scale), _ceil(image.height * scale)))


def _to_rgb(image: Image.Image) -> Image.Image:
    """The picture as 8-bit RGB; transparency is flattened on white."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        return _to_8bit(image).convert("RGB")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _to_8bit(image: Image.Image) -> Image.Image:
    """Grey 16-bit, 32-bit or float pixels scaled into 0-255 (a plain convert would clip)."""
    wide = image.convert("F") if image.mode == "F" else image.convert("I")
    high = wide.getextrema()[1]
    assert isinstance(high, (int, float))  # one band, so getextrema gives two numbers
    if wide.mode == "F" and high <= 1.0:
        factor = 255.0
    elif high > 255:
        factor = 255.0 / 65535.0 if high <= 65535 else 255.0 / float(high)
    else:
        factor = 1.0
    return wide.point(lambda value: value * factor).convert("L")


def _fit(image: Image.Image, max_side: int) -> Image.Image:
    """The image shrunk so its long side is at most `max_side` (never enlarged)."""
    long_side = max(image.size)
    if long_side <= max_side:
        return image
    scale = max_side / long_side
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # BILINEAR after libjpeg's draft scaling (and reduce() for large factors): at these
    # factors no softer than LANCZOS to the model, for a third of the CPU (10 ms against 22 ms
    # for a Telegram photo, 1280 to 1024 px).
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _encode(
    image: Image.Image, quality: int, progressive: bool = False, icc_profile: bytes | None = None
) -> bytes:
    """JPEG bytes with no EXIF (so no location) and, unless given, no colour profile."""
    buffer = io.BytesIO()
    options: dict[str, object] = {"quality": quality, "optimize": True, "progressive": progressive}
    if icc_profile is not None:
        options["icc_profile"] = icc_profile
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def _ceil(value: float) -> int:
    """Round up to a whole pixel, at least one."""
    return max(1, -int(-value // 1))


def _looks_like_image(file: IO[bytes]) -> bool:
    """Whether the file starts like one of the formats we take (so it is damaged, not alien)."""
    file.seek(0)
    head = file.read(32)
    return (
        head.startswith((b"\xff\xd8", b"\x89PNG", b"GIF8", b"II*\x00", b"MM\x00*", b"BM"))
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
        or (head[4:8] == b"ftyp" and head[8:12] in _ISOBMFF_IMAGE_BRANDS)  # not an MP4 video
    )


def _major_brand(path: str | os.PathLike[str]) -> bytes:
    """The major brand of an ISO-BMFF file (b"heic", b"mif1"...), or b"" if there is none."""
    with open(path, "rb") as file:
        head = file.read(12)
    return head[8:12] if head[4:8] == b"ftyp" else b""


def _isobmff_truncated(file: IO[bytes]) -> bool:
    """Whether a top-level box of an ISO-BMFF file (HEIF, AVIF) runs past the end of the file."""
    size = os.fstat(file.fileno()).st_size
    position = 0
    while position + 8 <= size:
        file.seek(position)
        box_size, kind = struct.unpack(">I4s", file.read(8))
        header = 8
        if box_size == 1:
            large = file.read(8)
            if len(large) < 8:
                return True
            (box_size,) = struct.unpack(">Q", large)
            header = 16
        elif box_size == 0:  # "to the end of the file"
            return False
        if box_size < header:
            return False  # not a box at all: a trailer, which is none of our business
        if position + box_size > size:
            # Only the boxes holding the picture count; junk after them is a trailer, not a cut.
            return kind in (b"meta", b"mdat", b"idat")
        position += box_size
    return False
