"""N `python -m bot` replicas in webhook mode on one database and one bucket, and a Telegram
that delivers the fake's queued updates to them.

The caller owns the shared storage (a PostgreSQL database URL and a bucket's environment, from
the test fixtures or bench's own servers); each replica gets its own WEBHOOK_PORT, DATA_DIR
(its media cache) and log file, and all share one WEBHOOK_SECRET. Nothing here polls Telegram:
webhook mode never calls getUpdates.

`deliver` plays Telegram's part: a chat's updates go one after the other (the next only once
the previous got its HTTP response), different chats in parallel, at most `max_connections`
requests at once, each update to one replica chosen round-robin or at random.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import aiohttp

from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import BotProcess, free_port

JSON = dict[str, Any]
Order = Literal["round-robin", "random"]

SECRET = "replicas_Webhook-secret-0123456789"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PATH = "/telegram"
ROOT = Path(__file__).resolve().parent.parent  # this checkout: its bot/ is the one that runs


@dataclass(frozen=True)
class Delivery:
    """One update POSTed to one replica: when, and what it answered (monotonic seconds)."""

    update_id: int
    chat_id: int | None
    replica: int
    status: int
    sent_at: float
    answered_at: float


def chat_of(update: JSON) -> int | None:
    """The chat an update belongs to (a callback query's message's chat), None if none."""
    for key, value in update.items():
        if key == "update_id" or not isinstance(value, dict):
            continue
        chat = value.get("chat")
        if chat is None and isinstance(value.get("message"), dict):
            chat = value["message"].get("chat")
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return int(chat["id"])
        sender = value.get("from")
        if isinstance(sender, dict) and isinstance(sender.get("id"), int):
            return int(sender["id"])
    return None


class Replicas:
    """N bot processes in webhook mode; `async with` starts them (until healthy) and stops them.

    `environment(data_dir)` gives a replica's base environment (default: the harness's, as
    BotProcess builds it); the shared storage, `extra`, LOG_LEVEL=INFO and the webhook
    settings go over it.
    """

    def __init__(
        self,
        tg: FakeTelegram,
        gemini: FakeGemini,
        root: Path,
        count: int = 2,
        *,
        database_url: str,
        media_env: Mapping[str, str],
        secret: str = SECRET,
        environment: Callable[[Path], Mapping[str, str]] | None = None,
        **extra: str,
    ) -> None:
        if count < 1:
            raise ValueError("at least one replica")
        self.tg = tg
        self.secret = secret
        self.ports = [free_port() for _ in range(count)]
        self.urls = [f"http://127.0.0.1:{port}{WEBHOOK_PATH}" for port in self.ports]
        self.deliveries: list[Delivery] = []
        self.processes: list[BotProcess] = []
        for index, port in enumerate(self.ports):
            folder = root / f"replica-{index}"
            folder.mkdir(parents=True, exist_ok=True)
            process = BotProcess(tg, gemini, folder / "data", folder / "bot.log")
            if environment is not None:
                process.env = dict(environment(folder / "data"))
            env = process.env
            env["DATABASE_URL"] = database_url
            env.update(media_env)
            env["LOG_LEVEL"] = "INFO"
            env.update(extra)
            env.update(
                WEBHOOK_URL=self.urls[index],
                WEBHOOK_SECRET=secret,
                WEBHOOK_LISTEN="127.0.0.1",
                WEBHOOK_PORT=str(port),
                NO_PROXY="127.0.0.1,localhost",
                no_proxy="127.0.0.1,localhost",
            )
            paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
            if str(ROOT) not in paths:  # `python -m bot` of this checkout, not an installed one
                env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *paths])
            self.processes.append(process)

    def __len__(self) -> int:
        return len(self.processes)

    async def __aenter__(self) -> Replicas:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # Life ----------------------------------------------------------------------------------

    async def start(self, timeout: float = 60.0) -> None:
        """Spawn every replica, then wait until each answers GET /healthz with 200."""
        for process in self.processes:
            await process.start()
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(
                *(self._healthy(session, i, timeout) for i in range(len(self.processes)))
            )

    async def _healthy(self, session: aiohttp.ClientSession, index: int, timeout: float) -> None:
        url = f"http://127.0.0.1:{self.ports[index]}/healthz"
        process = self.processes[index]
        deadline = time.monotonic() + timeout
        while True:
            if process.process is not None and process.process.returncode is not None:
                raise RuntimeError(
                    f"replica {index} exited with {process.process.returncode}:\n"
                    + process.output()[-3000:]
                )
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"replica {index} not healthy within {timeout:.0f} s:\n"
                    + process.output()[-3000:]
                )
            await asyncio.sleep(0.05)

    def pid(self, index: int) -> int:
        """The operating system's id of replica `index`."""
        process = self.processes[index].process
        assert process is not None, "not started"
        return process.pid

    async def kill(self, index: int) -> int:
        """SIGKILL replica `index` (a crash, no clean-up) and wait for it; its exit code."""
        return await self.processes[index].stop(signal.SIGKILL)

    async def stop(self, timeout: float = 30.0) -> list[int | None]:
        """SIGTERM every replica still running, wait; every exit code (None: never started).
        One that does not stop within `timeout` is killed."""

        async def one(process: BotProcess) -> int | None:
            if process.process is None:
                return None
            try:
                return await process.stop(signal.SIGTERM, timeout)
            except TimeoutError:
                process.process.kill()
                return await process.process.wait()

        return list(await asyncio.gather(*(one(p) for p in self.processes)))

    def output(self, index: int) -> str:
        """Everything replica `index` logged so far."""
        return self.processes[index].output()

    # Telegram's part -----------------------------------------------------------------------

    async def deliver(
        self,
        order: Order = "round-robin",
        seed: int = 0,
        max_connections: int = 40,
        updates: Sequence[JSON] | None = None,
        to: Sequence[int] | None = None,
        check: bool = True,
    ) -> list[Delivery]:
        """POST every update queued in the fake (or `updates`) to the replicas; assert each got
        200. A chat's updates go in order, each after the previous one's response; chats go in
        parallel, at most `max_connections` requests at once. Round-robin gives the i-th
        update (by update_id) to replica i mod N; random picks one with Random(seed). `to`
        names the replicas that take part (default all: say which are still alive). `check=False`
        returns refusals rather than failing on them."""
        batch = sorted(
            self.tg.take_updates() if updates is None else updates, key=lambda u: u["update_id"]
        )
        rng = random.Random(seed)
        targets = list(range(len(self.processes)) if to is None else to)
        count = len(targets)
        chats: dict[tuple[str, int], list[tuple[JSON, int]]] = {}
        for position, update in enumerate(batch):
            pick = position % count if order == "round-robin" else rng.randrange(count)
            replica = targets[pick]
            chat = chat_of(update)
            key = ("chat", chat) if chat is not None else ("update", int(update["update_id"]))
            chats.setdefault(key, []).append((update, replica))
        gate = asyncio.Semaphore(max_connections)
        headers = {"Content-Type": "application/json", SECRET_HEADER: self.secret}
        connector = aiohttp.TCPConnector(limit=max_connections)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

            async def send(update: JSON, replica: int) -> Delivery:
                async with gate:
                    sent_at = time.monotonic()
                    async with session.post(self.urls[replica], json=update) as response:
                        await response.read()
                        status = response.status
                return Delivery(
                    int(update["update_id"]), chat_of(update), replica, status, sent_at,
                    time.monotonic(),
                )  # fmt: skip

            async def in_order(queue: list[tuple[JSON, int]]) -> list[Delivery]:
                return [await send(update, replica) for update, replica in queue]

            done = await asyncio.gather(*(in_order(queue) for queue in chats.values()))
        deliveries = sorted((d for part in done for d in part), key=lambda d: d.update_id)
        self.deliveries.extend(deliveries)
        refused = [d for d in deliveries if d.status != 200]
        assert not check or not refused, f"replicas refused updates: {refused[:5]}"
        return deliveries

    def received(self, index: int) -> list[int]:
        """The update_ids replica `index` was given so far."""
        return [d.update_id for d in self.deliveries if d.replica == index]
