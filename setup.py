"""Compiles the translations (.po) into the catalogs gettext reads (.mo) when a wheel is built.

Everything else about the package is in pyproject.toml; only this build step needs code.
The .mo files are built, never committed (see .gitignore); `make setup` compiles them in the
source tree for an editable install, and bot/i18n.py compiles a missing one in memory.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithCatalogs(build_py):
    """build_py that also writes bot/locales/*/LC_MESSAGES/*.mo into the build."""

    def run(self) -> None:
        super().run()
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for po in sorted(Path("bot/locales").glob("*/LC_MESSAGES/*.po")):
            target = Path(self.build_lib) / po.with_suffix(".mo")
            target.parent.mkdir(parents=True, exist_ok=True)
            with po.open("rb") as f:
                catalog = read_po(f, locale=po.parent.parent.name)
            with target.open("wb") as out:
                write_mo(out, catalog)


setup(cmdclass={"build_py": BuildWithCatalogs})
