"""Helpers for reading capture facts (`storage.records.MediaFacts`): locations and camera names.

`bot.media.exif` fills the facts from a photo, `bot.media.video` from a video.
"""

from __future__ import annotations

import math
import re


def checked_location(
    latitude: float | None, longitude: float | None, altitude: float | None = None
) -> tuple[float, float, float | None] | None:
    """The location if it is a real place: in range, finite, and not the (0, 0) placeholder."""
    if latitude is None or longitude is None:
        return None
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        return None
    if abs(latitude) > 90 or abs(longitude) > 180:
        return None
    # (0, 0) is what devices write when they have no fix ("Null Island"), not a place.
    if abs(latitude) < 1e-7 and abs(longitude) < 1e-7:
        return None
    if altitude is not None and not math.isfinite(altitude):
        altitude = None
    return latitude, longitude, altitude


# Company words that makers put in the EXIF Make tag but nobody says ("NIKON CORPORATION").
_MAKE_SUFFIX = re.compile(
    r"[\s,]+(imaging|optical|corporation|corp\b|co\b|company|inc\b|ltd\b|camera ag|gmbh)\W*.*$",
    re.IGNORECASE,
)
# Brands written in capitals on purpose; everything else shouting gets title case.
_ACRONYMS = {"HTC", "LG", "ZTE", "BQ", "DJI", "OPPO", "ASUS", "TCL", "HP", "BLU", "AGFA"}
_MAKE_ALIASES = {"LGE": "LG", "HMD GLOBAL": "Nokia"}


def camera_label(make: str | None, model: str | None) -> str | None:
    """A readable camera name from make and model: "Apple iPhone XR", "Nikon D5000"."""
    raw_make = _clean_text(make)
    raw_model = _clean_text(model)
    if raw_make is None:
        return raw_model
    brand = _brand(raw_make)
    if raw_model is None:
        return brand
    # Models often repeat the make ("NIKON D5000", "Canon PowerShot SX60 HS"): say it once.
    for prefix in {brand, *raw_make.split()}:
        if raw_model.lower().startswith(prefix.lower() + " "):
            raw_model = raw_model[len(prefix) :].strip()
            break
        if raw_model.lower() == prefix.lower():
            return brand
    return f"{brand} {raw_model}"


def _brand(make: str) -> str:
    """The brand in a Make tag, without company words and without shouting."""
    alias = _MAKE_ALIASES.get(make.upper())
    if alias:
        return alias
    brand = _MAKE_SUFFIX.sub("", make).strip() or make
    alias = _MAKE_ALIASES.get(brand.upper())
    if alias:
        return alias
    if brand.upper() in _ACRONYMS:
        return brand.upper()
    if brand.isupper() or brand.islower():
        return " ".join(word.capitalize() for word in brand.split())
    return brand


def _clean_text(value: object) -> str | None:
    """A metadata string without padding NULs and blanks; None when empty or not text."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    text = " ".join(value.replace("\x00", " ").split())
    return text or None
