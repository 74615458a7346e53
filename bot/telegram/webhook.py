"""Webhook mode: Telegram POSTs updates to our own small aiohttp server instead of being polled.

PTB's run_webhook brings a tornado server with no room for a health route; this server is
aiohttp (already a dependency), answers GET /healthz, refuses requests without the secret
header with 403, and puts every update on `application.update_queue`, which is the
DurableUpdateQueue: each update is journalled before Telegram gets its 200, and an update
Telegram sends again (its 200 was lost) is recognised there and not handled twice.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Update
from telegram.error import BadRequest
from telegram.ext import Application

from bot.config import Settings
from bot.errors import ConfigError
from bot.telegram.durable import DurableUpdateQueue
from bot.telegram.health import add_health_route
from bot.telegram.serving import Serving

log = logging.getLogger(__name__)
App = Application[Any, Any, Any, Any, Any, Any]

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def webhook_path(url: str) -> str:
    """The path Telegram posts to: the path of WEBHOOK_URL ('/' when it has none)."""
    return urlsplit(url).path or "/"


def make_web_app(application: App, secret: str, path: str) -> web.Application:
    """The aiohttp app: POST `path` takes updates, GET /healthz reports whether the bot runs."""

    async def on_update(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            log.warning("Refused a webhook request without the right secret (403)")
            return web.Response(status=403, text="forbidden")
        body = await request.read()
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            update = Update.de_json(data, application.bot)
        except Exception as exc:
            # Telegram does not resend a 4xx; say loudly what was lost.
            log.error(
                "Refused a webhook update that is not valid (400, %d bytes, %s): %.200r",
                len(body),
                exc,
                body,
            )
            return web.Response(status=400, text="bad update")
        queue = application.update_queue
        try:
            if isinstance(queue, DurableUpdateQueue):
                await queue.put_received(update, data)
            else:
                await queue.put(update)
        except Exception:
            # Not journalled (the database is away): Telegram sends it again after a 5xx.
            log.exception("Could not take update %s; Telegram will resend it", update.update_id)
            return web.Response(status=503, text="try again")
        return web.Response(text="ok")

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post(path, on_update)
    add_health_route(app, application)
    return app


class WebhookServing(Serving):
    """Webhook mode: our aiohttp server takes Telegram's POSTs; setWebhook once it runs."""

    def __init__(self, application: App, settings: Settings) -> None:
        super().__init__(application, settings)
        assert settings.webhook_url is not None
        self.path = webhook_path(settings.webhook_url)
        self._runner = web.AppRunner(
            make_web_app(application, settings.webhook_secret, self.path), access_log=None
        )

    async def start_receiving(self) -> None:
        settings = self.settings
        await self._runner.setup()
        await web.TCPSite(self._runner, settings.webhook_listen, settings.webhook_port).start()
        log.info(
            "Webhook server on %s:%d%s", settings.webhook_listen, settings.webhook_port, self.path
        )

    async def started(self) -> None:
        settings = self.settings
        try:
            await self.reach(
                lambda: self.application.bot.set_webhook(
                    url=settings.webhook_url,
                    secret_token=settings.webhook_secret,
                    max_connections=settings.webhook_max_connections,
                    allowed_updates=Update.ALL_TYPES,
                    drop_pending_updates=False,
                ),
                "setWebhook",
            )
        except BadRequest as e:  # e.g. "bad webhook: HTTPS url must be provided for webhook"
            raise ConfigError(f"Telegram refused WEBHOOK_URL: {e.message}.") from None
        log.info("Webhook registered with Telegram")

    async def stop_receiving(self) -> None:
        # No deleteWebhook: another machine may still be serving the same URL.
        await self._runner.cleanup()
