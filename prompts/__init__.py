"""The texts the model reads, kept as Markdown files next to this module."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from string import Template


@cache
def _source(name: str) -> str:
    return (files(__package__) / f"{name}.md").read_text(encoding="utf-8")


def render(name: str, **values: str) -> str:
    """The prompt `name`.md with its $placeholders filled in (unknown ones are left as they are)."""
    return Template(_source(name)).safe_substitute(values).strip()
