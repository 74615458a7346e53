"""One setting, declared once: its variable, default, bounds, help and whether it is secret.

`setting(...)` is a dataclass field whose metadata says how the environment spells and checks
it, so `Settings` (bot/config.py) lists each setting in one place, and the reading, the problems
reported, the secrets masked in logs and the documentation test all follow from that list.
A kind is a function from the variable's text to the value, raising `Invalid` with a sentence
that says how to fix it."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any

Kind = Callable[[str, str, "Declared"], Any]  # (text, variable name, declaration) -> value


class Invalid(ValueError):
    """A variable's text is not a valid value; the message says which variable and how to fix it."""


@dataclass(frozen=True)
class Declared:
    """How one setting is read from the environment."""

    env: str
    default: Any
    help: str
    kind: Kind
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    # True: the value is a secret; a function: the secret parts of the value (a URL's password).
    secret: bool | Callable[[Any], Iterable[str]] = False
    required: str = ""  # when set: the sentence that says where to get the value
    also: tuple[str, ...] = ()  # other variables read, in order, when `env` is unset
    follows: Callable[[Mapping[str, Any]], Any] | None = None  # a default from settings above
    scale: int = 1  # read in one unit (MB), kept in another (bytes)

    def read(self, env: Mapping[str, str], above: Mapping[str, Any], *, required: bool) -> Any:
        """This setting's value: the first variable set, else the default; raise Invalid."""
        for name in (self.env, *self.also):
            raw = env.get(name, "").strip()
            if raw:
                value = self.kind(raw, name, self)
                return int(value * self.scale) if self.scale != 1 else value
        if required and self.required:
            raise Invalid(f"{self.env} is not set. {self.required}")
        return self.follows(above) if self.follows else self.default

    def secrets(self, value: Any) -> tuple[str, ...]:
        """The parts of this setting's value that must never reach a log line."""
        if callable(self.secret):
            return tuple(self.secret(value))
        return (value,) if self.secret and value else ()


def setting(
    env: str,
    default: Any,
    help: str,
    kind: Kind | None = None,
    **how: Any,
) -> Any:
    """A dataclass field read from the variable `env` (see `Declared` for the keywords)."""
    declared = Declared(env, default, help, kind or text, **how)
    return field(default=default, repr=not declared.secret, metadata={"setting": declared})


def declarations(settings_class: type) -> tuple[tuple[str, Declared], ...]:
    """(field name, declaration) of every declared setting of a dataclass, in order."""
    found: tuple[Field[Any], ...] = fields(settings_class)
    return tuple((f.name, f.metadata["setting"]) for f in found if "setting" in f.metadata)


# --- kinds ---------------------------------------------------------------------------------


def text(raw: str, name: str, declared: Declared) -> str:
    """Any text, as written."""
    return raw


def upper(raw: str, name: str, declared: Declared) -> str:
    """Text in capitals (LOG_LEVEL=info is INFO)."""
    return raw.upper()


def choice(raw: str, name: str, declared: Declared) -> str:
    """One of the declared choices, in any case."""
    value = raw.lower()
    if value not in declared.choices:
        raise Invalid(f"{name} must be one of {', '.join(declared.choices)}, not '{value}'.")
    return value


def flag(raw: str, name: str, declared: Declared) -> bool:
    """true/false, yes/no, on/off, 1/0."""
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise Invalid(f"{name} must be true or false, not '{value}'.")


def number(raw: str, name: str, declared: Declared) -> float:
    """A finite number, at least the declared minimum."""
    try:
        value = float(raw)
    except ValueError:
        raise Invalid(f"{name} must be a number, not '{raw}'.") from None
    minimum = declared.minimum
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        raise Invalid(f"{name} must be at least {minimum:g}, not '{raw}'.")
    return value


def whole(raw: str, name: str, declared: Declared) -> int:
    """A number, at least the declared minimum, cut to a whole one (3.7 attempts are 3)."""
    return int(number(raw, name, declared))


def ranged(raw: str, name: str, declared: Declared) -> int:
    """A whole number from the declared minimum to the declared maximum."""
    low, high = int(declared.minimum or 0), int(declared.maximum or 0)
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise Invalid(f"{name} must be a whole number from {low} to {high}, not '{raw}'.")
    return value


def url(raw: str, name: str, declared: Declared) -> str:
    """An http(s) address, without a trailing slash."""
    value = raw.rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise Invalid(f"{name} must start with http:// or https:// (got '{value}').")
    return value


def path(raw: str, name: str, declared: Declared) -> Path:
    """A folder; ~ is the home folder."""
    return Path(raw).expanduser()
