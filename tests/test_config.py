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


def test_the_folder_command_needs_no_telegram_token_but_the_gemini_key() -> None:
    settings = Settings.from_env({"GEMINI_API_KEY": "key-123"}, require_telegram=False)
    assert settings.telegram_token == "" and settings.secrets == ("key-123",)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"TELEGRAM_BOT_TOKEN": "not-a-token"}, require_telegram=False)
    [problem] = caught.value.problems  # the odd token is not the command's business
    assert problem.startswith("GEMINI_API_KEY is not set.") and "aistudio" in problem


def test_the_folder_command_keeps_its_cache_in_its_own_data_dir() -> None:
    from bot.cli import cli_settings

    env = {"GEMINI_API_KEY": "k" * 8, "DATA_DIR": "/srv/bot", "HOME": "/home/ana"}
    assert cli_settings(env | {"PHOTOSTORY_DATA_DIR": "/tmp/ps"}).data_dir.as_posix() == "/tmp/ps"
    assert cli_settings(env | {"XDG_DATA_HOME": "/x"}).data_dir.as_posix() == "/x/photostory"
    assert cli_settings(env, "/elsewhere").data_dir.as_posix() == "/elsewhere"
    assert cli_settings(env).download_limit == LOCAL_DOWNLOAD_LIMIT  # files on disk, no getFile


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


def test_media_stay_on_the_local_disk_unless_media_url_is_set() -> None:
    settings = Settings.from_env({**BASE, "S3_ENDPOINT_URL": "http://minio:9000"})
    assert settings.media_bucket is None


def test_media_url_names_a_bucket_a_prefix_and_an_endpoint() -> None:
    env = {
        **BASE,
        "MEDIA_URL": "s3://trip-photos/bot/media/",
        "AWS_ENDPOINT_URL": "https://s3.example.org/",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t-key",
        "AWS_REGION": "eu-west-1",
        "MEDIA_CACHE_MB": "64",
    }
    settings = Settings.from_env(env)
    assert (settings.media_bucket, settings.media_prefix) == ("trip-photos", "bot/media/")
    assert settings.s3_endpoint_url == "https://s3.example.org"
    assert (settings.s3_access_key_id, settings.s3_region) == ("AKIAEXAMPLE", "eu-west-1")
    assert settings.media_cache_bytes == 64 * 2**20
    assert "s3cr3t-key" in settings.secrets  # masked in every log line
    plain = Settings.from_env(
        {**env, "MEDIA_URL": "s3://trip-photos", "S3_ENDPOINT_URL": "http://minio:9000"}
    )
    assert (plain.media_prefix, plain.s3_endpoint_url) == ("", "http://minio:9000")


@pytest.mark.parametrize(
    "url", ["https://bucket/x", "s3://", "s3://Upper-Case", "s3://ab", "s3://a..b", "bucket"]
)
def test_a_media_url_that_is_not_an_s3_bucket_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="MEDIA_URL must look like s3://bucket"):
        Settings.from_env({**BASE, "MEDIA_URL": url})


def test_half_a_key_pair_is_refused() -> None:
    with pytest.raises(
        ConfigError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together"
    ):
        Settings.from_env({**BASE, "MEDIA_URL": "s3://photos", "AWS_ACCESS_KEY_ID": "AKIA"})


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


def test_every_secret_is_masked_and_kept_out_of_repr() -> None:
    env = {
        **BASE,
        "WEBHOOK_URL": "https://bot.example.com/hook",
        "WEBHOOK_SECRET": "hook-secret-1",
        "MEDIA_URL": "s3://photos",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t-key",
        "DATABASE_URL": "postgresql://ana:db-pw-123@db/trips",
    }
    settings = Settings.from_env(env)
    secrets = ("123456:ABCdef", "key-123", "hook-secret-1", "s3cr3t-key", "db-pw-123")
    assert set(settings.secrets) == set(secrets)
    assert not [s for s in secrets if s in repr(settings)]
    assert "AKIAEXAMPLE" in repr(settings)  # a key id is not a secret
