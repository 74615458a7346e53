"""Webhook mode: Telegram POSTs updates to our own small aiohttp server instead of being polled.

PTB's run_webhook brings a tornado server with no room for a health route; this server is
aiohttp (already a dependency), answers GET /healthz, refuses requests without the secret
header with 403, and puts every update on `application.update_queue`, which is the
DurableUpdateQueue: each update is journalled before Telegram gets its 200.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Update
from telegram.ext import Application

from bot.config import Settings

log = logging.getLogger(__name__)
App = Application[Any, Any, Any, Any, Any, Any]

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
HEALTH_PATH = "/healthz"


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
        await application.update_queue.put(update)
        return web.Response(text="ok")

    async def on_health(request: web.Request) -> web.Response:
        if application.running:
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "stopping"}, status=503)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post(path, on_update)
    app.router.add_get(HEALTH_PATH, on_health)
    return app


def run_webhook(application: App, settings: Settings, loop: asyncio.AbstractEventLoop) -> None:
    """Like Application.run_polling, with the webhook server in place of the updater.

    `application.stop_running()` (the SIGTERM handler) stops the loop; then the server stops
    taking updates and the application finishes what is in flight, as after polling.
    """
    assert settings.webhook_url is not None
    path = webhook_path(settings.webhook_url)
    runner = web.AppRunner(
        make_web_app(application, settings.webhook_secret, path), access_log=None
    )
    try:
        loop.run_until_complete(application.initialize())
        if application.post_init is not None:
            loop.run_until_complete(application.post_init(application))
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, settings.webhook_listen, settings.webhook_port)
        loop.run_until_complete(site.start())
        log.info(
            "Webhook server on %s:%d%s",
            settings.webhook_listen,
            settings.webhook_port,
            path,
        )
        loop.run_until_complete(application.start())
        loop.run_until_complete(
            application.bot.set_webhook(
                url=settings.webhook_url,
                secret_token=settings.webhook_secret,
                max_connections=settings.webhook_max_connections,
                allowed_updates=Update.ALL_TYPES,
                drop_pending_updates=False,
            )
        )
        log.info("Webhook registered with Telegram")
        loop.run_forever()
    except (KeyboardInterrupt, SystemExit):
        log.debug("Stop requested")
    finally:
        # No deleteWebhook: another machine may still be serving the same URL.
        loop.run_until_complete(runner.cleanup())
        if application.running:
            loop.run_until_complete(application.stop())
            if application.post_stop is not None:
                loop.run_until_complete(application.post_stop(application))
        loop.run_until_complete(application.shutdown())
        if application.post_shutdown is not None:
            loop.run_until_complete(application.post_shutdown(application))
        loop.close()
