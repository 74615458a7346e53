"""The floor: a bare python-telegram-bot echo bot, built like bot/telegram/app.py builds the bot.

`python -m bench.echo` reads TELEGRAM_BOT_TOKEN and TELEGRAM_API_URL and answers every text
(commands included) with the same text. It processes updates concurrently, as the bot does
(`concurrent_updates(True)`, PTB's SimpleUpdateProcessor): with PTB's default of one update
at a time, fifty chats would queue behind each other and the floor would flatter the bot.
BENCH_ECHO_SEQUENTIAL=1 gives PTB's default instead, BENCH_ECHO_RATE_LIMITER=1 adds the
bot's AIORateLimiter, to take the stack apart when looking for a cost.
"""

from __future__ import annotations

import os

from telegram import Update
from telegram.ext import AIORateLimiter, ApplicationBuilder, ContextTypes, MessageHandler, filters


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a text with itself."""
    message = update.effective_message
    if message is not None and message.text:
        await message.reply_text(message.text)


def main() -> None:
    """Poll until SIGTERM."""
    root = os.environ["TELEGRAM_API_URL"].rstrip("/")
    builder = (
        ApplicationBuilder()
        .token(os.environ["TELEGRAM_BOT_TOKEN"])
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .concurrent_updates(os.environ.get("BENCH_ECHO_SEQUENTIAL") != "1")
    )
    if os.environ.get("BENCH_ECHO_RATE_LIMITER") == "1":
        builder = builder.rate_limiter(AIORateLimiter(max_retries=3))  # type: ignore[arg-type]
    app = builder.build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    app.run_polling(allowed_updates=Update.ALL_TYPES)


if __name__ == "__main__":
    main()
