"""Runs the real bot (real PTB Application, real google-genai) against the two fakes on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import psycopg
from botocore.exceptions import ClientError
from telegram.ext import Application

from bot.config import Settings
from bot.telegram.app import build_application
from bot.telegram.runtime import KEY, Runtime
from bot.wiring import Services, media_location
from storage.s3_blobs import s3_client
from tests.fakes.gemini_api import FakeGemini, Reply
from tests.fakes.telegram_api import FakeTelegram, SentMessage
from tests.image_files import jpeg

TOKEN = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz"
API_KEY = "test-gemini-key-0123456789"
ANA, BOB, EVE = 111, 222, 666  # Ana and Bob are allowed, Eve is not
DATA = Path(__file__).parent / "data"
JSON = dict[str, Any]


def free_port() -> int:
    """A TCP port nothing on 127.0.0.1 listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bot_env(tg: FakeTelegram, gemini: FakeGemini, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment the bot is configured by, pointing at the fakes, with fast timings."""
    env = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "GEMINI_API_KEY": API_KEY,
        "TELEGRAM_API_URL": tg.url,
        "GEMINI_BASE_URL": gemini.url,
        "DATA_DIR": str(data_dir),
        "ALLOWED_USERS": f"{ANA},{BOB}",
        "ACK_DEBOUNCE_SECONDS": "0.3",
        "GEMINI_BACKOFF_SECONDS": "0.01",
        "GEMINI_FILE_POLL_SECONDS": "0.01",
        "GEMINI_FILE_TIMEOUT_SECONDS": "5",
        "GEMINI_TIMEOUT_SECONDS": "10",
        "DRAFT_INTERVAL_SECONDS": "0",
        "EDIT_INTERVAL_SECONDS": "0",
        "LOG_LEVEL": "DEBUG",
        # The classic story (messages and albums) is what most tests read; the rich story's
        # tests switch rich messages on (tests/test_rich_story_e2e.py), as the product does.
        "RICH_STORY": "false",
        # Context caching changes what follow-ups send; tests of it switch it on
        # (tests/test_context_cache_e2e.py), the rest assert on whole requests.
        "GEMINI_CACHE_TTL_SECONDS": "0",
    }
    env.update(extra)
    return env


# Seconds a test waits for the bot to say something: far above any machine's need (a loaded
# 2-core machine took over 10 s to prepare six full-size photos for the model).
WAIT_TEXT = 60.0


class FailingFirst:
    """A fault a test injects into one of the bot's own async methods: its first `times` calls
    raise `error` (after awaiting `before`, if given: what happens meanwhile), later ones call
    the real method. `failed` holds the arguments of the calls it failed."""

    def __init__(
        self,
        real: Callable[..., Awaitable[Any]],
        error: BaseException,
        times: int = 1,
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.real, self.error, self.times, self.before = real, error, times, before
        self.failed: list[tuple[Any, ...]] = []

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(self.failed) < self.times:
            self.failed.append(args)
            if self.before is not None:
                await self.before()
            raise self.error
        return await self.real(*args, **kwargs)


class Harness:
    """One bot process-in-a-task plus the fakes it talks to, and helpers to drive and inspect."""

    def __init__(self, tg: FakeTelegram, gemini: FakeGemini, data_dir: Path, **extra: str) -> None:
        self.tg = tg
        self.gemini = gemini
        self.data_dir = data_dir
        self.settings = Settings.from_env(bot_env(tg, gemini, data_dir, **extra))
        self.app: Application | None = None  # type: ignore[type-arg]
        self.ana = tg.user(user_id=ANA, first_name="Ana", username="ana", language_code="en")
        self.bob = tg.user(user_id=BOB, first_name="Bob", username="bob", language_code="pt-br")
        # Bob's Telegram is in Brazilian Portuguese, so the bot answers him in it; tests that
        # read its English replies to him use Bob with his app in English.
        self.bob_en = {**self.bob, "language_code": "en"}
        self.eve = tg.user(user_id=EVE, first_name="Eve", username="eve", language_code="en")
        self.chat = tg.private_chat(self.ana)

    async def start(self) -> None:
        """Start the Application the way run_polling does, inside the test's event loop."""
        app = build_application(self.settings)
        await app.initialize()
        if app.post_init is not None:
            await app.post_init(app)
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        await app.start()
        self.app = app

    async def stop(self) -> None:
        """Stop it the way run_polling does on SIGTERM."""
        app, self.app = self.app, None
        if app is None:
            return
        assert app.updater is not None
        if app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
            if app.post_stop is not None:
                await app.post_stop(app)
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)

    async def restart(self) -> None:
        """A new Application over the same DATA_DIR, as after a process restart."""
        await self.stop()
        await self.start()

    @property
    def services(self) -> Services:
        """The running bot's services (its storage, its album service...)."""
        assert self.app is not None, "start() first"
        runtime = self.app.bot_data[KEY]
        assert isinstance(runtime, Runtime)
        return runtime.services

    # Reading the results back ------------------------------------------------------------

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row] | list[PgRow]:
        """Query the bot's real database: its SQLite file, or PostgreSQL with DATABASE_URL."""
        if self.settings.database_url:
            return pg_rows(self.settings.database_url, sql, params)
        conn = sqlite3.connect(self.settings.db_path)
        conn.row_factory = sqlite3.Row
        try:
            return list(conn.execute(sql, params))
        finally:
            conn.close()

    async def wait_stored(self, timeout: float = 30.0, copies: bool = True) -> None:
        """Wait until every file received is downloaded, checked and stored, with its model
        copy unless `copies` is False (the acknowledgement counts a file once received,
        before any of that)."""

        def settled() -> bool:
            waiting = self.rows("SELECT COUNT(*) AS n FROM arrivals")[0]["n"]
            if not copies:
                return bool(waiting == 0)
            unmade = self.rows(
                "SELECT COUNT(*) AS n FROM items WHERE model_ready = 0 AND model_failed IS NULL"
            )[0]["n"]
            return bool(waiting == 0 and unmade == 0)

        await self.tg.wait_for(settled, timeout=timeout)

    def media_files(self) -> list[Path]:
        """Every stored blob: files under DATA_DIR/media, or with MEDIA_URL set the bucket's
        objects under the prefix (as paths `bucket/key`, so `.name` is the sha256 either way)."""
        location = media_location(self.settings)
        if location is None:
            return sorted(p for p in (self.data_dir / "media").rglob("*") if p.is_file())
        pages = s3_client(location).get_paginator("list_objects_v2")
        return sorted(
            Path(location.bucket, entry["Key"])
            for page in pages.paginate(Bucket=location.bucket, Prefix=location.prefix)
            for entry in page.get("Contents", [])
        )

    def blob_bytes(self, sha256: str) -> bytes | None:
        """A stored blob's bytes, from DATA_DIR/media or the bucket; None if it is not stored."""
        location = media_location(self.settings)
        if location is None:
            path = self.data_dir / "media" / sha256[:2] / sha256
            return path.read_bytes() if path.is_file() else None
        key = f"{location.prefix}{sha256[:2]}/{sha256}"
        try:
            return s3_client(location).get_object(Bucket=location.bucket, Key=key)["Body"].read()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise

    def texts(self, chat_id: int) -> list[str]:
        """The current text (or caption) of every message the bot sent in a chat."""
        return texts(self.tg, chat_id)

    async def wait_text(self, chat_id: int, needle: str, timeout: float = WAIT_TEXT) -> str:
        """Wait until a bot message in the chat contains `needle`; return its text."""

        def found() -> str | None:
            for text in self.texts(chat_id):
                if needle.lower() in text.lower():
                    return text
            return None

        result = await self.tg.wait_for(found, timeout=timeout)
        assert isinstance(result, str)
        return result

    async def wait_reply(self, message: JSON, needle: str) -> str:
        """Wait for the bot's reply to `message` in Ana's chat; check it says `needle`."""

        def replied() -> str | None:
            for sent in self.tg.bot_messages(self.chat["id"]):
                if sent.reply_to_message_id == message["message_id"] and sent.text:
                    return sent.text
            return None

        text = str(await self.tg.wait_for(replied, timeout=WAIT_TEXT))
        assert needle.lower() in text.lower()
        return text

    async def first_button(self, chat_id: int, needle: str) -> tuple[int, str]:
        """Wait for the bot's message containing `needle`; its id and its first button's data
        (the "yes" of a question such as /forget's)."""

        def asked() -> SentMessage | None:
            for sent in self.tg.bot_messages(chat_id):
                if needle in (sent.text or ""):
                    return sent
            return None

        ask: SentMessage = await self.tg.wait_for(asked, timeout=WAIT_TEXT)
        assert ask.reply_markup is not None
        return ask.message_id, str(ask.reply_markup["inline_keyboard"][0][0]["callback_data"])

    async def two_photos(self, *, model_ready: bool = False) -> None:
        """Ana sends two distinct photos; wait for their acknowledgement and, with
        `model_ready`, for the model's copies (made just after it)."""
        self.tg.send_photo(self.chat, self.ana, jpeg(1))
        self.tg.send_photo(self.chat, self.ana, jpeg(2))
        await self.wait_text(self.chat["id"], "2 photos")
        # Acknowledged once received; stored (and, with `model_ready`, copied) by their jobs.
        await self.wait_stored(copies=model_ready)

    async def album_with_story(self, photos: int = 3) -> list[JSON]:
        """Ana sends photos, then /story; wait until the story is posted and stored (its
        closing comes last). Returns the photo messages."""
        tg, chat, ana = self.tg, self.chat, self.ana
        sent = [tg.send_photo(chat, ana, jpeg(n)) for n in range(photos)]
        await self.wait_text(chat["id"], f"{photos} photos")
        self.gemini.enqueue(Reply(text="# Story\n\nThe tram (photo 1) and the river (photo 2)."))
        tg.send_command(chat, ana, "/story")
        await self.wait_text(chat["id"], "That was the story of")
        return sent


