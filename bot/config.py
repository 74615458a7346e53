"""Settings, read once from the environment into one typed object and validated at start-up.

Each setting is declared once below (variable, default, bounds, help, secret or not; see
bot/setting.py), and everything else follows from the declarations: the reading, the problems
reported, the secrets masked in logs, and the test that .env.example and README list them all.
A small table of our own rather than pydantic-settings: importing it costs about 100 ms at
start-up (this module: 10 ms), our variable names are not the field names (MEDIA_CACHE_MB is
kept in bytes, S3_ENDPOINT_URL falls back to AWS_ENDPOINT_URL), and its validation messages would
have to be translated back into sentences that say how to fix the problem anyway."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from bot import model_facts
from bot.errors import ConfigError
from bot.setting import (
    Declared,
    Invalid,
    choice,
    declarations,
    flag,
    number,
    path,
    ranged,
    setting,
    upper,
    url,
    whole,
)

DEFAULT_MODEL = "gemini-3.8-flash"
DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org"
CLOUD_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # the cloud Bot API's getFile limit
LOCAL_DOWNLOAD_LIMIT = 2000 * 1024 * 1024  # a self-hosted Bot API server in --local mode
MEDIA_RESOLUTIONS = ("low", "medium", "high")
# What Telegram accepts as a webhook secret_token.
_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
MAKE_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
# s3://bucket[/prefix]: S3's bucket naming rules (lower case, digits, dots, hyphens).
_MEDIA_URL_PATTERN = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?")
DEFAULT_MEDIA_CACHE_MB = 512
DATABASE_SCHEMES = ("postgresql", "postgres")
MB = 2**20


@dataclass(frozen=True)
class AccessList:
    """Who may do something: user ids, group chat ids (negative), @usernames, or everyone."""

    everyone: bool = False
    ids: frozenset[int] = frozenset()
    usernames: frozenset[str] = frozenset()

    def allows(self, user_id: int | None, username: str | None, chat_id: int | None = None) -> bool:
        """Whether this user (or the group chat they write in) is on the list."""
        if self.everyone:
            return True
        if user_id is not None and user_id in self.ids:
            return True
        if chat_id is not None and chat_id < 0 and chat_id in self.ids:
            return True
        return username is not None and username.lower().lstrip("@") in self.usernames

    @classmethod
    def parse(cls, raw: str, variable: str) -> AccessList:
        """Parse '123, @ana, -100200' or '*'."""
        ids: set[int] = set()
        names: set[str] = set()
        for token in (t.strip() for t in raw.replace(";", ",").split(",")):
            if not token:
                continue
            if token == "*":
                return cls(everyone=True)
            if token.startswith("@"):
                if len(token) < 2:
                    raise ConfigError(f"{variable}: '@' must be followed by a username.")
                names.add(token[1:].lower())
                continue
            try:
                ids.add(int(token))
            except ValueError:
                raise ConfigError(
                    f"{variable}: '{token}' is neither a numeric Telegram id nor an @username. "
                    f"Example: {variable}=123456789,@ana  (or * for everyone)."
                ) from None
        return cls(ids=frozenset(ids), usernames=frozenset(names))


# --- kinds of our own (bot/setting.py has the plain ones) -----------------------------------


def _access(raw: str, name: str, declared: Declared) -> AccessList:
    try:
        return AccessList.parse(raw, name)
    except ConfigError as e:
        raise Invalid(str(e)) from None


def _webhook_secret(raw: str, name: str, declared: Declared) -> str:
    if not _SECRET_PATTERN.fullmatch(raw):
        raise Invalid(
            f"{name} must be 1-256 characters of A-Z, a-z, 0-9, _ and - only. "
            f"Make one with {MAKE_SECRET}"
        )
    return raw


def _media_url(raw: str, name: str, declared: Declared) -> str:
    """s3://bucket[/prefix], kept as s3://bucket/ or s3://bucket/prefix/."""
    match = _MEDIA_URL_PATTERN.fullmatch(raw)
    if match is None or ".." in match.group(1):
        raise Invalid(
            f"{name} must look like s3://bucket or s3://bucket/prefix (a bucket name of "
            f"3-63 lower-case letters, digits, dots and hyphens), not '{raw}'. Leave it "
            "unset to keep media under DATA_DIR/media."
        )
    prefix = (match.group(2) or "").strip("/")
    return f"s3://{match.group(1)}/{prefix}/" if prefix else f"s3://{match.group(1)}/"


