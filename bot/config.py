"""Settings, read once from the environment into one typed object and validated at start-up."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bot.errors import ConfigError

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


@dataclass(frozen=True)
class Settings:
    """Everything the bot can be told from outside. Build it with `Settings.from_env()`."""

    telegram_token: str
    gemini_api_key: str
    gemini_model: str = DEFAULT_MODEL
    data_dir: Path = Path("./data")
    # PostgreSQL instead of the SQLite file (postgresql://user:password@host:port/dbname).
    # Kept out of repr: it may hold a password.
    database_url: str | None = field(default=None, repr=False)
    telegram_api_url: str = DEFAULT_TELEGRAM_API_URL
    telegram_local_mode: bool = False
    # Start-up while Telegram cannot be reached: tries (0: until it answers or SIGTERM), and the
    # first wait between them, doubling up to a minute.
    telegram_connect_attempts: int = 0
    telegram_connect_backoff: float = 1.0
    gemini_base_url: str | None = None
    gemini_api_version: str = "v1beta"
    allowed: AccessList = field(default_factory=AccessList)
    admins: AccessList = field(default_factory=AccessList)
    # Conversation with the model.
    gemini_timeout: float = 180.0
    gemini_attempts: int = 3
    gemini_backoff: float = 2.0
    gemini_max_retry_wait: float = 30.0
    media_resolution: str = "medium"
    video_fps: float = 1.0
    file_poll_interval: float = 1.0
    file_poll_timeout: float = 300.0
    upload_concurrency: int = 8
    # Context caching: the system instruction and the album held at Gemini while a conversation
    # goes on, so follow-ups are billed at the cached price. 0 seconds switches it off.
    gemini_cache_ttl: float = 900.0
    gemini_cache_min_tokens: int = 1024
    # Media intake.
    photo_max_side: int = 1024
    photo_max_bytes: int = 150_000
    max_image_pixels: int = 64_000_000
    max_album_items: int = 300
    download_limit: int = CLOUD_DOWNLOAD_LIMIT
    # Telegram side.
    ack_debounce: float = 1.0
    draft_interval: float = 0.6
    edit_interval: float = 3.0
    # /story as one Telegram rich message (Bot API 10.1+); off: the classic messages and albums.
    rich_story: bool = True
    # Budgets and prices (USD per million tokens).
    daily_token_budget: int = 0
    price_input_per_million: float = 0.75
    price_output_per_million: float = 3.75
    price_cached_input_per_million: float = 0.075
    log_level: str = "INFO"
    # Webhook mode (WEBHOOK_URL set) instead of polling.
    webhook_url: str | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8080
    webhook_secret: str = ""
    webhook_max_connections: int = 40
    # Polling mode: GET /healthz on this port when set (webhook mode serves it on its own port).
    health_port: int | None = None
    health_listen: str = "0.0.0.0"
    # Replicas on one PostgreSQL: a dead replica's chats pass to another after this long.
    chat_lease: float = 15.0
    # Media in an S3-compatible bucket (MEDIA_URL set) instead of DATA_DIR/media.
    media_bucket: str | None = None
    media_prefix: str = ""  # '' or ending in '/'
    s3_endpoint_url: str | None = None  # None: AWS itself
    s3_region: str | None = None
    s3_access_key_id: str | None = None  # None: boto3's usual chain (files, instance role)
    s3_secret_access_key: str | None = None
    media_cache_bytes: int = DEFAULT_MEDIA_CACHE_MB * 2**20

    @property
    def db_path(self) -> Path:
        """The SQLite file."""
        return self.data_dir / "photostory.sqlite3"

    @property
    def database_password(self) -> str | None:
        """The password in DATABASE_URL, if it has one."""
        return urlsplit(self.database_url).password if self.database_url else None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a log line or a message."""
        values = (
            self.telegram_token, self.gemini_api_key, self.webhook_secret,
            self.s3_secret_access_key or "",
            self.database_password or "", unquote(self.database_password or ""),
        )  # fmt: skip
        return tuple(s for s in values if s)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, require_telegram: bool = True
    ) -> Settings:
        """Read and validate the settings; raise ConfigError with every problem found.

        `require_telegram=False` is for the folder command (bot/cli): no bot token is needed,
        and one that is set anyway is not checked."""
        env = os.environ if env is None else env
        reader = _Reader(env)
        if require_telegram:
            token = reader.required(
                "TELEGRAM_BOT_TOKEN",
                "Create a bot with @BotFather in Telegram (/newbot) and put its token here.",
            )
        else:
            token = reader.text("TELEGRAM_BOT_TOKEN", "")
        if require_telegram and token and ":" not in token:
            reader.problems.append(
                "TELEGRAM_BOT_TOKEN does not look like a bot token (expected '123456:ABC...')."
            )
        key = reader.required(
            "GEMINI_API_KEY", "Create a key at https://aistudio.google.com/apikey and put it here."
        )
        local_mode = reader.boolean("TELEGRAM_LOCAL_MODE", False)
        resolution = reader.text("GEMINI_MEDIA_RESOLUTION", "medium").lower()
        if resolution not in MEDIA_RESOLUTIONS:
            reader.problems.append(
                f"GEMINI_MEDIA_RESOLUTION must be one of {', '.join(MEDIA_RESOLUTIONS)}, "
                f"not '{resolution}'."
            )
        webhook_url = reader.url("WEBHOOK_URL", "") or None
        webhook_secret = reader.env.get("WEBHOOK_SECRET", "").strip()
        if webhook_url is not None and not webhook_secret:
            reader.problems.append(
                "WEBHOOK_SECRET is not set, and webhook mode (WEBHOOK_URL) needs one: Telegram "
                "sends it with every update so strangers cannot post fake ones. Make one with "
                f"{MAKE_SECRET}"
            )
        elif webhook_secret and not _SECRET_PATTERN.fullmatch(webhook_secret):
            reader.problems.append(
                "WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and - only. "
                f"Make one with {MAKE_SECRET}"
            )
        bucket, prefix = reader.media_url("MEDIA_URL")
        endpoint = (
            reader.url("S3_ENDPOINT_URL", "")
            or reader.url("AWS_ENDPOINT_URL_S3", "")
            or reader.url("AWS_ENDPOINT_URL", "")
        )
        access_key = reader.env.get("AWS_ACCESS_KEY_ID", "").strip() or None
        secret_key = reader.env.get("AWS_SECRET_ACCESS_KEY", "").strip() or None
        if bucket is not None and (access_key is None) != (secret_key is None):
            reader.problems.append(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together: set both (or neither, "
                "to use the keys of ~/.aws or the machine's role)."
            )
        settings = cls(
            telegram_token=token,
            gemini_api_key=key,
            gemini_model=reader.text("GEMINI_MODEL", DEFAULT_MODEL),
            data_dir=Path(reader.text("DATA_DIR", "./data")).expanduser(),
            database_url=reader.database_url("DATABASE_URL"),
            telegram_api_url=reader.url("TELEGRAM_API_URL", DEFAULT_TELEGRAM_API_URL),
            telegram_local_mode=local_mode,
            telegram_connect_attempts=int(reader.number("TELEGRAM_CONNECT_ATTEMPTS", 0, minimum=0)),
            telegram_connect_backoff=reader.number(
                "TELEGRAM_CONNECT_BACKOFF_SECONDS", 1.0, minimum=0.01
            ),
            gemini_base_url=reader.url("GEMINI_BASE_URL", "") or None,
            gemini_api_version=reader.text("GEMINI_API_VERSION", "v1beta"),
            allowed=reader.access("ALLOWED_USERS"),
            admins=reader.access("ADMIN_USERS"),
            gemini_timeout=reader.number("GEMINI_TIMEOUT_SECONDS", 180.0, minimum=1.0),
            gemini_attempts=int(reader.number("GEMINI_ATTEMPTS", 3, minimum=1)),
            gemini_backoff=reader.number("GEMINI_BACKOFF_SECONDS", 2.0, minimum=0.0),
            gemini_max_retry_wait=reader.number("GEMINI_MAX_RETRY_WAIT_SECONDS", 30.0, minimum=0),
            media_resolution=resolution,
            video_fps=reader.number("GEMINI_VIDEO_FPS", 1.0, minimum=0.01),
            file_poll_interval=reader.number("GEMINI_FILE_POLL_SECONDS", 1.0, minimum=0.01),
            file_poll_timeout=reader.number("GEMINI_FILE_TIMEOUT_SECONDS", 300.0, minimum=0.1),
            upload_concurrency=int(reader.number("GEMINI_UPLOAD_CONCURRENCY", 8, minimum=1)),
            gemini_cache_ttl=reader.number("GEMINI_CACHE_TTL_SECONDS", 900.0, minimum=0),
            gemini_cache_min_tokens=int(reader.number("GEMINI_CACHE_MIN_TOKENS", 1024, minimum=0)),
            photo_max_side=int(reader.number("PHOTO_MAX_SIDE", 1024, minimum=64)),
            photo_max_bytes=int(reader.number("PHOTO_MAX_BYTES", 150_000, minimum=10_000)),
            max_image_pixels=int(reader.number("MAX_IMAGE_PIXELS", 64_000_000, minimum=1_000_000)),
            max_album_items=int(reader.number("MAX_ALBUM_ITEMS", 300, minimum=1)),
            download_limit=int(
                reader.number(
                    "DOWNLOAD_LIMIT_MB",
                    (LOCAL_DOWNLOAD_LIMIT if local_mode else CLOUD_DOWNLOAD_LIMIT) / 2**20,
                    minimum=1,
                )
                * 2**20
            ),
            ack_debounce=reader.number("ACK_DEBOUNCE_SECONDS", 1.0, minimum=0.0),
            draft_interval=reader.number("DRAFT_INTERVAL_SECONDS", 0.6, minimum=0.0),
            edit_interval=reader.number("EDIT_INTERVAL_SECONDS", 3.0, minimum=0.0),
            rich_story=reader.boolean("RICH_STORY", True),
            daily_token_budget=int(reader.number("DAILY_TOKEN_BUDGET", 0, minimum=0)),
            price_input_per_million=reader.number("PRICE_INPUT_PER_MILLION", 0.75, minimum=0),
            price_output_per_million=reader.number("PRICE_OUTPUT_PER_MILLION", 3.75, minimum=0),
            price_cached_input_per_million=reader.number(
                "PRICE_CACHED_INPUT_PER_MILLION", 0.075, minimum=0
            ),
            log_level=reader.text("LOG_LEVEL", "INFO").upper(),
            webhook_url=webhook_url,
            webhook_listen=reader.text("WEBHOOK_LISTEN", "0.0.0.0"),
            webhook_port=reader.port("WEBHOOK_PORT", 8080),
            webhook_secret=webhook_secret,
            webhook_max_connections=reader.integer("WEBHOOK_MAX_CONNECTIONS", 40, 1, 100),
            health_port=reader.port("HEALTH_PORT", 1) if reader.env.get("HEALTH_PORT") else None,
            health_listen=reader.text("HEALTH_LISTEN", "0.0.0.0"),
            chat_lease=reader.number("CHAT_LEASE_SECONDS", 15.0, minimum=1.0),
            media_bucket=bucket,
            media_prefix=prefix,
            s3_endpoint_url=endpoint or None,
            s3_region=(
                reader.env.get("AWS_REGION", "").strip()
                or reader.env.get("AWS_DEFAULT_REGION", "").strip()
                or None
            ),
            s3_access_key_id=access_key,
            s3_secret_access_key=secret_key,
            media_cache_bytes=int(
                reader.number("MEDIA_CACHE_MB", DEFAULT_MEDIA_CACHE_MB, minimum=1) * 2**20
            ),
        )
        if reader.problems:
            raise ConfigError(
                "The configuration needs fixing (environment variables or a .env file):\n  - "
                + "\n  - ".join(reader.problems),
                problems=reader.problems,
            )
        return settings


class _Reader:
    """Reads variables and collects every problem, so one start-up reports them all."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def text(self, name: str, default: str) -> str:
        value = self.env.get(name, "").strip()
        return value or default

    def required(self, name: str, how: str) -> str:
        value = self.env.get(name, "").strip()
        if not value:
            self.problems.append(f"{name} is not set. {how}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.env.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{name} must be true or false, not '{raw}'.")
        return default

    def number(self, name: str, default: float, minimum: float | None = None) -> float:
        raw = self.env.get(name, "").strip()
        if not raw:
            return float(default)
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name} must be a number, not '{raw}'.")
            return float(default)
        if not math.isfinite(value) or (minimum is not None and value < minimum):
            self.problems.append(f"{name} must be at least {minimum:g}, not '{raw}'.")
            return float(default)
        return value

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = minimum - 1
        if not minimum <= value <= maximum:
            self.problems.append(
                f"{name} must be a whole number from {minimum} to {maximum}, not '{raw}'."
            )
            return default
        return value

    def port(self, name: str, default: int) -> int:
        return self.integer(name, default, 1, 65535)

    def url(self, name: str, default: str) -> str:
        raw = self.env.get(name, "").strip().rstrip("/")
        if not raw:
            return default
        if not raw.startswith(("http://", "https://")):
            self.problems.append(f"{name} must start with http:// or https:// (got '{raw}').")
            return default
        return raw

    def media_url(self, name: str) -> tuple[str | None, str]:
        """s3://bucket[/prefix] as (bucket, prefix ending in '/' or ''); (None, '') if unset."""
        raw = self.env.get(name, "").strip()
        if not raw:
            return None, ""
        match = _MEDIA_URL_PATTERN.fullmatch(raw)
        if match is None or ".." in match.group(1):
            self.problems.append(
                f"{name} must look like s3://bucket or s3://bucket/prefix (a bucket name of "
                f"3-63 lower-case letters, digits, dots and hyphens), not '{raw}'. Leave it "
                "unset to keep media under DATA_DIR/media."
            )
            return None, ""
        prefix = (match.group(2) or "").strip("/")
        return match.group(1), f"{prefix}/" if prefix else ""

    def database_url(self, name: str) -> str | None:
        raw = self.env.get(name, "").strip()
        if not raw:
            return None
        # Only the scheme is ever repeated back: the rest may hold a password.
        scheme = raw.partition("://")[0] if "://" in raw else ""
        if scheme.lower() not in DATABASE_SCHEMES:
            shown = f"'{scheme}://'" if scheme else "no scheme"
            self.problems.append(
                f"{name} must be a PostgreSQL address, postgresql://user:password@host:5432/dbname "
                f"(or postgres://...), not {shown}. Leave it unset to keep the SQLite file in "
                "DATA_DIR."
            )
            return None
        try:
            urlsplit(raw).port  # noqa: B018 (raises on a port that is not a number)
        except ValueError:
            self.problems.append(
                f"{name} is not a valid address (check the host and port): "
                "postgresql://user:password@host:5432/dbname."
            )
            return None
        return raw

    def access(self, name: str) -> AccessList:
        try:
            return AccessList.parse(self.env.get(name, ""), name)
        except ConfigError as e:
            self.problems.append(str(e))
            return AccessList()
