"""Running the Application until stopped: start-up, taking updates, and the same shutdown always.

PTB's run_polling/run_webhook miss a stop signal that arrives during parts of start-up (its
marker is cleared by `initialize()` and not looked at while the updater starts), so a SIGTERM
from an orchestrator could be ignored until the second one killed the process. Here start-up
and serving are one task: `stop()` at any moment cancels it, and shutdown runs the same way
whether the bot had started, was half-way, or had served for a week.

The calls that need Telegram before anything else (getMe, then deleteWebhook or setWebhook)
go through `reach()`, which waits for an unreachable Telegram (bot/telegram/connect.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from telegram import Update
from telegram.ext import Application

from bot.config import Settings
from bot.telegram.connect import RetryPolicy, reach_telegram
from bot.telegram.health import start_health_server

log = logging.getLogger(__name__)
App = Application[Any, Any, Any, Any, Any, Any]
T = TypeVar("T")


class Serving:
    """Start the application, take updates until `stop()`, then shut down; closes the loop."""

    def __init__(self, application: App, settings: Settings) -> None:
        self.application = application
        self.settings = settings
        self._task: asyncio.Task[None] | None = None
        self._stop_requested = False

    def stop(self) -> None:
        """Stop (the SIGTERM handler): at once if starting, after in-flight work if serving."""
        self._stop_requested = True
        if self._task is not None:
            self._task.cancel()

    def run(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve on `loop` until stopped."""
        application = self.application
        try:
            if not self._stop_requested:
                self._task = loop.create_task(self._serve())
                loop.run_until_complete(self._task)
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            log.debug("Stop requested")
        finally:
            loop.run_until_complete(self.stop_receiving())
            if application.running:
                loop.run_until_complete(application.stop())
                if application.post_stop is not None:
                    loop.run_until_complete(application.post_stop(application))
            loop.run_until_complete(application.shutdown())
            if application.post_shutdown is not None:
                loop.run_until_complete(application.post_shutdown(application))
            loop.close()

    async def reach(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """A start-up call to the Bot API, retried while Telegram cannot be reached."""
        settings = self.settings
        policy = RetryPolicy(settings.telegram_connect_attempts, settings.telegram_connect_backoff)
        return await reach_telegram(call, what, settings.telegram_api_url, policy)

    async def _serve(self) -> None:
        application = self.application
        await self.reach(application.bot.initialize, "getMe")  # checks the token
        await application.initialize()
        if application.post_init is not None:
            await application.post_init(application)
        await self.start_receiving()
        await application.start()
        await self.started()
        await asyncio.Event().wait()  # until cancelled by stop()

    async def start_receiving(self) -> None:
        """Begin taking updates (they queue until the application starts)."""

    async def started(self) -> None:
        """Called once the application handles updates."""

    async def stop_receiving(self) -> None:
        """Take no more updates; safe to call whatever start-up reached."""


class PollingServing(Serving):
    """Long polling (the default), with GET /healthz on HEALTH_PORT when it is set."""

    def __init__(self, application: App, settings: Settings) -> None:
        super().__init__(application, settings)
        self._health: web.AppRunner | None = None

    async def start_receiving(self) -> None:
        settings, application = self.settings, self.application
        if settings.health_port is not None:
            self._health = await start_health_server(
                application, settings.health_listen, settings.health_port
            )
        updater = application.updater
        assert updater is not None
        # deleteWebhook first: a failed try leaves the updater stopped, so it can try again.
        await self.reach(
            lambda: updater.start_polling(allowed_updates=Update.ALL_TYPES), "deleteWebhook"
        )

    async def stop_receiving(self) -> None:
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self._health is not None:
            await self._health.cleanup()
            self._health = None
