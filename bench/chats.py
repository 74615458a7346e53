"""Travellers driving the bot through the fake Telegram, and the clock that times its replies.

Every time is `time.monotonic()` in this process: the moment a user's update was queued (taken
right after `tg.send_*` returns) and the moment the fake received a request of the bot
(`Call.time`). What counts as which reply:

- first reply: the first sendMessage or sendMessageDraft carrying text in the chat after the
  user's message. In a private chat the bot's first words are a draft ("Thinking..."); the
  echo bot's are its sendMessage. Chat actions (typing) do not count: they show no text.
- final answer: the first sendMessage after the message (the answer itself, or an error).
- acknowledgement of an album: the last sendMessage/editMessageText in the chat once every
  file of the album was fetched (getFile) and the chat stayed quiet, i.e. the message that
  counts the whole album, not a partial count sent while the photos were still arriving. (The
  bot counts a file once received, before its download: that message often comes before the
  last getFile, and nothing follows it.)
- story done: the first message sent (sendMessage, sendRichMessage) or edited into a rich
  message with an inline keyboard after /story (the story's last message carries its buttons),
  or, should that change, the chat going quiet.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from tests.fakes import telegram_api
from tests.fakes.telegram_api import Call, FakeTelegram

T = TypeVar("T")
JSON = dict[str, Any]

FIRST_REPLY = frozenset({"sendmessage", "sendmessagedraft"})
ACK = frozenset({"sendmessage", "editmessagetext"})
STORY_QUIET = 3.0  # seconds of silence that end a story that has no closing buttons
TIMEOUT = 180.0


def prepare_photos(photos: Sequence[bytes]) -> None:
    """Make the fake's thumbnails of these photos now, before the clock starts.

    FakeTelegram decodes every photo it is sent (or that the bot posts by file_id) to make the
    90 px size Telegram adds: about 8 ms of the fakes' event loop each. Fifty albums of ten at
    once would freeze the fake Telegram for seconds, and the bot would wait for it. The result
    depends on the bytes only, so it is remembered; the fake behaves exactly as before.
    """
    global _versions_memo
    if _versions_memo is None:
        original = telegram_api._photo_versions
        memo: dict[bytes, list[tuple[bytes, int, int]]] = {}

        def remembered(data: bytes) -> list[tuple[bytes, int, int]]:
            if data not in memo:
                memo[data] = original(data)
            return memo[data]

        telegram_api._photo_versions = remembered
        _versions_memo = memo
    for data in photos:
        telegram_api._photo_versions(data)


_versions_memo: dict[bytes, list[tuple[bytes, int, int]]] | None = None


class Watcher:
    """Indexes the fake's recorded calls by chat as they arrive and wakes whoever waits.

    Fifty travellers each re-reading the whole request log every few milliseconds would cost
    the benchmark's process more CPU than the fakes; here each new call is looked at once.
    """

    def __init__(self, tg: FakeTelegram) -> None:
        self.tg = tg
        self.by_chat: dict[int, list[Call]] = defaultdict(list)
        self.get_file: dict[str, Call] = {}
        self._seen = 0
        self._events: dict[int | None, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        self._task = asyncio.create_task(self._pump_forever())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _pump_forever(self) -> None:
        while True:
            self.pump()
            await asyncio.sleep(0.005)

    def pump(self) -> None:
        """Take in the calls recorded since the last look."""
        new = self.tg.requests[self._seen :]
        if not new:
            return
        self._seen += len(new)
        touched: set[int | None] = {None}
        for call in new:
            chat_id = call.params.get("chat_id")
            if isinstance(chat_id, int):
                self.by_chat[chat_id].append(call)
                touched.add(chat_id)
            elif call.method.lower() == "getfile":
                self.get_file[str(call.params.get("file_id"))] = call
        for key in touched:
            event = self._events.pop(key, None)
            if event is not None:
                event.set()

    async def wait(
        self,
        predicate: Callable[[], T | None],
        chat_id: int | None = None,
        timeout: float = TIMEOUT,
    ) -> T:
        """Re-check `predicate` whenever the chat (or anything, for None) gets a call."""
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            value = predicate()
            if value is not None and value is not False:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                name = getattr(predicate, "__qualname__", "condition")
                raise TimeoutError(f"{name} not met within {timeout:.0f} s (chat {chat_id})")
            event = self._events.setdefault(chat_id, asyncio.Event())
            try:
                # Time also passes without calls (quiet periods): look again at least every 50 ms.
                await asyncio.wait_for(event.wait(), min(remaining, 0.05))
            except TimeoutError:
                pass

    def calls(
        self, chat_id: int, since: float, methods: frozenset[str] | None = None
    ) -> list[Call]:
        """The chat's calls at or after `since`, optionally of some methods only."""
        return [
            c
            for c in self.by_chat.get(chat_id, [])
            if c.time >= since and (methods is None or c.method.lower() in methods)
        ]


