"""GET /healthz for the orchestrator: 200 while the bot takes updates, 503 before and after."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from telegram.ext import Application

log = logging.getLogger(__name__)
App = Application[Any, Any, Any, Any, Any, Any]

HEALTH_PATH = "/healthz"


def add_health_route(web_app: web.Application, application: App) -> None:
    """Answer GET /healthz on `web_app` with whether `application` is running."""

    async def on_health(request: web.Request) -> web.Response:
        if application.running:
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "unavailable"}, status=503)

    web_app.router.add_get(HEALTH_PATH, on_health)


async def start_health_server(application: App, listen: str, port: int) -> web.AppRunner:
    """In polling mode: a small server with only /healthz (the webhook server has its own)."""
    web_app = web.Application()
    add_health_route(web_app, application)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, listen, port).start()
    log.info("Health check on %s:%d%s", listen, port, HEALTH_PATH)
    return runner
