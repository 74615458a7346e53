"""What we know about each Gemini model family: its explicit-cache minimum and list prices by date.

Plain data, checked against Google's pages (see README, "Configuration"); the settings take their
defaults from here and the operator's variables override them. A model not in these tables gets
the conservative cache minimum and no list price."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

# The smallest explicit cache Gemini accepts, in tokens (Google's caching page, 2026-10-13).
# An unknown model gets the largest minimum any current model has: a cache it would refuse
# costs a failed request per album.
CONSERVATIVE_CACHE_MIN_TOKENS = 4096
CACHE_MIN_TOKENS = {
    "gemini-4": 4096,
    "gemini-3.8-flash": 4096,
    "gemini-3.7-flash": 4096,
    "gemini-3.6-flash": 4096,
    "gemini-3.5-flash": 4096,
    "gemini-3.1-pro": 4096,
    "gemini-2.5-flash": 2048,
    "gemini-2.5-pro": 2048,
}


@dataclass(frozen=True)
class ListPrice:
    """USD per million tokens from `since` on (inclusive), until the next entry of its model."""

    since: date
    input: float
    cached_input: float
    output: float


_ALWAYS = date(2000, 1, 1)
# Google's pricing page (read 2026-10-07): 3.8 Flash is at half price through 2026-12-31.
# Cached input after 2026 is not on the page: one tenth of the input price, Google's usual
# ratio (inferred). 3.6 and 3.7 Flash share 3.8's introductory price (third-party pages).
_FLASH_INTRODUCTORY = (
    ListPrice(_ALWAYS, 0.75, 0.075, 3.75),
    ListPrice(date(2027, 1, 1), 1.50, 0.15, 7.50),
)
LIST_PRICES: dict[str, tuple[ListPrice, ...]] = {
    "gemini-3.8-flash": _FLASH_INTRODUCTORY,
    "gemini-3.7-flash": _FLASH_INTRODUCTORY,
    "gemini-3.6-flash": _FLASH_INTRODUCTORY,
    "gemini-3.5-flash": (ListPrice(_ALWAYS, 1.50, 0.15, 9.00),),
    "gemini-3.5-flash-lite": (ListPrice(_ALWAYS, 0.30, 0.03, 2.50),),
    "gemini-3.1-pro": (ListPrice(_ALWAYS, 2.00, 0.20, 12.00),),  # prompts up to 200k tokens
    "gemini-2.5-flash": (ListPrice(_ALWAYS, 0.30, 0.03, 2.50),),
    "gemini-2.5-pro": (ListPrice(_ALWAYS, 1.25, 0.125, 10.00),),  # prompts up to 200k tokens
}


def family(model: str, known: Iterable[str]) -> str | None:
    """The known family a model name belongs to: 'gemini-3.8-flash-preview-09' is 3.8 Flash.

    The longest name that the model equals or continues with a '-' wins, so 3.5 Flash-Lite is
    not taken for 3.5 Flash."""
    name = model.strip().lower().removeprefix("models/")
    matches = [k for k in known if name == k or name.startswith(k + "-")]
    return max(matches, key=len) if matches else None


def cache_min_tokens(model: str) -> int:
    """The model's explicit-cache minimum, or the conservative one for a model we do not know."""
    known = family(model, CACHE_MIN_TOKENS)
    return CACHE_MIN_TOKENS[known] if known else CONSERVATIVE_CACHE_MIN_TOKENS


def list_price(model: str, on: date) -> ListPrice | None:
    """The model's list price on this day, or None for a model we have no price for."""
    known = family(model, LIST_PRICES)
    if known is None:
        return None
    current = [p for p in LIST_PRICES[known] if p.since <= on]
    return current[-1] if current else None


def next_list_price(model: str, on: date) -> ListPrice | None:
    """The model's next announced list price after this day, if one is announced."""
    known = family(model, LIST_PRICES)
    later = [p for p in LIST_PRICES[known] if p.since > on] if known else []
    return later[0] if later else None