def texts(tg: FakeTelegram, chat_id: int) -> list[str]:
    """The current text (or caption) of every message the bot sent in a chat (not deleted)."""
    return [m.text or m.caption or "" for m in tg.bot_messages(chat_id) if not m.deleted]


def said(tg: FakeTelegram, chat_id: int, needle: str) -> bool:
    """Whether a message the bot sent in the chat contains `needle` (case matters)."""
    return any(needle in text for text in texts(tg, chat_id))


def acks(tg: FakeTelegram, chat_id: int) -> list[str]:
    """The bot's acknowledgements of media in a chat ("📸 …")."""
    return [text for text in texts(tg, chat_id) if text.startswith("📸")]


def ever_said(tg: FakeTelegram, chat_id: int) -> list[str]:
    """The last text (or caption) of every message the bot sent in a chat, deleted ones too:
    what the traveller saw at some point."""
    return [m.text or m.caption or "" for m in tg.bot_messages(chat_id)]


class PgRow(dict[str, Any]):
    """A PostgreSQL row read like sqlite3.Row: by column name or by position, and iterated
    (`tuple(row)`) as its values; `dict(row)` still gives names to values."""

    def __getitem__(self, key: str | int) -> Any:
        return list(self.values())[key] if isinstance(key, int) else super().__getitem__(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self.values()))


