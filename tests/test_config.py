"""Settings: read from the environment, validated with messages that say how to fix them."""

from __future__ import annotations

import pytest

from bot.config import CLOUD_DOWNLOAD_LIMIT, DEFAULT_MODEL, LOCAL_DOWNLOAD_LIMIT, Settings
from bot.errors import ConfigError

BASE = {"TELEGRAM_BOT_TOKEN": "123456:ABCdef", "GEMINI_API_KEY": "key-123"}


def test_defaults_fill_everything_but_the_two_secrets() -> None:
    settings = Settings.from_env(BASE)
    assert settings.gemini_model == DEFAULT_MODEL
    assert settings.telegram_api_url == "https://api.telegram.org"
    assert str(settings.data_dir) == "data"
    assert settings.gemini_base_url is None
    assert settings.download_limit == CLOUD_DOWNLOAD_LIMIT
    assert not settings.allowed.allows(1, "ana")  # default: nobody


def test_missing_secrets_are_all_reported_with_how_to_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({})
    message = str(caught.value)
    assert "TELEGRAM_BOT_TOKEN is not set" in message and "BotFather" in message
    assert "GEMINI_API_KEY is not set" in message and "aistudio" in message


def test_bad_values_are_named() -> None:
    env = {
        **BASE,
        "TELEGRAM_API_URL": "localhost:8081",
        "ALLOWED_USERS": "12,bob",
        "GEMINI_TIMEOUT_SECONDS": "soon",
        "GEMINI_MEDIA_RESOLUTION": "ultra",
    }
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    for expected in (
        "TELEGRAM_API_URL",
        "'bob'",
        "GEMINI_TIMEOUT_SECONDS",
        "GEMINI_MEDIA_RESOLUTION",
    ):
        assert expected in message


def test_allowed_users_by_id_username_group_or_everyone() -> None:
    allowed = Settings.from_env({**BASE, "ALLOWED_USERS": "42, @Ana, -100500"}).allowed
    assert allowed.allows(42, None)
    assert allowed.allows(7, "ana")
    assert allowed.allows(7, None, chat_id=-100500)
    assert not allowed.allows(7, "bob", chat_id=7)
    assert Settings.from_env({**BASE, "ALLOWED_USERS": "*"}).allowed.allows(1, None)


def test_local_mode_lifts_the_download_limit() -> None:
    settings = Settings.from_env({**BASE, "TELEGRAM_LOCAL_MODE": "true"})
    assert settings.telegram_local_mode
    assert settings.download_limit == LOCAL_DOWNLOAD_LIMIT


def test_without_database_url_the_sqlite_file_in_data_dir_is_used() -> None:
    settings = Settings.from_env({**BASE, "DATA_DIR": "/srv/trips"})
    assert settings.database_url is None
    assert str(settings.db_path) == "/srv/trips/photostory.sqlite3"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ana:s3cr%40t-pw@db.internal:5432/trips",
        "postgres://db/trips",
        "postgresql:///trips",  # libpq's own socket
    ],
)
def test_a_postgresql_database_url_is_taken_and_its_password_kept_secret(url: str) -> None:
    settings = Settings.from_env({**BASE, "DATABASE_URL": url})
    assert settings.database_url == url
    assert "s3cr" not in repr(settings)
    if "s3cr" in url:
        assert {"s3cr%40t-pw", "s3cr@t-pw"} <= set(settings.secrets)


@pytest.mark.parametrize(
    "url", ["mysql://ana:hunter2-pw@db/trips", "ana:hunter2-pw@db/trips", "sqlite:///x.db"]
)
def test_a_database_url_that_is_not_postgresql_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**BASE, "DATABASE_URL": url})
    message = str(caught.value)
    assert "DATABASE_URL must be a PostgreSQL address, postgresql://" in message
    assert "hunter2" not in message and "Leave it unset" in message


def test_a_database_url_with_a_bad_port_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**BASE, "DATABASE_URL": "postgresql://ana:pw@db:port/trips"})
    assert "DATABASE_URL is not a valid address" in str(caught.value)
