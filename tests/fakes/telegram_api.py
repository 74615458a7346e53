"""FakeTelegram: a local Bot API server that the real python-telegram-bot talks to in tests.

The bot under test keeps its real HTTP stack and polling loop; only `base_url` and
`base_file_url` point here. The fake queues updates that tests "send" as users, answers
the Bot API methods the project uses with the real wire shapes and errors, records every call,
and can be told to fail. Facts it honours: /work/shared/notes/telegram-bot-api.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import io
import itertools
import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image

from .polling import wait_for
from .telegram_html import (
    TelegramParseError,
    parse_html,
    parse_markdown,
    parse_markdown_v2,
    utf16_len,
)
from .telegram_rich import RichCheck, RichError, check_rich_message

JSON = dict[str, Any]
# Counted in UTF-16 units. The docs say "characters" and reports disagree on astral
# characters; the stricter reading means whatever Telegram refuses, the fake refuses too.
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_DOWNLOAD = 20 * 1024 * 1024  # getFile limit of the cloud Bot API
MAX_UPLOAD = 50 * 1024 * 1024  # bot uploads to the cloud Bot API
MAX_BODY = 128 * 1024 * 1024  # aiohttp's default of 1 MiB would refuse real photo uploads
BOT_USERNAME = "photostory_test_bot"
CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
CHAT_ACTIONS = frozenset(
    "typing upload_photo record_video upload_video record_voice upload_voice upload_document "
    "choose_sticker find_location record_video_note upload_video_note".split()
)
# Parameters that are strings on the wire even when they look like JSON ("123", "true").
STRING_PARAMS = frozenset(
    "text caption parse_mode callback_query_id file_id action media_group_id photo document "
    "video animation audio voice video_note sticker thumbnail url inline_message_id "
    "business_connection_id message_effect_id language_code title description emoji".split()
)
DEFAULT_DESCRIPTIONS = {
    400: "Bad Request: request failed",
    403: "Forbidden: bot was blocked by the user",
    409: CONFLICT,
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class ApiError(Exception):
    """An error reply of the Bot API: HTTP status = error_code, like the real server."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after


def bad_request(description: str) -> ApiError:
    """A 400 with Telegram's "Bad Request: " prefix."""
    return ApiError(400, f"Bad Request: {description}")


@dataclass
class Call:
    """One Bot API request as the fake received it, with what it answered."""

    method: str
    params: JSON
    files: dict[str, bytes]
    time: float
    file_names: dict[str, str] = field(default_factory=dict)
    result: Any = None
    error: str | None = None


@dataclass
class SentMessage:
    """A message the bot sent, with its current state and every text version."""

    message_id: int
    chat_id: int
    kind: str  # "text", "photo", "document", "video"
    message: JSON  # the wire dict, kept current across edits
    text: str | None = None
    html: str | None = None  # the raw text or caption as last sent, before parsing
    parse_mode: str | None = None
    entities: list[JSON] = field(default_factory=list)
    reply_markup: JSON | None = None
    history: list[str] = field(default_factory=list)
    deleted: bool = False
    caption: str | None = None
    media_group_id: str | None = None
    reply_to_message_id: int | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    rich: JSON | None = None  # the InputRichMessage of a rich message, as last sent


@dataclass
class StoredFile:
    """A file the fake can serve through getFile: its bytes and the size Telegram claims."""

    file_id: str
    file_unique_id: str
    data: bytes
    file_size: int
    file_path: str


@dataclass
class _Request:
    params: JSON
    files: dict[str, bytes]
    file_names: dict[str, str]
    mime_types: dict[str, str]


def _language_code(params: JSON) -> str:
    """A per-language setting's language_code: empty (the default) or two ISO 639-1 letters."""
    code = str(params.get("language_code") or "")
    if code and not re.fullmatch(r"[a-z]{2}", code):
        raise bad_request("LANG_CODE_INVALID")
    return code


def _mentions(text: str | None) -> list[JSON] | None:
    """The mention entities Telegram finds in a caption ("@name"), UTF-16 offsets."""
    if not text:
        return None
    found = [
        {"type": "mention", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m[0])}
        for m in re.finditer(r"@[A-Za-z0-9_]{5,32}", text)
    ]
    return found or None


def _unique_id(data: bytes) -> str:
    """Content-derived file_unique_id: the same bytes give the same id, as on Telegram."""
    return "AQAD" + hashlib.sha256(data).hexdigest()[:16]