def pg_rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[PgRow]:
    """Run a test's query (written for SQLite, with ? placeholders) on PostgreSQL."""

    def factory(cursor: psycopg.Cursor[Any]) -> Any:
        names = [c.name for c in cursor.description or ()]
        return lambda values: PgRow(zip(names, values, strict=True))

    with psycopg.connect(url, row_factory=factory) as conn:
        cursor = conn.execute(sql.replace("?", "%s"), params)
        return list(cursor) if cursor.description else []


CHECKOUT = Path(__file__).resolve().parents[1]


class StillRunning(TimeoutError):
    """A bot process that should have exited by now (with its threads' stacks)."""


TROUBLES_SHOWN = 15  # log lines a failed wait shows of each bot process
_TROUBLE = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) ")


class BotProcess:
    """`python -m bot` as a child process, configured only by environment variables."""

    running: ClassVar[list[BotProcess]] = []  # killed after each test, should one be left

    def __init__(
        self, tg: FakeTelegram, gemini: FakeGemini, data_dir: Path, log: Path, **extra: str
    ) -> None:
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "GEMINI_"))
        }
        self.env.update(bot_env(tg, gemini, data_dir, **extra))
        self.env["NO_PROXY"] = "127.0.0.1,localhost"
        # `python -m bot` of this checkout, whatever checkout the environment's install names.
        paths = [p for p in self.env.get("PYTHONPATH", "").split(os.pathsep) if p]
        self.env["PYTHONPATH"] = os.pathsep.join([str(CHECKOUT), *paths])
        self.cwd = data_dir.parent
        self.log = log
        self.process: asyncio.subprocess.Process | None = None
        tg.witnesses.append(self.troubles)  # a wait on the fake that fails shows them

    async def start(self, *python_options: str) -> None:
        """Spawn the bot (`python_options` before `-m bot`, e.g. "-X", "importtime"); its stderr
        and stdout go to the log file."""
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, *python_options, "-m", "bot",
                cwd=self.cwd, env=self.env, stdout=out, stderr=out,
            )  # fmt: skip
        BotProcess.running.append(self)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send a signal and wait for the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await self.wait(timeout)

    async def wait(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit; return its exit code. One still running `timeout`
        seconds later is asked for its threads' stacks (SIGUSR1, written by faulthandler), and
        StillRunning shows them."""
        assert self.process is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self.process.wait()), timeout=timeout)
        except TimeoutError:
            pass
        before = len(self.output())
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGUSR1)

        def dumped() -> bool:
            return "most recent call first" in self.output()[before:]

        for _ in range(100):  # 5 s at most: it is written at once
            if dumped() or self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise StillRunning(
            f"the bot had not exited {timeout} s later; its threads then:\n"
            + self.output()[before:][-20000:]
        )

    def output(self) -> str:
        """Everything the process logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def troubles(self, most: int = TROUBLES_SHOWN) -> str:
        """The last warnings and errors the process logged (each record's first line), for a
        failed test to show what the bot saw go wrong."""
        lines = [line for line in self.output().splitlines() if _TROUBLE.search(line)]
        shown = "\n  ".join(line[:300] for line in lines[-most:]) or "(none)"
        return f"the bot's last warnings and errors ({self.log.name}):\n  {shown}"
