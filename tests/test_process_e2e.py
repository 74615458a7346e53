"""The product started as the README says: `python -m bot`, configured only by the environment."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.fakes.gemini_api import FakeGemini, Reply, image_parts
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import ANA, API_KEY, TOKEN, bot_env, jpeg

ROOT = Path(__file__).resolve().parent.parent


async def test_python_m_bot_answers_start_and_writes_a_story(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "GEMINI_"))}
    env.update(bot_env(tg, gemini, tmp_path / "data"))
    env["NO_PROXY"] = "127.0.0.1,localhost"
    log_path = tmp_path / "bot.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=tmp_path, env=env, stdout=log, stderr=log
        )
        try:
            user = tg.user(user_id=ANA, first_name="Ana")
            chat = tg.private_chat(user)
            tg.send_command(chat, user, "/start")
            await tg.wait_for(
                lambda: any("Hi Ana" in (m.text or "") for m in tg.bot_messages(chat["id"])),
                timeout=30,
            )
            tg.send_photo(chat, user, jpeg(1))
            tg.send_photo(chat, user, jpeg(2))
            gemini.enqueue(Reply(text="# Two photos\n\nA story from a real process."))
            tg.send_command(chat, user, "/story")
            await tg.wait_for(
                lambda: any(
                    "real process" in (m.text or m.caption or "")
                    for m in tg.bot_messages(chat["id"])
                ),
                timeout=30,
            )
            assert len(image_parts(gemini.generate_requests()[-1])) == 2
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), timeout=30)
    output = log_path.read_text(errors="replace")
    assert code == 0, output
    assert (tmp_path / "data" / "photostory.sqlite3").is_file()
    assert TOKEN not in output and API_KEY not in output


async def test_missing_configuration_is_explained_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "GEMINI_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 2
    text = err.decode()
    assert "TELEGRAM_BOT_TOKEN is not set" in text and "GEMINI_API_KEY is not set" in text