def _database_url(raw: str, name: str, declared: Declared) -> str:
    # Only the scheme is ever repeated back: the rest may hold a password.
    scheme = raw.partition("://")[0] if "://" in raw else ""
    if scheme.lower() not in DATABASE_SCHEMES:
        shown = f"'{scheme}://'" if scheme else "no scheme"
        raise Invalid(
            f"{name} must be a PostgreSQL address, postgresql://user:password@host:5432/dbname "
            f"(or postgres://...), not {shown}. Leave it unset to keep the SQLite file in "
            "DATA_DIR."
        )
    try:
        urlsplit(raw).port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        raise Invalid(
            f"{name} is not a valid address (check the host and port): "
            "postgresql://user:password@host:5432/dbname."
        ) from None
    return raw


def _password(database_url: str | None) -> tuple[str, ...]:
    """A database address's password, as written and decoded: either may reach a log line."""
    password = urlsplit(database_url).password if database_url else None
    return (password, unquote(password)) if password else ()


def _download_limit(above: Mapping[str, Any]) -> int:
    return LOCAL_DOWNLOAD_LIMIT if above["telegram_local_mode"] else CLOUD_DOWNLOAD_LIMIT


def _cache_min_tokens(above: Mapping[str, Any]) -> int:
    return model_facts.cache_min_tokens(above["gemini_model"])


