"""Every setting the bot reads is in .env.example and in README's configuration tables, and
nothing else is: adding a setting to bot/config.py without its two lines fails here."""

from __future__ import annotations

import re
from pathlib import Path

from bot.config import declared

ROOT = Path(__file__).resolve().parent.parent
# Variables in .env.example that the bot itself does not read.
NOT_THE_BOTS = {"BOT_DOMAIN"}  # compose.yaml's Caddy only
_EXAMPLE_LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]+)=(.*)$")
_TABLE_HEADER = "| variable | default | meaning |"


def _names() -> set[str]:
    return {d.env for _, d in declared()}


def _fallbacks() -> set[str]:
    return {name for _, d in declared() for name in d.also}


def _example() -> dict[str, str | None]:
    """.env.example's variables: the value of a line that sets one, None for a commented one."""
    found: dict[str, str | None] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if match := _EXAMPLE_LINE.match(line):
            commented, name, value = match.groups()
            found[name] = None if commented else value.strip()
    return found


def _readme_table_variables() -> set[str]:
    """The variables named in the first column of README's configuration tables."""
    names: set[str] = set()
    in_table = False
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.strip() == _TABLE_HEADER:
            in_table = True
        elif in_table and line.startswith("|"):
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
        else:
            in_table = False
    return names


def test_env_example_lists_exactly_the_declared_settings() -> None:
    listed = set(_example()) - NOT_THE_BOTS
    assert sorted(_names() - listed) == [], "declared in bot/config.py, missing in .env.example"
    assert sorted(listed - _names() - _fallbacks()) == [], "in .env.example, read by nothing"


def test_readme_tables_list_exactly_the_declared_settings() -> None:
    listed = _readme_table_variables()
    assert sorted(_names() - listed) == [], "declared in bot/config.py, missing in README"
    assert sorted(listed - _names() - _fallbacks()) == [], "in README's tables, read by nothing"


def test_values_in_env_example_are_the_declared_defaults() -> None:
    """A line that sets a variable shows its default, so copying the file changes nothing."""
    by_name = {d.env: d for _, d in declared()}
    for name, value in _example().items():
        if not value or name in NOT_THE_BOTS:
            continue
        declaration = by_name[name]
        read = declaration.read({name: value}, {}, required=False)
        assert declaration.follows is None, f"{name} follows other settings: leave it commented"
        assert read == declaration.default, f".env.example sets {name}={value}"
