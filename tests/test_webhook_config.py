"""Webhook settings: off by default, validated, with a secret Telegram will accept."""

from __future__ import annotations

import pytest

from bot.config import Settings
from bot.errors import ConfigError
from bot.telegram.webhook import webhook_path

BASE = {"TELEGRAM_BOT_TOKEN": "123456:ABCdef", "GEMINI_API_KEY": "key-123"}
HOOK = {**BASE, "WEBHOOK_URL": "https://bot.example.com/telegram"}


def _problem(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    return str(caught.value)


def test_polling_is_the_default() -> None:
    settings = Settings.from_env(BASE)
    assert settings.webhook_url is None
    assert settings.webhook_port == 8080 and settings.webhook_listen == "0.0.0.0"
    assert settings.webhook_max_connections == 40


def test_valid_webhook_settings() -> None:
    settings = Settings.from_env(
        {**HOOK, "WEBHOOK_SECRET": "Abc_123-xyz", "WEBHOOK_PORT": "8443",
         "WEBHOOK_LISTEN": "127.0.0.1", "WEBHOOK_MAX_CONNECTIONS": "100"}
    )  # fmt: skip
    assert settings.webhook_url == "https://bot.example.com/telegram"
    assert settings.webhook_secret == "Abc_123-xyz"
    assert (settings.webhook_listen, settings.webhook_port) == ("127.0.0.1", 8443)
    assert settings.webhook_max_connections == 100
    assert "Abc_123-xyz" in settings.secrets  # masked in logs like the token
    assert webhook_path(settings.webhook_url) == "/telegram"
    assert webhook_path("https://bot.example.com") == "/"


def test_missing_secret_says_how_to_make_one() -> None:
    message = _problem(HOOK)
    assert "WEBHOOK_SECRET is not set" in message
    assert "secrets.token_urlsafe(32)" in message


@pytest.mark.parametrize("secret", ["has space", "dots.not.allowed", "é", "x" * 257])
def test_bad_secret_characters_are_refused(secret: str) -> None:
    message = _problem({**HOOK, "WEBHOOK_SECRET": secret})
    assert "WEBHOOK_SECRET must be 1-256 characters" in message
    assert "secrets.token_urlsafe(32)" in message


@pytest.mark.parametrize("port", ["0", "65536", "http", "80.5", "-1"])
def test_bad_port_is_refused(port: str) -> None:
    assert "WEBHOOK_PORT must be a whole number from 1 to 65535" in _problem(
        {**HOOK, "WEBHOOK_SECRET": "ok", "WEBHOOK_PORT": port}
    )


def test_bad_url_and_max_connections_are_refused() -> None:
    message = _problem(
        {**BASE, "WEBHOOK_URL": "bot.example.com", "WEBHOOK_SECRET": "ok",
         "WEBHOOK_MAX_CONNECTIONS": "101"}
    )  # fmt: skip
    assert "WEBHOOK_URL must start with http:// or https://" in message
    assert "WEBHOOK_MAX_CONNECTIONS must be a whole number from 1 to 100" in message


def test_health_port_is_off_by_default_and_validated() -> None:
    assert Settings.from_env(BASE).health_port is None
    settings = Settings.from_env({**BASE, "HEALTH_PORT": "9100", "HEALTH_LISTEN": "127.0.0.1"})
    assert (settings.health_listen, settings.health_port) == ("127.0.0.1", 9100)
    assert "HEALTH_PORT" in _problem({**BASE, "HEALTH_PORT": "health"})
    assert "HEALTH_PORT" in _problem({**BASE, "HEALTH_PORT": "70000"})