@dataclass(frozen=True)
class Settings:
    """Everything the bot can be told from outside. Build it with `Settings.from_env()`."""

    # Required.
    telegram_token: str = setting(
        "TELEGRAM_BOT_TOKEN", "", "the bot's token from @BotFather", secret=True,
        required="Create a bot with @BotFather in Telegram (/newbot) and put its token here.",
    )  # fmt: skip
    gemini_api_key: str = setting(
        "GEMINI_API_KEY", "", "the key from Google AI Studio", secret=True,
        required="Create a key at https://aistudio.google.com/apikey and put it here.",
    )  # fmt: skip
    allowed: AccessList = setting("ALLOWED_USERS", AccessList(), "who may use the bot", _access)
    admins: AccessList = setting("ADMIN_USERS", AccessList(), "who may see /stats", _access)
    # Where things are.
    gemini_model: str = setting("GEMINI_MODEL", DEFAULT_MODEL, "the Gemini model")
    data_dir: Path = setting("DATA_DIR", Path("./data"), "the SQLite file and the media", path)
    database_url: str | None = setting(
        "DATABASE_URL", None, "PostgreSQL instead of the SQLite file", _database_url,
        secret=_password,
    )  # fmt: skip
    telegram_api_url: str = setting(
        "TELEGRAM_API_URL", DEFAULT_TELEGRAM_API_URL, "the Bot API root", url
    )
    telegram_local_mode: bool = setting(
        "TELEGRAM_LOCAL_MODE", False, "the Bot API server runs with --local", flag
    )
    # Start-up while Telegram cannot be reached: tries (0: until it answers or SIGTERM), and the
    # first wait between them, doubling up to a minute.
    telegram_connect_attempts: int = setting(
        "TELEGRAM_CONNECT_ATTEMPTS",
        0,
        "start-up tries while Telegram is unreachable (0: no limit)",
        whole,
        minimum=0,
    )
    telegram_connect_backoff: float = setting(
        "TELEGRAM_CONNECT_BACKOFF_SECONDS",
        1.0,
        "first wait between those tries",
        number,
        minimum=0.01,
    )
    gemini_base_url: str | None = setting("GEMINI_BASE_URL", None, "the Gemini API root", url)
    gemini_api_version: str = setting("GEMINI_API_VERSION", "v1beta", "the Gemini API version")
    # Conversation with the model.
    gemini_timeout: float = setting(
        "GEMINI_TIMEOUT_SECONDS", 180.0, "longest wait for one answer", number, minimum=1
    )
    gemini_attempts: int = setting(
        "GEMINI_ATTEMPTS", 3, "tries of a request Gemini refused (429, 5xx)", whole, minimum=1
    )
    gemini_backoff: float = setting(
        "GEMINI_BACKOFF_SECONDS", 2.0, "first wait between tries", number, minimum=0
    )
    gemini_max_retry_wait: float = setting(
        "GEMINI_MAX_RETRY_WAIT_SECONDS", 30.0, "longest wait Gemini may ask for", number, minimum=0
    )
    media_resolution: str = setting(
        "GEMINI_MEDIA_RESOLUTION", "medium", "tokens per image", choice, choices=MEDIA_RESOLUTIONS
    )
    video_fps: float = setting(
        "GEMINI_VIDEO_FPS", 1.0, "video frames per second the model sees", number, minimum=0.01
    )
    file_poll_interval: float = setting(
        "GEMINI_FILE_POLL_SECONDS", 1.0, "between checks of an uploaded video", number, minimum=0.01
    )
    file_poll_timeout: float = setting(
        "GEMINI_FILE_TIMEOUT_SECONDS", 300.0, "longest wait for a video", number, minimum=0.1
    )
    upload_concurrency: int = setting(
        "GEMINI_UPLOAD_CONCURRENCY", 8, "uploads to Gemini at once", whole, minimum=1
    )
    # Context caching: the system instruction and the album held at Gemini while a conversation
    # goes on, so follow-ups are billed at the cached price. 0 seconds switches it off.
    gemini_cache_ttl: float = setting(
        "GEMINI_CACHE_TTL_SECONDS", 900.0, "how long an album stays cached", number, minimum=0
    )
    gemini_cache_min_tokens: int = setting(
        "GEMINI_CACHE_MIN_TOKENS", model_facts.CONSERVATIVE_CACHE_MIN_TOKENS,
        "smallest album worth a cache: the model's minimum", whole, minimum=0,
        follows=_cache_min_tokens,
    )  # fmt: skip
    # Media intake.
    photo_max_side: int = setting(
        "PHOTO_MAX_SIDE", 1024, "longest side of a photo the model gets", whole, minimum=64
    )
    photo_max_bytes: int = setting(
        "PHOTO_MAX_BYTES", 150_000, "largest photo the model gets", whole, minimum=10_000
    )
    max_image_pixels: int = setting(
        "MAX_IMAGE_PIXELS", 64_000_000, "larger images are refused", whole, minimum=1_000_000
    )
    max_album_items: int = setting(
        "MAX_ALBUM_ITEMS", 300, "photos and videos per album", whole, minimum=1
    )
    download_limit: int = setting(
        "DOWNLOAD_LIMIT_MB", CLOUD_DOWNLOAD_LIMIT, "largest file taken from Telegram, in MB",
        whole, minimum=1, scale=MB, follows=_download_limit,
    )  # fmt: skip
    # Telegram side.
    ack_debounce: float = setting(
        "ACK_DEBOUNCE_SECONDS", 1.0, "quiet time before media are acknowledged", number, minimum=0
    )
    draft_interval: float = setting(
        "DRAFT_INTERVAL_SECONDS", 0.6, "between updates of a streamed draft", number, minimum=0
    )
    edit_interval: float = setting(
        "EDIT_INTERVAL_SECONDS", 3.0, "between edits of a streamed message", number, minimum=0
    )
    # /story as one Telegram rich message (Bot API 10.1+); off: the classic messages and albums.
    rich_story: bool = setting("RICH_STORY", True, "/story as one rich message", flag)
    # Budgets and prices (USD per million tokens). Unset, a price is the model's list price on
    # the day (bot/model_facts.py).
    daily_token_budget: int = setting(
        "DAILY_TOKEN_BUDGET", 0, "tokens per user per day (0: no limit)", whole, minimum=0
    )
    price_input_per_million: float | None = setting(
        "PRICE_INPUT_PER_MILLION", None, "USD per million input tokens", number, minimum=0
    )
    price_output_per_million: float | None = setting(
        "PRICE_OUTPUT_PER_MILLION", None, "USD per million output tokens", number, minimum=0
    )
    price_cached_input_per_million: float | None = setting(
        "PRICE_CACHED_INPUT_PER_MILLION", None, "USD per million cached input tokens",
        number, minimum=0,
    )  # fmt: skip
    log_level: str = setting("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR", upper)
    # Webhook mode (WEBHOOK_URL set) instead of polling.
    webhook_url: str | None = setting("WEBHOOK_URL", None, "where Telegram posts updates", url)
    webhook_listen: str = setting("WEBHOOK_LISTEN", "0.0.0.0", "the address the bot binds")
    webhook_port: int = setting(
        "WEBHOOK_PORT", 8080, "the port the bot binds", ranged, minimum=1, maximum=65535
    )
    webhook_secret: str = setting(
        "WEBHOOK_SECRET", "", "what Telegram sends with each update", _webhook_secret, secret=True
    )
    webhook_max_connections: int = setting(
        "WEBHOOK_MAX_CONNECTIONS", 40, "connections from Telegram at once", ranged,
        minimum=1, maximum=100,
    )  # fmt: skip
    # Polling mode: GET /healthz on this port when set (webhook mode serves it on its own port).
    health_port: int | None = setting(
        "HEALTH_PORT", None, "port of GET /healthz when polling", ranged, minimum=1, maximum=65535
    )
    health_listen: str = setting("HEALTH_LISTEN", "0.0.0.0", "the address /healthz binds")
    # Replicas on one PostgreSQL: the jobs of a replica silent this long (killed, frozen, cut
    # off) are run again by another; judged on the database's clock.
    job_stall: float = setting(
        "JOB_STALL_SECONDS", 15.0, "a silent replica's jobs pass on after", number, minimum=1
    )
    # Media in an S3-compatible bucket (MEDIA_URL set) instead of DATA_DIR/media.
    media_url: str | None = setting("MEDIA_URL", None, "s3://bucket[/prefix] for media", _media_url)
    s3_endpoint_url: str | None = setting(
        "S3_ENDPOINT_URL", None, "the S3 server (unset: AWS)", url,
        also=("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    )  # fmt: skip
    s3_region: str | None = setting(
        "AWS_REGION", None, "the bucket's region", also=("AWS_DEFAULT_REGION",)
    )
    # Unset: boto3's usual chain (files, the machine's role).
    s3_access_key_id: str | None = setting("AWS_ACCESS_KEY_ID", None, "the bucket's key id")
    s3_secret_access_key: str | None = setting(
        "AWS_SECRET_ACCESS_KEY", None, "the bucket's secret key", secret=True
    )
    media_cache_bytes: int = setting(
        "MEDIA_CACHE_MB", DEFAULT_MEDIA_CACHE_MB * MB, "local copies of bucket media, in MB",
        whole, minimum=1, scale=MB,
    )  # fmt: skip

    @property
    def db_path(self) -> Path:
        """The SQLite file."""
        return self.data_dir / "photostory.sqlite3"

    @property
    def media_bucket(self) -> str | None:
        """MEDIA_URL's bucket, or None to keep media under DATA_DIR/media."""
        return self.media_url.removeprefix("s3://").partition("/")[0] if self.media_url else None

    @property
    def media_prefix(self) -> str:
        """MEDIA_URL's key prefix: '' or ending in '/'."""
        return self.media_url.removeprefix("s3://").partition("/")[2] if self.media_url else ""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a log line or a message."""
        found = (d.secrets(getattr(self, name)) for name, d in declared())
        return tuple(s for parts in found for s in parts)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, require_telegram: bool = True
    ) -> Settings:
        """Read and validate the settings; raise ConfigError with every problem found.

        `require_telegram=False` is for the folder command (bot/cli): no bot token is needed,
        and one that is set anyway is not checked."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, declaration in declared():
            needed = require_telegram or name != "telegram_token"
            try:
                values[name] = declaration.read(env, values, required=needed)
            except Invalid as e:
                problems.append(str(e))
                values[name] = None  # neither its default nor a value: the checks below skip it
        problems += _problems_between(values, require_telegram)
        if problems:
            raise ConfigError(
                "The configuration needs fixing (environment variables or a .env file):\n  - "
                + "\n  - ".join(problems),
                problems=problems,
            )
        return cls(**values)


@cache
def declared() -> tuple[tuple[str, Declared], ...]:
    """Every setting: (its field in Settings, its declaration), in the order above."""
    return declarations(Settings)


def _problems_between(values: Mapping[str, Any], require_telegram: bool) -> list[str]:
    """What is wrong with settings together (each was read on its own above)."""
    problems = []
    token = values["telegram_token"]
    if require_telegram and token and ":" not in token:
        problems.append(
            "TELEGRAM_BOT_TOKEN does not look like a bot token (expected '123456:ABC...')."
        )
    if values["webhook_url"] is not None and values["webhook_secret"] == "":
        problems.append(
            "WEBHOOK_SECRET is not set, and webhook mode (WEBHOOK_URL) needs one: Telegram "
            "sends it with every update so strangers cannot post fake ones. Make one with "
            f"{MAKE_SECRET}"
        )
    if values["media_url"] is not None and (values["s3_access_key_id"] is None) != (
        values["s3_secret_access_key"] is None
    ):
        problems.append(
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together: set both (or neither, "
            "to use the keys of ~/.aws or the machine's role)."
        )
    return problems
