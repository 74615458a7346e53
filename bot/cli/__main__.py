"""`python -m bot.cli`: the same as the `photostory` command."""

from __future__ import annotations

import sys

from bot.cli import main

if __name__ == "__main__":
    sys.exit(main())
