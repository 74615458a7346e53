"""Places: the real media's coordinates name sensible places, offline; nowhere gives None."""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.media.exif import read_photo_facts
from bot.media.places import Place, describe_place, nearest_place
from bot.media.video import read_video_facts

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    ("file", "country", "country_code", "region"),
    [
        ("lisbon_iphone_xr.heic", "Portugal", "PT", "Lisbon"),
        ("missouri_iphone11promax.heic", "United States", "US", "Missouri"),
        ("rome_iphone4.jpg", "Italy", "IT", "Lazio"),
        ("seattle_iphone5_orientation3.jpg", "United States", "US", "Washington"),
        ("bc_canada_olympus_fe230.jpg", "Canada", "CA", "British Columbia"),
        ("slovakia_nikon_d5000_gps_seconds_zero_denominator.jpg", "Slovakia", "SK", None),
        ("israel_iphone6_with_gps.mov", "Israel", "IL", "Tel Aviv"),
        ("netherlands_ducks_with_gps.mp4", "Netherlands", "NL", "Overijssel"),
    ],
)
def test_media_location_names_its_country_and_region(
    file: str, country: str, country_code: str, region: str | None
) -> None:
    path = DATA / file
    facts = read_video_facts(path) if path.suffix in (".mov", ".mp4") else read_photo_facts(path)
    assert facts.latitude is not None and facts.longitude is not None

    place = nearest_place(facts.latitude, facts.longitude)

    assert place is not None
    assert (place.country, place.country_code) == (country, country_code)
    if region is not None:
        assert place.region == region
    assert place.city
    assert place.distance_km < 25
    assert place.label().endswith(country)


def test_lisbon_photo_is_labelled_with_its_district() -> None:
    place = nearest_place(38.699539, -9.207747)

    assert place is not None
    assert place.label() == "Ajuda, Lisbon, Portugal"


@pytest.mark.parametrize(
    ("latitude", "longitude"),
    [
        (0.0, 0.0),  # Null Island: the nearest town is Takoradi, Ghana, ~570 km away
        (-45.0, -140.0),  # the middle of the South Pacific
        (math.nan, 10.0),
        (10.0, math.inf),
        (91.0, 0.0),
        (0.0, -180.5),
    ],
)
def test_nowhere_gives_no_place(latitude: float, longitude: float) -> None:
    assert nearest_place(latitude, longitude) is None


def test_max_distance_is_a_parameter() -> None:
    assert nearest_place(0.0, 0.0, max_km=1000) is not None
    assert nearest_place(38.699539, -9.207747, max_km=0.01) is None


@pytest.mark.parametrize(
    ("place", "label"),
    [
        (Place("Ajuda", "Lisbon", "Portugal", "PT", 38.7, -9.2), "Ajuda, Lisbon, Portugal"),
        (Place("Lisbon", "Lisbon", "Portugal", "PT", 38.7, -9.1), "Lisbon, Portugal"),
        (Place("Singapore", None, "Singapore", "SG", 1.3, 103.8), "Singapore"),
        (Place(None, "", "Ghana", "GH", 4.9, -1.8), "Ghana"),
    ],
)
def test_label_skips_empty_and_repeated_parts(place: Place, label: str) -> None:
    assert place.label() == label


async def test_describe_place_runs_off_the_event_loop() -> None:
    lisbon, rome = await asyncio.gather(
        describe_place(38.699539, -9.207747), describe_place(41.853, 12.488833)
    )

    assert lisbon is not None and lisbon.country == "Portugal"
    assert rome is not None and rome.city == "Rome"


def test_lookups_from_many_threads_agree() -> None:
    points = [(38.699539, -9.207747), (39.051344, -94.288772), (41.853, 12.488833)] * 8
    with ThreadPoolExecutor(max_workers=8) as pool:
        places = list(pool.map(lambda point: nearest_place(*point), points))

    assert all(place is not None for place in places)
    assert [place.city for place in places if place] == [
        "Ajuda",
        "Blue Springs",
        "Rome",
    ] * 8