def _photo_versions(data: bytes) -> list[tuple[bytes, int, int]]:
    """(bytes, width, height) for a thumbnail of at most 90 px and the full image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            full = image.size
            thumb = image.convert("RGB")
    except Exception as exc:
        raise ValueError("photo bytes are not an image Pillow can open") from exc
    thumb.thumbnail((90, 90))
    buffer = io.BytesIO()
    thumb.save(buffer, "JPEG", quality=80)
    return [(buffer.getvalue(), *thumb.size), (data, *full)]


class FakeTelegram:
    """An aiohttp Bot API server on 127.0.0.1 that records calls and serves queued updates."""

    def __init__(self, token: str = "123:ABC", local_mode: bool = False) -> None:
        self.token = token
        self.local_mode = local_mode
        # TDLib keeps a bare "&" literally; flip this to enforce the documented escaping rule.
        self.strict_html_entities = False
        bot_id = token.split(":")[0]
        self.bot_user: JSON = {
            "id": int(bot_id) if bot_id.isdigit() else 1,
            "is_bot": True,
            "first_name": "Photostory",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        # messages carry the short User, getMe the full one
        self._sender = {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}
        self.url = ""
        self.requests: list[Call] = []
        # What else a wait that failed shows, each a function saying it now (a bot process's
        # warnings and errors: tests/harness.py's BotProcess adds its own).
        self.witnesses: list[Callable[[], str]] = []
        self.commands: list[JSON] = []
        self._chats: dict[int, JSON] = {}
        self._messages: dict[tuple[int, int], JSON] = {}
        self._sent: dict[int, list[SentMessage]] = {}
        self._next_message_id: dict[int, int] = {}
        self._updates: list[JSON] = []
        self._every_update: dict[int, JSON] = {}  # by update_id, for `redeliver`
        # Called with each request as it arrives, before it is answered (`watch`).
        self._watchers: dict[str, Callable[[Call], None]] = {}
        self._update_ids = itertools.count(1)
        self._ids = itertools.count(1)
        self._files: dict[str, StoredFile] = {}
        self._paths: dict[str, StoredFile] = {}
        self._drafts: dict[int, list[tuple[int, str]]] = {}
        self._rich_drafts: dict[int, list[tuple[int, JSON]]] = {}
        # False plays a Bot API server older than 10.1: no rich-message methods at all.
        self.rich_supported = True
        self._actions: dict[int, list[str]] = {}
        self._queries: dict[str, JSON] = {}
        self._answered: set[str] = set()
        self._failures: dict[str, list[list[Any]]] = {}
        self._download_failures: dict[str, list[str]] = {}
        self._download_gates: dict[str, asyncio.Event] = {}
        self._method_gates: dict[str, asyncio.Event] = {}
        self._downloads: list[str] = []
        self._allowed_updates: list[str] = []
        self.webhook: JSON | None = None  # the parameters of the last setWebhook, while set
        # Per-language settings, by language_code ("" for the default, as Telegram keys them).
        self.commands_by_language: dict[str, list[JSON]] = {}
        self.descriptions: dict[str, str] = {}
        self.short_descriptions: dict[str, str] = {}
        self._active_poll: object | None = None
        self._changed = asyncio.Event()
        self._stopping = False
        self._runner: web.AppRunner | None = None
        self._tmp = Path(tempfile.gettempdir())  # replaced by a private directory in start()
        self._methods: dict[str, Callable[[_Request], Any]] = {
            name.lower(): getattr(self, f"_api_{name}")
            for name in (
                "getMe setWebhook deleteWebhook getUpdates setMyCommands getMyCommands deleteMyCommands "
                "setMyDescription getMyDescription setMyShortDescription getMyShortDescription "
                "sendMessage editMessageText editMessageReplyMarkup "
                "deleteMessage sendChatAction sendMessageDraft answerCallbackQuery getFile "
                "sendPhoto sendDocument sendVideo sendMediaGroup setMessageReaction getChat "
                "sendRichMessage sendRichMessageDraft"
            ).split()
        }

    # ----- lifecycle -------------------------------------------------------------------------

    async def start(self, port: int = 0) -> FakeTelegram:
        """Listen on `port` of 127.0.0.1 (0: a free one) and set `url`."""
        self._tmp = Path(tempfile.mkdtemp(prefix="fake-telegram-"))
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_download)
        # a short shutdown: pending long polls are released by stop() before cleanup
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        """Release pending long polls, close the server and delete written files."""
        self._stopping = True
        self._wake()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            shutil.rmtree(self._tmp, ignore_errors=True)

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----- what users do ---------------------------------------------------------------------

    def user(
        self,
        user_id: int = 111,
        first_name: str = "Ana",
        username: str | None = "ana",
        language_code: str | None = "en",
    ) -> JSON:
        """A Telegram User dict for a human."""
        user = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "username": username,
            "language_code": language_code,
        }
        return {k: v for k, v in user.items() if v is not None}

    def private_chat(self, user: JSON) -> JSON:
        """The private chat between `user` and the bot."""
        chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        if "username" in user:
            chat["username"] = user["username"]
        self._chats[chat["id"]] = chat
        return chat

    def group_chat(self, chat_id: int = -100500, title: str = "Trip") -> JSON:
        """A supergroup the bot is a member of."""
        chat = {"id": chat_id, "type": "supergroup", "title": title}
        self._chats[chat_id] = chat
        return chat

    def send_text(
        self, chat: JSON, user: JSON, text: str, reply_to: int | JSON | None = None
    ) -> JSON:
        """Queue a text message from `user`; returns the message dict."""
        return self._user_message(chat, user, reply_to, text=text)

    def send_command(self, chat: JSON, user: JSON, command: str) -> JSON:
        """Queue a command such as "/story shorter" with its bot_command entity at offset 0."""
        if not command.startswith("/"):
            raise ValueError(f"a command starts with '/': {command!r}")
        name = command.split(maxsplit=1)[0]
        entity = {"type": "bot_command", "offset": 0, "length": utf16_len(name)}
        return self._user_message(chat, user, None, text=command, entities=[entity])

    def send_photo(
        self,
        chat: JSON,
        user: JSON,
        data: bytes,
        caption: str | None = None,
        media_group_id: str | None = None,
        reply_to: int | JSON | None = None,
    ) -> JSON:
        """Queue a compressed photo: two PhotoSize entries, smallest first."""
        sizes = self._photo_sizes(data)
        return self._user_message(
            chat, user, reply_to, photo=sizes, caption=caption, media_group_id=media_group_id
        )

    def send_document(
        self,
        chat: JSON,
        user: JSON,
        data: bytes,
        file_name: str = "IMG_1.HEIC",
        mime_type: str = "image/heic",
        caption: str | None = None,
        media_group_id: str | None = None,
        file_size: int | None = None,
        reply_to: int | JSON | None = None,
    ) -> JSON:
        """Queue a file "sent as document"; `file_size` may claim more than len(data)."""
        stored = self._store(data, "documents", Path(file_name).suffix, file_size)
        document = {**self._file_dict(stored), "file_name": file_name, "mime_type": mime_type}
        return self._user_message(
            chat, user, reply_to, document=document, caption=caption, media_group_id=media_group_id
        )

    def send_location(
        self,
        chat: JSON,
        user: JSON,
        latitude: float,
        longitude: float,
        title: str | None = None,
        address: str | None = None,
        reply_to: int | JSON | None = None,
    ) -> JSON:
        """Queue a shared location, or a place (venue) when `title` is given."""
        location = {"latitude": latitude, "longitude": longitude}
        if title is None:
            return self._user_message(chat, user, reply_to, location=location)
        venue = {"location": location, "title": title, "address": address or ""}
        return self._user_message(chat, user, reply_to, location=location, venue=venue)

    def send_sticker(self, chat: JSON, user: JSON, emoji: str = "😀") -> JSON:
        """Queue a (static) sticker."""
        stored = self._store(b"RIFF\x00\x00\x00\x00WEBP", "stickers", ".webp")
        sticker = {
            **self._file_dict(stored),
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
        }
        return self._user_message(chat, user, None, sticker=sticker)

    def send_voice(
        self,
        chat: JSON,
        user: JSON,
        data: bytes = b"OggS",
        duration: int = 3,
        caption: str | None = None,
        file_size: int | None = None,
        reply_to: int | JSON | None = None,
        mime_type: str = "audio/ogg",
    ) -> JSON:
        """Queue a voice message (Voice: duration, mime_type, file_size; Ogg/Opus as recorded);
        `file_size` may claim more than len(data)."""
        stored = self._store(data, "voice", ".oga", file_size)
        voice = {**self._file_dict(stored), "duration": duration, "mime_type": mime_type}
        return self._user_message(
            chat, user, reply_to, voice=voice, caption=caption,
            caption_entities=_mentions(caption),
        )  # fmt: skip

    def send_audio(
        self,
        chat: JSON,
        user: JSON,
        data: bytes,
        file_name: str = "recording.m4a",
        mime_type: str = "audio/mp4",
        duration: int = 3,
        caption: str | None = None,
        file_size: int | None = None,
        reply_to: int | JSON | None = None,
    ) -> JSON:
        """Queue an audio file (Audio: duration, file_name, mime_type, file_size)."""
        stored = self._store(data, "music", Path(file_name).suffix, file_size)
        audio = {
            **self._file_dict(stored),
            "duration": duration,
            "file_name": file_name,
            "mime_type": mime_type,
        }
        return self._user_message(
            chat, user, reply_to, audio=audio, caption=caption,
            caption_entities=_mentions(caption),
        )  # fmt: skip

    def edit_message(self, message: JSON, **changes: Any) -> JSON:
        """Queue the user's edit of an earlier message (new caption or text) as Telegram does;
        a change to None removes the field (a caption taken away)."""
        edited = {**message, **changes, "edit_date": int(time.time())}
        edited = {k: v for k, v in edited.items() if v is not None}
        self._messages[(message["chat"]["id"], message["message_id"])] = edited
        self._queue({"edited_message": edited})
        return edited

    def send_video(
        self,
        chat: JSON,
        user: JSON,
        data: bytes,
        duration: int = 4,
        width: int = 1280,
        height: int = 720,
        mime_type: str = "video/mp4",
        file_name: str | None = None,
        caption: str | None = None,
        media_group_id: str | None = None,
        file_size: int | None = None,
        reply_to: int | JSON | None = None,
    ) -> JSON:
        """Queue a video; `file_size` may claim more than len(data)."""
        stored = self._store(data, "videos", ".mp4", file_size)
        video = {
            **self._file_dict(stored),
            "duration": duration,
            "width": width,
            "height": height,
            "mime_type": mime_type,
        }
        if file_name:
            video["file_name"] = file_name
        return self._user_message(
            chat, user, reply_to, video=video, caption=caption, media_group_id=media_group_id
        )

    def send_video_note(
        self,
        chat: JSON,
        user: JSON,
        data: bytes,
        duration: int = 5,
        length: int = 384,
        file_size: int | None = None,
    ) -> JSON:
        """Queue a round video message."""
        stored = self._store(data, "video_notes", ".mp4", file_size)
        note = {**self._file_dict(stored), "duration": duration, "length": length}
        return self._user_message(chat, user, None, video_note=note)

    def send_animation(
        self,
        chat: JSON,
        user: JSON,
        data: bytes,
        duration: int = 3,
        width: int = 320,
        height: int = 240,
        file_size: int | None = None,
    ) -> JSON:
        """Queue a GIF-like clip; Telegram also fills `document` for old clients."""
        stored = self._store(data, "animations", ".mp4", file_size)
        base = {**self._file_dict(stored), "file_name": "animation.mp4", "mime_type": "video/mp4"}
        animation = {**base, "duration": duration, "width": width, "height": height}
        return self._user_message(chat, user, None, animation=animation, document=base)

    def press_button(self, chat: JSON, user: JSON, message_id: int, callback_data: str) -> JSON:
        """Queue a callback_query for an inline button of a bot message; returns the query."""
        try:
            sent = self._bot_message(chat["id"], message_id, "message not found")
        except ApiError as exc:
            raise ValueError(f"no bot message {message_id} to press: {exc.description}") from exc
        buttons = [
            b.get("callback_data")
            for row in (sent.reply_markup or {}).get("inline_keyboard", [])
            for b in row
        ]
        if callback_data not in buttons:
            raise ValueError(f"message {message_id} has no button {callback_data!r}: {buttons}")
        query: JSON = {
            "id": str(next(self._ids) + 10**15),
            "from": user,
            "message": sent.message,
            "chat_instance": str(abs(chat["id"]) * 7919),
            "data": callback_data,
        }
        self._queries[query["id"]] = query
        self._queue({"callback_query": query})
        return query

    # ----- what tests read -------------------------------------------------------------------

    def calls(self, method: str) -> list[Call]:
        """Calls of one method, in order (method names are case-insensitive, as on Telegram)."""
        return [c for c in self.requests if c.method.lower() == method.lower()]

    def bot_messages(self, chat_id: int) -> list[SentMessage]:
        """Messages the bot sent in a chat, in order, deleted ones included (flagged)."""
        return list(self._sent.get(chat_id, []))

    def drafts(self, chat_id: int) -> list[tuple[int, str]]:
        """(draft_id, plain text) of every sendMessageDraft in a chat."""
        return list(self._drafts.get(chat_id, []))

    def rich_drafts(self, chat_id: int) -> list[tuple[int, JSON]]:
        """(draft_id, InputRichMessage) of every sendRichMessageDraft in a chat."""
        return list(self._rich_drafts.get(chat_id, []))

    def rich_messages(self, chat_id: int) -> list[SentMessage]:
        """The rich messages the bot sent (or edited a message into) in a chat, in order."""
        return [m for m in self._sent.get(chat_id, []) if m.kind == "rich" and not m.deleted]

    def actions(self, chat_id: int) -> list[str]:
        """Chat actions sent to a chat, in order."""
        return list(self._actions.get(chat_id, []))

    def getfile_calls(self) -> list[str]:
        """file_ids requested with getFile, in order."""
        return [str(c.params.get("file_id")) for c in self.calls("getFile")]

    def downloads(self) -> list[str]:
        """file_paths requested from the file endpoint, in order (failed attempts included)."""
        return list(self._downloads)

    @property
    def polling(self) -> bool:
        """Whether a getUpdates long poll is waiting right now."""
        return self._active_poll is not None

    def pending_updates(self) -> list[JSON]:
        """Updates not yet confirmed by an offset."""
        return list(self._updates)

    def redeliver(self, update_id: int) -> JSON:
        """Queue an update that was already delivered again, same update_id, as Telegram does
        when the offset that confirmed it never reached it (a bot that died before its next
        getUpdates). Returns the update."""
        update = self._every_update[update_id]
        self._updates = sorted([*self._updates, update], key=lambda u: int(u["update_id"]))
        self._wake()
        return update

    def update(self, update_id: int) -> JSON:
        """An update queued earlier (delivered or not), by its update_id."""
        return self._every_update[update_id]

    def watch(self, method: str, watcher: Callable[[Call], None]) -> None:
        """Call `watcher` with every request of `method` as it arrives, before it is answered."""
        self._watchers[method.lower()] = watcher

    def take_updates(self) -> list[JSON]:
        """Take every queued update off the queue, oldest first (to deliver them by webhook)."""
        taken, self._updates = self._updates, []
        return taken

    async def wait_for(
        self,
        predicate: Callable[[], Any],
        timeout: float = 30.0,
    ) -> Any:
        """Poll `predicate` every 10 ms until it returns something truthy, and return that
        (`timeout`: far above what any machine needs; only a failing test waits it out)."""

        def explain(value: Any) -> str:
            recent = "\n  ".join(
                f"{c.method} {str(c.params)[:200]} -> {c.error or 'ok'}"
                for c in self.requests[-10:]
            )
            name = getattr(predicate, "__qualname__", repr(predicate))
            seen = "".join(f"\n{witness()}" for witness in self.witnesses)
            return f"{name} stayed falsy ({value!r}) for {timeout}s; last calls:\n  {recent}{seen}"

        return await wait_for(predicate, timeout, explain)

    # ----- failure injection -----------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        error_code: int = 429,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` calls of `method` with an error instead of running them."""
        if error_code == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            description = (
                f"Too Many Requests: retry after {retry_after}"
                if error_code == 429
                else DEFAULT_DESCRIPTIONS.get(error_code, "Unknown error")
            )
        self._failures.setdefault(method.lower(), []).append(
            [ApiError(error_code, description, retry_after), times]
        )

    def hold_method(self, method: str, gate: asyncio.Event) -> None:
        """Keep calls of a Bot API method waiting (recorded, unanswered) until `gate` is set."""
        self._method_gates[method.lower()] = gate

    def hold_download(self, file_id: str, gate: asyncio.Event) -> None:
        """Keep downloads of a file waiting until the test sets `gate` (a slow connection)."""
        self._download_gates[file_id] = gate

    def fail_download(self, file_id: str, mode: str = "drop", times: int = 1) -> None:
        """Break the next downloads of a file: "drop" cuts the body short, "500" errors."""
        if mode not in ("drop", "500"):
            raise ValueError(f"mode must be 'drop' or '500', not {mode!r}")
        self._download_failures.setdefault(file_id, []).extend([mode] * times)

    # ----- HTTP ------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return self._error_response(ApiError(401, "Unauthorized"))
        method = request.match_info["method"]
        try:
            parsed = await self._read_request(request)
        except ApiError as exc:
            return self._error_response(exc)
        call = Call(method, parsed.params, parsed.files, time.monotonic(), parsed.file_names)
        self.requests.append(call)
        watcher = self._watchers.get(method.lower())
        if watcher is not None:
            watcher(call)
        gate = self._method_gates.get(method.lower())
        if gate is not None:
            await gate.wait()
        try:
            handler = self._methods.get(method.lower())
            if handler is None:
                raise ApiError(404, "Not Found")
            self._injected_failure(method)
            result = handler(parsed)
            if inspect.isawaitable(result):
                result = await result
        except ApiError as exc:
            call.error = exc.description
            return self._error_response(exc)
        call.result = result
        return web.json_response({"ok": True, "result": result})

    async def _read_request(self, request: web.Request) -> _Request:
        """Query string plus a form, multipart or JSON body, values decoded like Telegram does."""
        raw: JSON = dict(request.query)
        files: dict[str, bytes] = {}
        names: dict[str, str] = {}
        mimes: dict[str, str] = {}
        if request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError as exc:
                    raise bad_request("can't parse JSON object") from exc
                raw.update(body if isinstance(body, dict) else {})
            else:
                for key, value in (await request.post()).items():
                    if isinstance(value, web.FileField):
                        files[key] = value.file.read()
                        names[key], mimes[key] = value.filename, value.content_type
                    else:
                        raw[key] = value
        params = {k: self._decode(k, v) for k, v in raw.items()}
        if not self.local_mode and any(len(data) > MAX_UPLOAD for data in files.values()):
            raise ApiError(413, "Request Entity Too Large")
        return _Request(params, files, names, mimes)

    @staticmethod
    def _decode(key: str, value: Any) -> Any:
        """PTB JSON-encodes every non-string value in forms: decode where the API expects JSON."""
        if key in STRING_PARAMS or not isinstance(value, str):
            return value
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, dict | list | int | float | bool) else value

    @staticmethod
    def _error_response(exc: ApiError) -> web.Response:
        if exc.code == 502:  # nginx in front of the Bot API answers with an HTML page
            return web.Response(
                status=502,
                content_type="text/html",
                text="<html><body><h1>502 Bad Gateway</h1></body></html>",
            )
        body: JSON = {"ok": False, "error_code": exc.code, "description": exc.description}
        if exc.retry_after is not None:
            body["parameters"] = {"retry_after": exc.retry_after}
        return web.json_response(body, status=exc.code)

    def _injected_failure(self, method: str) -> None:
        queue = self._failures.get(method.lower())
        if queue:
            failure = queue[0]
            failure[1] -= 1
            if failure[1] <= 0:
                queue.pop(0)
            raise failure[0]

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return self._error_response(ApiError(401, "Unauthorized"))
        stored = self._paths.get(request.match_info["file_path"])
        if stored is None:
            return self._error_response(ApiError(404, "Not Found"))
        self._downloads.append(stored.file_path)
        gate = self._download_gates.get(stored.file_id)
        if gate is not None:
            await gate.wait()
        failures = self._download_failures.get(stored.file_id)
        mode = failures.pop(0) if failures else None
        if mode == "500":
            return self._error_response(ApiError(500, "Internal Server Error"))
        if mode == "drop":
            response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            response.content_length = len(stored.data)
            await response.prepare(request)
            await response.write(stored.data[: len(stored.data) // 2])
            # closing mid-body is what a broken connection looks like to httpx
            assert request.transport is not None
            request.transport.abort()
            return response
        return web.Response(body=stored.data, content_type="application/octet-stream")

    # ----- internals -------------------------------------------------------------------------

    def _wake(self) -> None:
        """Wake every waiting long poll (they re-check their state)."""
        self._changed.set()
        self._changed = asyncio.Event()

    def _queue(self, update: JSON) -> None:
        queued = {"update_id": next(self._update_ids), **update}
        self._every_update[queued["update_id"]] = queued
        self._updates.append(queued)
        self._wake()

    def _new_message(self, chat: JSON, sender: JSON, **fields: Any) -> JSON:
        """A message dict with the chat's next message_id, stored for replies and callbacks."""
        message_id = self._next_message_id.get(chat["id"], 1)
        self._next_message_id[chat["id"]] = message_id + 1
        message = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "from": sender,
            **{k: v for k, v in fields.items() if v is not None},
        }
        self._messages[(chat["id"], message_id)] = message
        return message

    def _user_message(
        self, chat: JSON, user: JSON, reply_to: int | JSON | None, **fields: Any
    ) -> JSON:
        self._chats.setdefault(chat["id"], chat)
        if reply_to is not None:
            reply_id = reply_to if isinstance(reply_to, int) else reply_to["message_id"]
            replied = dict(self._messages[(chat["id"], reply_id)])
            replied.pop("reply_to_message", None)  # Telegram does not nest replies further
            fields["reply_to_message"] = replied
        message = self._new_message(chat, user, **fields)
        self._queue({"message": message})
        return message

    def _store(
        self, data: bytes, folder: str, suffix: str, file_size: int | None = None
    ) -> StoredFile:
        """Register bytes as a downloadable file with a fresh file_id."""
        number = next(self._ids)
        stored = StoredFile(
            f"file_{number}",
            _unique_id(data),
            data,
            len(data) if file_size is None else file_size,
            f"{folder}/file_{number}{suffix.lower()}",
        )
        self._files[stored.file_id] = stored
        self._paths[stored.file_path] = stored
        return stored

    @staticmethod
    def _file_dict(stored: StoredFile) -> JSON:
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
        }

    def _photo_sizes(self, data: bytes) -> list[JSON]:
        sizes = []
        for blob, width, height in _photo_versions(data):
            stored = self._store(blob, "photos", ".jpg")
            sizes.append({**self._file_dict(stored), "width": width, "height": height})
        return sizes

    def _chat(self, params: JSON) -> JSON:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise bad_request("chat_id is empty")
        for chat in self._chats.values():
            if chat_id in (chat["id"], f"@{chat.get('username')}"):
                return chat
        raise bad_request("chat not found")

    def _bot_message(self, chat_id: Any, message_id: Any, missing: str) -> SentMessage:
        for sent in self._sent.get(chat_id, []):
            if sent.message_id == message_id and not sent.deleted:
                return sent
        if (chat_id, message_id) in self._messages:
            raise bad_request("message can't be edited")
        raise bad_request(missing)

    def _format(
        self, raw: Any, parse_mode: Any, entities: Any, caption: bool
    ) -> tuple[str, list[JSON]]:
        """Apply a parse mode and Telegram's length rules; (plain text, entities)."""
        raw = "" if raw is None else str(raw)
        mode = str(parse_mode or "").lower()
        parsers = {
            "html": self._parse_html,
            "markdownv2": parse_markdown_v2,
            "markdown": parse_markdown,
        }
        if mode and mode not in parsers:
            raise bad_request(f"unsupported parse_mode {parse_mode}")
        try:
            plain, found = parsers[mode](raw) if mode else (raw, list(entities or []))
        except TelegramParseError as exc:
            raise bad_request(f"can't parse entities: {exc.description}") from exc
        if caption and utf16_len(plain) > MAX_CAPTION:
            raise bad_request("message caption is too long")
        if not caption and not plain.strip():
            raise bad_request("message text is empty")
        if not caption and utf16_len(plain) > MAX_TEXT:
            raise bad_request("message is too long")
        return plain, found

    def _parse_html(self, raw: str) -> tuple[str, list[JSON]]:
        return parse_html(raw, strict_entities=self.strict_html_entities)

    @staticmethod
    def _markup(params: JSON) -> JSON | None:
        markup = params.get("reply_markup")
        if markup is not None and not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        for row in (markup or {}).get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")
        return markup

    def _reply_to(self, chat: JSON, params: JSON) -> JSON | None:
        reply = params.get("reply_parameters") or {}
        message_id = reply.get("message_id", params.get("reply_to_message_id"))
        if message_id is None:
            return None
        replied = self._messages.get((chat["id"], message_id))
        if replied is None:
            if reply.get("allow_sending_without_reply") or params.get(
                "allow_sending_without_reply"
            ):
                return None
            raise bad_request("message to be replied not found")
        return {k: v for k, v in replied.items() if k != "reply_to_message"}

    def _bot_send(
        self, chat: JSON, kind: str, params: JSON, text_key: str, **media: Any
    ) -> SentMessage:
        """Create, store and return a bot message; `media` holds wire fields like photo=[...]."""
        files = media.pop("files", {})
        group_id = media.pop("media_group_id", None)
        is_caption = text_key == "caption"
        raw = params.get(text_key)
        plain, entities = (
            (None, [])
            if is_caption and raw in (None, "")
            else self._format(
                raw,
                params.get("parse_mode"),
                params.get(f"{text_key}_entities" if is_caption else "entities"),
                is_caption,
            )
        )
        markup = self._markup(params)
        replied = self._reply_to(chat, params)
        message = self._new_message(
            chat,
            self._sender,
            reply_to_message=replied,
            media_group_id=group_id,
            **media,
            **{
                text_key: plain,
                f"{text_key}_entities" if is_caption else "entities": entities or None,
            },
            reply_markup=markup if markup and "inline_keyboard" in markup else None,
        )
        sent = SentMessage(
            message["message_id"],
            chat["id"],
            kind,
            message,
            text=None if is_caption else plain,
            html=None if raw is None else str(raw),
            parse_mode=params.get("parse_mode"),
            entities=entities,
            reply_markup=markup,
            history=[] if plain is None else [plain],
            caption=plain if is_caption else None,
            media_group_id=group_id,
            reply_to_message_id=replied["message_id"] if replied else None,
            files=files,
        )
        self._sent.setdefault(chat["id"], []).append(sent)
        return sent

    def _input_file(
        self, req: _Request, key: str, value: Any = None
    ) -> tuple[bytes, str, str, StoredFile | None]:
        """(bytes, file name, mime type, already stored file) for an uploaded or known file."""
        value = req.params.get(key) if value is None else value
        name = key
        if isinstance(value, str) and value.startswith("attach://"):
            name = value.removeprefix("attach://")
        elif isinstance(value, str) and value:
            stored = self._files.get(value)
            if stored is None:
                raise bad_request("wrong file identifier/HTTP URL specified")
            return stored.data, Path(stored.file_path).name, "", stored
        if name not in req.files:
            raise bad_request(f"there is no {key} in the request")
        return req.files[name], req.file_names.get(name, ""), req.mime_types.get(name, ""), None

    def _media_fields(
        self,
        kind: str,
        data: bytes,
        file_name: str,
        mime: str,
        stored: StoredFile | None,
        extra: JSON,
    ) -> JSON:
        """Wire fields (photo=[...], video={...}, document={...}) for a file the bot sent."""
        if kind == "photo":
            try:
                return {"photo": self._photo_sizes(data)}
            except ValueError as exc:
                raise bad_request("IMAGE_PROCESS_FAILED") from exc
        folder = {"video": "videos", "document": "documents"}[kind]
        stored = stored or self._store(data, folder, Path(file_name).suffix)
        body = {
            **self._file_dict(stored),
            "file_name": file_name or None,
            "mime_type": mime or None,
        }
        if kind == "video":
            body.update({k: int(extra.get(k) or 0) for k in ("duration", "width", "height")})
        return {kind: {k: v for k, v in body.items() if v is not None}}

    # ----- Bot API methods -------------------------------------------------------------------

    def _api_getMe(self, req: _Request) -> JSON:
        return self.bot_user

    def _api_setWebhook(self, req: _Request) -> bool:
        p = req.params
        url = str(p.get("url") or "")
        if not url:
            return self._api_deleteWebhook(req)
        if not url.startswith(("https://", "http://127.0.0.1")):  # loopback stands in for TLS
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.get("secret_token")
        if secret is not None and not (
            1 <= len(str(secret)) <= 256
            and str(secret).replace("_", "").replace("-", "").isalnum()
            and str(secret).isascii()
        ):
            raise bad_request("secret token contains unallowed characters")
        if p.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = dict(p)
        return True

    def _api_deleteWebhook(self, req: _Request) -> bool:
        if req.params.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = None
        return True

    async def deliver_webhook(
        self,
        update: JSON | None = None,
        secret: str | None = None,
        body: bytes | None = None,
        url: str | None = None,
    ) -> int:
        """POST an update to the bot's webhook as Telegram does; return the HTTP status.

        Without `update` or `body` the oldest queued update (from send_photo etc.) is taken off
        the queue and sent. `secret` goes in X-Telegram-Bot-Api-Secret-Token (None: no header).
        """
        target = url or (self.webhook or {}).get("url")
        assert target, "no webhook is set and no url given"
        if body is None:
            if update is None:
                assert self._updates, "no queued update to deliver"
                update = self._updates.pop(0)
            body = json.dumps(update).encode()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        async with (
            aiohttp.ClientSession() as session,
            session.post(str(target), data=body, headers=headers) as response,
        ):
            await response.read()
            return response.status

    async def _api_getUpdates(self, req: _Request) -> list[JSON]:
        p = req.params
        if self.webhook is not None:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        offset, limit = int(p.get("offset") or 0), min(max(int(p.get("limit") or 100), 1), 100)
        timeout = max(float(p.get("timeout") or 0), 0.0)
        if isinstance(p.get("allowed_updates"), list):
            self._allowed_updates = p["allowed_updates"]  # Telegram remembers the last setting
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        token = object()
        self._active_poll = token
        self._wake()  # an older poll sees it was replaced and answers 409, as on Telegram
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self._active_poll is not token:
                    raise ApiError(409, CONFLICT)
                allowed = self._allowed_updates
                ready = [u for u in self._updates if not allowed or any(k in u for k in allowed)]
                remaining = deadline - time.monotonic()
                if ready or self._stopping or remaining <= 0:
                    return ready[:limit]
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    pass
        finally:
            if self._active_poll is token:
                self._active_poll = None

    def _api_setMyCommands(self, req: _Request) -> bool:
        commands = req.params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            name, text = str(command.get("command", "")), str(command.get("description", ""))
            if not (1 <= len(name) <= 32 and name.replace("_", "").isalnum() and name.islower()):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(text) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        language = _language_code(req.params)
        self.commands_by_language[language] = commands
        if not language:
            self.commands = commands
        return True

    def _api_getMyCommands(self, req: _Request) -> list[JSON]:
        return self.commands_by_language.get(_language_code(req.params), [])

    def _api_setMyDescription(self, req: _Request) -> bool:
        text = str(req.params.get("description") or "")
        if len(text) > 512:
            raise bad_request("BOT_DESCRIPTION_INVALID")
        self.descriptions[_language_code(req.params)] = text
        return True

    def _api_getMyDescription(self, req: _Request) -> JSON:
        return {"description": self.descriptions.get(_language_code(req.params), "")}

    def _api_setMyShortDescription(self, req: _Request) -> bool:
        text = str(req.params.get("short_description") or "")
        if len(text) > 120:
            raise bad_request("BOT_SHORT_DESCRIPTION_INVALID")
        self.short_descriptions[_language_code(req.params)] = text
        return True

    def _api_getMyShortDescription(self, req: _Request) -> JSON:
        return {"short_description": self.short_descriptions.get(_language_code(req.params), "")}

    def _api_deleteMyCommands(self, req: _Request) -> bool:
        self.commands = []
        return True

    def _api_sendMessage(self, req: _Request) -> JSON:
        return self._bot_send(self._chat(req.params), "text", req.params, "text").message

    def _api_editMessageText(self, req: _Request) -> JSON:
        p = req.params
        sent = self._bot_message(p.get("chat_id"), p.get("message_id"), "message to edit not found")
        if self.rich_supported and p.get("rich_message") is not None:
            return self._edit_rich(req, sent)
        if sent.kind != "text":
            raise bad_request("there is no text in the message to edit")
        plain, entities = self._format(p.get("text"), p.get("parse_mode"), p.get("entities"), False)
        markup = self._markup(
            p
        )  # an edit without reply_markup removes the keyboard, as on Telegram
        if (plain, entities, markup) == (sent.text, sent.entities, sent.reply_markup):
            raise bad_request(NOT_MODIFIED)
        sent.text, sent.html, sent.parse_mode = plain, p.get("text"), p.get("parse_mode")
        sent.entities = entities
        sent.history.append(plain)
        return self._refresh(sent, markup, {"text": plain, "entities": entities or None})

    def _edit_rich(self, req: _Request, sent: SentMessage) -> JSON:
        if sent.kind not in ("text", "rich"):
            raise bad_request("there is no text in the message to edit")
        rich = req.params["rich_message"]
        check = self._check_rich(req, rich)
        markup = self._markup(req.params)
        if (rich, markup) == (sent.rich, sent.reply_markup):
            raise bad_request(NOT_MODIFIED)
        sent.kind, sent.rich, sent.text, sent.html, sent.entities = (
            "rich",
            rich,
            check.plain,
            None,
            [],
        )
        sent.history.append(check.plain)
        return self._refresh(sent, markup, {"text": None, "entities": None, "rich_message": rich})

    def _check_rich(self, req: _Request, rich: Any, uploads: bool = True) -> RichCheck:
        """Validate an InputRichMessage like Telegram; its media are known file ids of the
        right kind or (except in drafts) files uploaded with the request as attach://<name>."""

        def resolve(kind: str, value: Any) -> str:
            text = str(value or "")
            if text.startswith("attach://"):
                name = text.removeprefix("attach://")
                if not uploads:
                    raise RichError("direct upload of new files isn't supported in drafts")
                if name not in req.files:
                    raise RichError(f"file {name} to attach is not in the request")
                if kind == "photo":
                    try:
                        return str(self._photo_sizes(req.files[name])[-1]["file_id"])
                    except ValueError as exc:
                        raise RichError("IMAGE_PROCESS_FAILED") from exc
                return self._store(req.files[name], f"{kind}s", Path(name).suffix).file_id
            stored = self._files.get(text)
            if stored is None:
                raise RichError("wrong file identifier/HTTP URL specified")
            folder = stored.file_path.split("/")[0]
            if folder != f"{kind}s":
                have = {"photos": "Photo", "videos": "Video", "documents": "Document"}
                raise RichError(
                    f"can't use file of type {have.get(folder, folder)} as {kind.title()}"
                )
            return text

        try:
            return check_rich_message(rich, resolve)
        except RichError as exc:
            raise bad_request(str(exc)) from exc

    def _api_sendRichMessage(self, req: _Request) -> JSON:
        if not self.rich_supported:
            raise ApiError(404, "Not Found: method not found")
        p = req.params
        chat = self._chat(p)
        check = self._check_rich(req, p.get("rich_message"))
        markup = self._markup(p)
        replied = self._reply_to(chat, p)
        message = self._new_message(
            chat,
            self._sender,
            reply_to_message=replied,
            rich_message=p["rich_message"],
            reply_markup=markup if markup and "inline_keyboard" in markup else None,
        )
        sent = SentMessage(
            message["message_id"],
            chat["id"],
            "rich",
            message,
            text=check.plain,
            reply_markup=markup,
            history=[check.plain],
            reply_to_message_id=replied["message_id"] if replied else None,
            files=dict(req.files),
            rich=p["rich_message"],
        )
        self._sent.setdefault(chat["id"], []).append(sent)
        return message

    def _api_sendRichMessageDraft(self, req: _Request) -> bool:
        if not self.rich_supported:
            raise ApiError(404, "Not Found: method not found")
        p = req.params
        chat = self._chat(p)
        if chat["type"] != "private" or chat["id"] <= 0:
            raise bad_request("drafts can be sent to private chats only")
        if not isinstance(p.get("draft_id"), int) or p["draft_id"] == 0:
            raise bad_request("draft_id must be non-zero")
        self._check_rich(req, p.get("rich_message"), uploads=False)
        self._rich_drafts.setdefault(chat["id"], []).append((p["draft_id"], p["rich_message"]))
        return True

    def _refresh(self, sent: SentMessage, markup: JSON | None, fields: JSON) -> JSON:
        sent.reply_markup = markup
        sent.message.update(fields, edit_date=int(time.time()), reply_markup=markup)
        sent.message = {k: v for k, v in sent.message.items() if v is not None}
        self._messages[(sent.chat_id, sent.message_id)] = sent.message
        return sent.message

    def _api_editMessageReplyMarkup(self, req: _Request) -> JSON:
        p = req.params
        sent = self._bot_message(p.get("chat_id"), p.get("message_id"), "message to edit not found")
        markup = self._markup(p)
        if markup == sent.reply_markup:
            raise bad_request(NOT_MODIFIED)
        return self._refresh(sent, markup, {})

    def _api_deleteMessage(self, req: _Request) -> bool:
        chat, message_id = self._chat(req.params), req.params.get("message_id")
        if (
            not isinstance(message_id, int)
            or self._messages.pop((chat["id"], message_id), None) is None
        ):
            raise bad_request("message to delete not found")
        for sent in self._sent.get(chat["id"], []):
            if sent.message_id == message_id:
                sent.deleted = True
        return True

    def _api_sendChatAction(self, req: _Request) -> bool:
        chat, action = self._chat(req.params), req.params.get("action")
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self._actions.setdefault(chat["id"], []).append(str(action))
        return True

    def _api_sendMessageDraft(self, req: _Request) -> bool:
        p = req.params
        chat = self._chat(p)
        if chat["type"] != "private" or chat["id"] <= 0:
            raise bad_request("drafts can be sent to private chats only")
        if not isinstance(p.get("draft_id"), int) or p["draft_id"] == 0:
            raise bad_request("draft_id must be non-zero")
        plain, _ = self._format(p.get("text"), p.get("parse_mode"), p.get("entities"), False)
        self._drafts.setdefault(chat["id"], []).append((p["draft_id"], plain))
        return True

    def _api_answerCallbackQuery(self, req: _Request) -> bool:
        query_id = str(req.params.get("callback_query_id"))
        if query_id not in self._queries or query_id in self._answered:  # one answer per query
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        if len(str(req.params.get("text") or "")) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self._answered.add(query_id)
        return True

    def _api_getFile(self, req: _Request) -> JSON:
        stored = self._files.get(str(req.params.get("file_id")))
        if stored is None:
            raise bad_request("invalid file_id")
        result = self._file_dict(stored)
        if self.local_mode:
            # a `telegram-bot-api --local` server answers with a path on its own disk
            path = self._tmp / stored.file_path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(stored.data)
            return {**result, "file_path": str(path.resolve())}
        if stored.file_size > MAX_DOWNLOAD:
            raise bad_request("file is too big")
        return {**result, "file_path": stored.file_path}

    def _send_media(self, req: _Request, kind: str) -> JSON:
        chat = self._chat(req.params)
        data, file_name, mime, stored = self._input_file(req, kind)
        fields = self._media_fields(kind, data, file_name, mime, stored, req.params)
        return self._bot_send(
            chat, kind, req.params, "caption", files={kind: data}, **fields
        ).message

    def _api_sendPhoto(self, req: _Request) -> JSON:
        return self._send_media(req, "photo")

    def _api_sendDocument(self, req: _Request) -> JSON:
        return self._send_media(req, "document")

    def _api_sendVideo(self, req: _Request) -> JSON:
        return self._send_media(req, "video")

    def _api_sendMediaGroup(self, req: _Request) -> list[JSON]:
        chat, media = self._chat(req.params), req.params.get("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise bad_request("media group must contain 2-10 items")
        kinds = {item.get("type") for item in media}
        if not kinds <= {"photo", "video", "document"}:  # the fake does not model audio albums
            raise bad_request(f"unsupported media type in the album: {sorted(map(str, kinds))}")
        if len(kinds) > 1 and "document" in kinds:
            raise bad_request("documents can't be mixed with other media types")
        prepared = []
        for item in media:  # validate every item before sending any: albums are all or nothing
            data, file_name, mime, stored = self._input_file(req, item["type"], item.get("media"))
            self._format(item.get("caption"), item.get("parse_mode"), None, True)
            fields = self._media_fields(item["type"], data, file_name, mime, stored, item)
            name = str(item.get("media", "")).removeprefix("attach://")
            prepared.append((item, fields, {name: data}))
        group_id = str(10**17 + next(self._ids))
        return [
            self._bot_send(
                chat,
                item["type"],
                {**req.params, **item},
                "caption",
                files=files,
                media_group_id=group_id,
                **fields,
            ).message
            for item, fields, files in prepared
        ]

    def _api_setMessageReaction(self, req: _Request) -> bool:
        chat = self._chat(req.params)
        if (chat["id"], req.params.get("message_id")) not in self._messages:
            raise bad_request("message to react not found")
        return True

    def _api_getChat(self, req: _Request) -> JSON:
        kinds = (
            "unlimited_gifts limited_gifts unique_gifts premium_subscription gifts_from_channels"
        )
        gifts = dict.fromkeys(kinds.split(), False)
        return {
            **self._chat(req.params),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": gifts,
        }
