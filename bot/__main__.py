"""`python -m bot`: read the settings, then poll Telegram until stopped (SIGINT/SIGTERM)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from dotenv import load_dotenv
from telegram import Update

from bot.config import Settings
from bot.errors import ConfigError
from bot.logs import setup_logging


def main() -> int:
    """Run the bot; exit 2 with a readable message when the configuration is wrong."""
    # A .env file in the working directory fills in what the environment does not set.
    load_dotenv(Path.cwd() / ".env", override=False)
    try:
        settings = Settings.from_env()
    except ConfigError as e:
        print(f"photostory cannot start.\n{e}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.secrets)
    from bot.telegram.app import build_application  # after logging: imports may log

    app = build_application(settings)
    logging.getLogger("bot").info("Starting; data in %s", settings.data_dir.resolve())
    app.run_polling(allowed_updates=Update.ALL_TYPES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