@dataclass
class Sent:
    """What a user sent: when the last of it was queued, and the file_ids the bot will fetch."""

    at: float
    file_ids: list[str] = field(default_factory=list)
    messages: list[JSON] = field(default_factory=list)


@dataclass
class Ack:
    """How an upload was acknowledged, in monotonic seconds."""

    at: float  # the acknowledgement that counts everything
    last_fetch: float  # the bot's getFile of the last file
    messages: int  # sendMessage calls (one per burst is the design)


@dataclass
class Answer:
    """How a message was answered: first reply and final answer, in seconds after it."""

    sent_at: float
    first: float
    final: float


class Traveller:
    """One user in a private chat with the bot."""

    def __init__(self, tg: FakeTelegram, watcher: Watcher, user_id: int, name: str) -> None:
        self.tg = tg
        self.watcher = watcher
        self.user = tg.user(user_id=user_id, first_name=name, username=None, language_code="en")
        self.chat = tg.private_chat(self.user)
        self.chat_id: int = self.chat["id"]
        self._albums = 0

    # Sending -------------------------------------------------------------------------------

    def send_photos(self, photos: Sequence[bytes], group: bool = True) -> Sent:
        """Compressed photos, as one Telegram album (same media_group_id) when `group`."""
        group_id = self._group_id() if group else None
        sent = Sent(0.0)
        for data in photos:
            message = self.tg.send_photo(self.chat, self.user, data, media_group_id=group_id)
            sent.messages.append(message)
            sent.file_ids.append(message["photo"][-1]["file_id"])
        sent.at = time.monotonic()
        return sent

    def send_files(self, files: Sequence[tuple[str, bytes]], group: bool = True) -> Sent:
        """Photos "sent as files" (documents) with their names, as one album when `group`."""
        group_id = self._group_id() if group else None
        sent = Sent(0.0)
        for name, data in files:
            mime = "image/heic" if name.lower().endswith(".heic") else "image/jpeg"
            message = self.tg.send_document(
                self.chat, self.user, data, file_name=name, mime_type=mime, media_group_id=group_id
            )
            sent.messages.append(message)
            sent.file_ids.append(message["document"]["file_id"])
        sent.at = time.monotonic()
        return sent

    def send_video(self, data: bytes, name: str, duration: int = 10) -> Sent:
        """A video message (sent as a video, not as a file)."""
        mime = "video/quicktime" if name.lower().endswith(".mov") else "video/mp4"
        message = self.tg.send_video(
            self.chat, self.user, data, duration=duration, width=640, height=360,
            mime_type=mime, file_name=name,
        )  # fmt: skip
        return Sent(time.monotonic(), [message["video"]["file_id"]], [message])

    def _group_id(self) -> str:
        self._albums += 1
        return f"{self.chat_id}{self._albums:04d}"

    # Waiting for the bot -------------------------------------------------------------------

    async def acknowledged(self, sent: Sent | Sequence[Sent], quiet: float) -> Ack:
        """Wait for the acknowledgement that counts everything sent.

        Waits until every file was fetched and an acknowledgement was sent (before or after
        that: a file counts once received), then until the chat stayed quiet for `quiet`
        seconds (a later edit would replace a partial count).
        """
        batches = [sent] if isinstance(sent, Sent) else list(sent)
        file_ids = [f for b in batches for f in b.file_ids]
        start = min(b.at for b in batches)
        watcher = self.watcher

        def last_fetch() -> float | None:
            fetched = [watcher.get_file.get(f) for f in file_ids]
            return max(c.time for c in fetched if c is not None) if all(fetched) else None

        def fetched_and_acknowledged() -> Call | None:
            acks = [] if last_fetch() is None else watcher.calls(self.chat_id, start, ACK)
            return acks[0] if acks else None

        await watcher.wait(fetched_and_acknowledged, self.chat_id)

        def settled() -> Call | None:
            acks = watcher.calls(self.chat_id, start, ACK)
            if acks and time.monotonic() - acks[-1].time >= quiet:
                return acks[-1]
            return None

        last = await watcher.wait(settled, self.chat_id)
        messages = len(watcher.calls(self.chat_id, start, frozenset({"sendmessage"})))
        fetched_at = last_fetch()
        assert fetched_at is not None
        return Ack(last.time, fetched_at, messages)

    async def consumed(self, sent: Sent) -> None:
        """Wait until the bot confirmed the updates (for the echo bot, which says nothing)."""
        last = sent.messages[-1]

        def gone() -> bool:
            return not any(u.get("message") is last for u in self.tg.pending_updates())

        await self.watcher.wait(gone)

    async def ask(self, text: str) -> Answer:
        """Send a text (or command) and wait for the final answer."""
        if text.startswith("/"):
            self.tg.send_command(self.chat, self.user, text)
        else:
            self.tg.send_text(self.chat, self.user, text)
        sent_at = time.monotonic()
        first = await self._first_reply(sent_at)
        final = await self.watcher.wait(
            lambda: _first(self.watcher.calls(self.chat_id, sent_at, frozenset({"sendmessage"}))),
            self.chat_id,
        )
        return Answer(sent_at, first.time - sent_at, final.time - sent_at)

    async def story(self, wish: str) -> Answer:
        """Send /story and wait until the illustrated story has been posted."""
        self.tg.send_command(self.chat, self.user, f"/story {wish}")
        sent_at = time.monotonic()
        first = await self._first_reply(sent_at)
        watcher = self.watcher

        def done() -> Call | None:
            calls = watcher.calls(self.chat_id, sent_at)
            for call in calls:
                markup = call.params.get("reply_markup")
                if _posts_story(call) and isinstance(markup, dict):
                    if markup.get("inline_keyboard"):
                        return call
            sends = [c for c in calls if c.method.lower() == "sendmessage"]
            if sends and time.monotonic() - calls[-1].time >= STORY_QUIET:
                return sends[-1]
            return None

        final = await watcher.wait(done, self.chat_id)
        return Answer(sent_at, first.time - sent_at, final.time - sent_at)

    async def export(self) -> tuple[float, list[int]]:
        """Send /export and wait for its two files (or a message saying one is too large):
        the seconds it took and the files' sizes."""
        self.tg.send_command(self.chat, self.user, "/export")
        sent_at = time.monotonic()
        watcher = self.watcher

        def done() -> list[Call] | None:
            calls = [
                c
                for c in watcher.calls(self.chat_id, sent_at)
                if c.method.lower() == "senddocument"
                or (c.method.lower() == "sendmessage" and " MB " in str(c.params.get("text")))
            ]
            return calls if len(calls) >= 2 else None

        calls = await watcher.wait(done, self.chat_id)
        sizes = [sum(len(data) for data in c.files.values()) for c in calls]
        return calls[-1].time - sent_at, sizes

    async def _first_reply(self, since: float) -> Call:
        def found() -> Call | None:
            return _first(
                [c for c in self.watcher.calls(self.chat_id, since, FIRST_REPLY) if _has_text(c)]
            )

        return await self.watcher.wait(found, self.chat_id)


def _posts_story(call: Call) -> bool:
    """A request that can carry the story's last message (a refused one does not count)."""
    method = call.method.lower()
    rich_edit = method == "editmessagetext" and "rich_message" in call.params
    return call.error is None and (method in ("sendmessage", "sendrichmessage") or rich_edit)


def _first(calls: list[Call]) -> Call | None:
    return calls[0] if calls else None


def _has_text(call: Call) -> bool:
    return bool(str(call.params.get("text") or "").strip())
