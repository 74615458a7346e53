"""The reason a start-up try gives, in words, for what a real PTB Bot raises on loopback.

The black-box tests (tests/test_telegram_unreachable_e2e.py) see "connection refused" and a
502; here the other failures a network makes: a server that never answers, one that does not
speak TLS, and a name that does not resolve (built by hand: resolving a name is not loopback).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from telegram import Bot
from telegram.error import NetworkError, TelegramError
from telegram.request import HTTPXRequest

from bot.telegram.connect import reason
from tests.harness import TOKEN, free_port


@asynccontextmanager
async def _server(answer: bytes | None) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that answers `answer` to anything, or never answers."""
    held: list[asyncio.StreamWriter] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        if answer is not None:
            await reader.read(1024)
            writer.write(answer)
            await writer.drain()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def _get_me_error(base_url: str, timeout: float = 30.0) -> TelegramError:
    request = HTTPXRequest(connect_timeout=timeout, read_timeout=timeout)
    bot = Bot(TOKEN, base_url=f"{base_url}/bot", request=request, get_updates_request=request)
    with pytest.raises(TelegramError) as caught:
        await bot.get_me()
    await request.shutdown()
    return caught.value


async def test_a_closed_port_is_connection_refused() -> None:
    error = await _get_me_error(f"http://127.0.0.1:{free_port()}")
    assert reason(error) == "connection refused"


async def test_a_server_that_never_answers_is_timed_out() -> None:
    async with _server(None) as port:
        error = await _get_me_error(f"http://127.0.0.1:{port}", timeout=0.5)
    assert reason(error) == "timed out"


async def test_a_server_that_does_not_speak_tls_is_a_tls_error() -> None:
    async with _server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as port:
        error = await _get_me_error(f"https://127.0.0.1:{port}")
    assert reason(error).startswith("TLS error: ")


def test_a_name_that_does_not_resolve_says_so() -> None:
    # What PTB raises for httpx's ConnectError, which httpcore raised from the resolver's error.
    try:
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except socket.gaierror as resolver:
            raise httpx.ConnectError(str(resolver)) from None
    except httpx.ConnectError as connect:
        error = NetworkError(f"httpx.ConnectError: {connect}")
        error.__cause__ = connect
    assert reason(error) == "name not resolved"
