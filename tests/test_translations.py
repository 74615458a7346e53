"""Every catalog translates every string of the template, with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from bot import i18n

TEMPLATE = i18n.LOCALES / f"{i18n.DOMAIN}.pot"
TRANSLATED = [code for code in i18n.LANGUAGES if code != i18n.DEFAULT]
# %(name)s / %(count)d, and {name} for str.format; literal %% is no placeholder.
_PLACEHOLDER = re.compile(r"%\([a-z_]+\)[-#0 +]*\d*(?:\.\d+)?[sdfr]|\{[a-z_]+\}")


def _read(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=path.parent.parent.name if path.suffix == ".po" else None)


def _placeholders(text: str) -> list[str]:
    return sorted(_PLACEHOLDER.findall(text))


def problems(template: Catalog, catalog: Catalog) -> list[str]:
    """What a catalog misses or gets wrong against the template, one line each."""
    found = []
    for message in template:
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        translated = catalog.get(message.id)
        if translated is None:
            found.append(f"missing: {key!r}")
            continue
        if translated.fuzzy:
            found.append(f"fuzzy: {key!r}")
        forms = translated.string if isinstance(translated.string, tuple) else (translated.string,)
        if isinstance(message.id, tuple) and len(forms) != catalog.num_plurals:
            found.append(f"{len(forms)} plural forms, not {catalog.num_plurals}: {key!r}")
        originals = message.id if isinstance(message.id, tuple) else (message.id,)
        wanted = _placeholders(originals[-1])
        for form in forms:
            if not form or not form.strip():
                found.append(f"empty: {key!r}")
            elif _placeholders(form) != wanted:
                found.append(f"placeholders {_placeholders(form)} for {wanted}: {key!r}")
    return found


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_string_is_translated_with_the_same_placeholders(language: str) -> None:
    po = i18n.LOCALES / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
    assert po.exists(), f"no catalog for {language}"
    catalog = _read(po)
    assert not catalog.fuzzy, f"{language}: the catalog's header is marked fuzzy"
    assert problems(_read(TEMPLATE), catalog) == []


def test_a_missing_string_or_a_changed_placeholder_is_caught() -> None:
    template = Catalog()
    template.add("Hi %(name)s! 👋")
    template.add(("%(count)d photo", "%(count)d photos"))
    good = Catalog(locale="ru")
    good.add("Hi %(name)s! 👋", "Привет, %(name)s! 👋")
    good.add(("%(count)d photo", "%(count)d photos"), ("%(count)d фото", "%(count)d фото", "%(count)d фото"))  # fmt: skip
    assert problems(template, good) == []
    bad = Catalog(locale="ru")
    bad.add("Hi %(name)s! 👋", "Привет, %(имя)s! 👋")
    assert problems(template, bad) == [
        "placeholders [] for ['%(name)s']: 'Hi %(name)s! 👋'",
        "missing: '%(count)d photo'",
    ]


def test_the_template_holds_every_string_the_code_marks() -> None:
    """The .pot is up to date: extracting again from the code finds nothing new."""
    from babel.messages.extract import extract_from_dir

    root = i18n.LOCALES.parent.parent
    method_map = [("bot/**.py", "python"), ("bot/service/templates/**.j2", "jinja2")]
    marked = {
        message if isinstance(message, str) else message[0]
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(root), method_map, keywords={"_": None, "N_": None, "ngettext": (1, 2)}
        )
        if message
    }
    known = {m.id if isinstance(m.id, str) else m.id[0] for m in _read(TEMPLATE) if m.id}
    assert marked - known == set(), "run `make messages` and translate what is new"


@pytest.mark.parametrize("language", TRANSLATED)
def test_each_catalog_loads_and_speaks(language: str) -> None:
    with i18n.using(language):
        assert i18n._("Taken back.") != "Taken back."
        assert "5" in i18n.ngettext("%(count)d photo", "%(count)d photos", 5) % {"count": 5}
