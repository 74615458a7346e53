"""No secret reaches the output, whatever path it takes there (bot/logs.py), in a real process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.harness import API_KEY, TOKEN

# Each path by which text reaches stderr or stdout, marked so the test knows it was taken.
SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, logging, sys, threading, warnings
    import httpx
    from telegram import Bot
    from telegram.request import HTTPXRequest
    from bot.logs import redact_standard_streams, setup_logging

    TOKEN, KEY, STREAMS = sys.argv[1], sys.argv[2], sys.argv[3] == "streams"
    setup_logging("DEBUG", [TOKEN, KEY])
    if STREAMS:
        redact_standard_streams([TOKEN, KEY])
    log = logging.getLogger("bot.test")

    try:
        raise RuntimeError(f"failed at https://api.telegram.org/bot{TOKEN}/getMe")
    except RuntimeError:
        log.exception("M1 logged with a traceback")
    warnings.warn(f"W2 a warning quoting {KEY}")

    def thread():
        raise RuntimeError(f"T3 in a thread {TOKEN}")

    worker = threading.Thread(target=thread, name="worker")
    worker.start()
    worker.join()

    class Unraisable:
        def __del__(self):
            raise RuntimeError(f"U4 in __del__ {TOKEN}")

    Unraisable()
    gc.collect()

    async def on_loop():
        loop = asyncio.get_running_loop()
        loop.call_exception_handler({"message": "A5 asyncio", "exception": RuntimeError(TOKEN)})
        # httpx logs each request's URL at INFO; someone turned it up to INFO.
        logging.getLogger("httpx").setLevel(logging.INFO)
        transport = httpx.MockTransport(lambda request: httpx.Response(200, text="H6"))
        async with httpx.AsyncClient(transport=transport) as client:
            await client.get(f"https://api.telegram.org/bot{TOKEN}/getMe")
        # PTB logs the Bot API URL at DEBUG, and its InvalidToken quotes the whole token.
        rejected = httpx.MockTransport(
            lambda request: httpx.Response(401, json={"ok": False, "description": "Unauthorized"})
        )
        request = HTTPXRequest(httpx_kwargs={"transport": rejected})
        await Bot(TOKEN, request=request, get_updates_request=request).initialize()

    if STREAMS:
        print("P7 printed", TOKEN)
        print("P8 to stderr", KEY, file=sys.stderr)
        sys.stderr.write("P9 in pieces " + TOKEN[:9])
        sys.stderr.write(TOKEN[9:] + "\\n")
    asyncio.run(on_loop())  # raises InvalidToken: uncaught, so sys.excepthook prints it
    """
)


def _run(tmp_path: Path, mode: str) -> str:
    script = tmp_path / "leak.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), TOKEN, API_KEY, mode],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # the InvalidToken at the end was uncaught
    return done.stdout + done.stderr


def _no_secret(output: str) -> None:
    assert TOKEN not in output and TOKEN.split(":")[1] not in output, output
    assert API_KEY not in output, output


def test_logging_masks_secrets_in_tracebacks_warnings_threads_asyncio_httpx_and_ptb(
    tmp_path: Path,
) -> None:
    output = _run(tmp_path, "logging")
    _no_secret(output)
    lines = output.splitlines()
    # Each path went through the log (a formatted line), not straight to stderr.
    for logger, marker in [
        ("bot.test", "M1 logged"),
        ("py.warnings", "W2 a warning"),
        ("bot", "Uncaught exception in thread worker"),
        ("bot", "Exception ignored in"),
        ("asyncio", "A5 asyncio"),
        ("httpx", "HTTP Request: GET https://api.telegram.org/bot***/getMe"),
        ("telegram.Bot", "Set Bot API URL"),
        ("bot", "Uncaught exception"),
    ]:
        assert any(f" {logger}: " in line and marker in line for line in lines), (marker, output)
    assert "T3 in a thread ***" in output and "U4 in __del__ ***" in output
    assert "InvalidToken: The token `***` was rejected by the server." in output


def test_anything_written_to_the_standard_streams_is_masked(tmp_path: Path) -> None:
    output = _run(tmp_path, "streams")
    _no_secret(output)
    assert "P7 printed ***" in output
    assert "P8 to stderr ***" in output
    assert "P9 in pieces ***" in output  # a secret split across two writes
