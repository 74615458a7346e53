"""Capture facts of a photo from its EXIF: when, where, which camera, displayed size.

EXIF in the wild is odd: blank dates, zero denominators, GPS blocks with no coordinates, strings
padded with NULs. Each odd value gives None for its own field; nothing here raises on EXIF.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

from PIL import Image

from bot.media.facts import camera_label, checked_location
from bot.media.images import displayed_size, open_image
from storage.records import MediaFacts

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_MAKE, _MODEL, _DATETIME = 271, 272, 306
# (date tag, offset tag, sub-second tag), best first: when the shutter fired, when the picture
# was digitised, and last the file's modification time (an editor rewrites that one).
_DATE_TAGS = (
    (36867, 36881, 37521),  # DateTimeOriginal, OffsetTimeOriginal, SubSecTimeOriginal
    (36868, 36882, 37522),  # DateTimeDigitized, OffsetTimeDigitized, SubSecTimeDigitized
    (_DATETIME, 36880, 37520),  # DateTime, OffsetTime, SubSecTime
)
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON, _GPS_ALT_REF, _GPS_ALT = 1, 2, 3, 4, 5, 6

_DATE = re.compile(
    r"(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")

_T = TypeVar("_T")


def read_photo_facts(path: str | os.PathLike[str]) -> MediaFacts:
    """Read a photo's capture facts from its EXIF; MediaRejected only if it is not an image."""
    with open_image(path) as image:
        exif = _call(image.getexif, Image.Exif())
        exif_ifd: dict[int, Any] = _call(lambda: exif.get_ifd(_EXIF_IFD), {})
        gps_ifd: dict[int, Any] = _call(lambda: exif.get_ifd(_GPS_IFD), {})
        width, height = displayed_size(image)
    taken_at = _taken_at(exif, exif_ifd)
    location = _location(gps_ifd)
    latitude, longitude, altitude = location if location else (None, None, None)
    return MediaFacts(
        taken_at=taken_at,
        time_source="exif" if taken_at else None,
        latitude=latitude,
        longitude=longitude,
        altitude=altitude,
        camera=camera_label(_text(exif.get(_MAKE)), _text(exif.get(_MODEL))),
        width=width,
        height=height,
    )


def parse_exif_datetime(
    value: object, offset: object = None, subsec: object = None
) -> datetime | None:
    """An EXIF "YYYY:MM:DD HH:MM:SS" as a datetime, aware when a valid offset is given."""
    text = _text(value)
    match = _DATE.fullmatch(text) if text else None
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction = match.group(7) or _digits(subsec)
    try:
        moment = datetime(year, month, day, hour, minute, second)
    except ValueError:  # "0000:00:00 00:00:00" and friends
        return None
    if fraction:
        moment = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    zone = _offset(match.group(8)) or _offset(_text(offset))
    return moment.replace(tzinfo=zone) if zone else moment


def _taken_at(exif: Mapping[int, Any], exif_ifd: Mapping[int, Any]) -> datetime | None:
    """The best capture time: DateTimeOriginal, then DateTimeDigitized, then DateTime."""
    for date_tag, offset_tag, subsec_tag in _DATE_TAGS:
        # Dates belong in the Exif IFD (DateTime in IFD0), but some writers mix them up.
        value = exif_ifd.get(date_tag) or exif.get(date_tag)
        moment = parse_exif_datetime(
            value,
            exif_ifd.get(offset_tag) or exif.get(offset_tag),
            exif_ifd.get(subsec_tag) or exif.get(subsec_tag),
        )
        if moment is not None:
            return moment
    return None


def _location(gps: Mapping[int, Any]) -> tuple[float, float, float | None] | None:
    """Signed decimal latitude, longitude and altitude from a GPS IFD, or None."""
    latitude = _degrees(gps.get(_GPS_LAT))
    longitude = _degrees(gps.get(_GPS_LON))
    if latitude is None or longitude is None:
        return None
    if _ref(gps.get(_GPS_LAT_REF)) == "S":
        latitude = -latitude
    if _ref(gps.get(_GPS_LON_REF)) == "W":
        longitude = -longitude
    altitude = _number(gps.get(_GPS_ALT))
    if altitude is not None:
        altitude = abs(altitude)
        if _altitude_ref(gps.get(_GPS_ALT_REF)) == 1:  # 1 = below sea level
            altitude = -altitude
    return checked_location(latitude, longitude, altitude)


def _degrees(value: object) -> float | None:
    """Unsigned decimal degrees from EXIF (degrees, minutes, seconds) rationals."""
    if isinstance(value, (tuple, list)):
        parts = [_number(part) for part in value[:3]]
        if not parts or any(part is None for part in parts):
            return None
        # A 0/0 rational (Pillow gives NaN) stands for "not used": count it as 0. Nikon writes
        # degrees + decimal minutes + 0/0 seconds.
        numbers = [0.0 if math.isnan(part) else abs(part) for part in parts if part is not None]
        numbers += [0.0] * (3 - len(numbers))
        degrees, minutes, seconds = numbers
        return degrees + minutes / 60 + seconds / 3600
    number = _number(value)  # a few writers store plain decimal degrees
    return None if number is None or math.isnan(number) else abs(number)


def _number(value: object) -> float | None:
    """A rational, int or float as a float (NaN kept for 0/0); None for anything else."""
    if isinstance(value, (str, bytes)) or value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return None if math.isinf(number) else number


def _ref(value: object) -> str:
    """A GPS reference letter ("N", "S", "E", "W"), upper case; "" when missing."""
    text = _text(value)
    return text[:1].upper() if text else ""


def _altitude_ref(value: object) -> int:
    """GPSAltitudeRef as 0 (above sea level) or 1 (below); Pillow gives bytes or an int."""
    if isinstance(value, bytes):
        return value[0] if value else 0
    if isinstance(value, int):
        return value
    return 0


def _offset(text: str | None) -> timezone | None:
    """A "+03:00" / "-0500" / "Z" offset as a timezone; None when absent or impossible."""
    if not text:
        return None
    if text == "Z":
        return UTC
    match = _OFFSET.fullmatch(text)
    if match is None:
        return None
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3))
    if hours > 14 or minutes >= 60:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if sign == "-" else delta)


def _text(value: object) -> str | None:
    """An EXIF string without NUL padding and blanks; None when empty or not text."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").strip()
    return text or None


def _digits(value: object) -> str | None:
    """The digits of a SubSecTime tag ("123"), or None."""
    text = _text(value)
    return text if text and text.isdigit() else None


def _call(read: Callable[[], _T], default: _T) -> _T:
    """Run one EXIF read; on any error give the default (Pillow raises many types on bad EXIF)."""
    try:
        return read()
    except Exception:
        return default
