"""Start-up imports only what it needs: no Gemini SDK before the first poll or for --help.

google-genai takes about a second to import and python-telegram-bot most of another; the
benchmark times start-up (`python -m bench --only 6`), these tests keep the imports out. Each
process runs with `-X importtime`, which prints every module it imports to stderr as the
import completes.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.fakes.gemini_api import FakeGemini, Reply
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import ANA, BotProcess, jpeg

ROOT = Path(__file__).resolve().parent.parent
# Heavy libraries that neither the folder command's help nor its usage errors need.
NOT_FOR_HELP = ("google.genai", "telegram", "PIL", "av", "boto3", "aiohttp", "rich")


def imported(stderr: str) -> set[str]:
    """The modules an `-X importtime` run imported, read from its stderr."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def among(names: set[str], packages: tuple[str, ...]) -> list[str]:
    """The packages (or their modules) that were imported."""
    return sorted(p for p in packages if any(n == p or n.startswith(p + ".") for n in names))


def _said(tg: FakeTelegram, chat_id: int, needle: str) -> bool:
    return any(needle in (m.text or m.caption or "") for m in tg.bot_messages(chat_id))


async def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "importtime", "-m", "bot.cli", *args, cwd=ROOT,
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, err.decode(errors="replace")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("--help",), 0),
        (("story", "--help"), 0),
        (("story",), 2),  # no folder given
        (("ask", "some/folder", " "), 2),  # an empty question
    ],
    ids=["help", "story-help", "no-folder", "empty-question"],
)
async def test_help_and_usage_errors_import_neither_gemini_nor_telegram(
    args: tuple[str, ...], code: int
) -> None:
    returned, err = await _cli(*args)
    assert returned == code, err[-2000:]
    names = imported(err)
    assert "bot.cli" in names  # the check sees the command's own imports
    assert among(names, NOT_FOR_HELP) == []


async def test_a_missing_key_is_explained_without_importing_gemini(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "GEMINI_"))}
    env["PHOTOSTORY_DATA_DIR"] = str(tmp_path / "data")
    returned, err = await _cli("story", str(tmp_path), env=env)
    assert returned == 1 and "GEMINI_API_KEY" in err
    assert among(imported(err), ("google.genai", "telegram")) == []


async def test_the_bot_polls_before_importing_gemini_and_imports_it_for_the_story(
    tg: FakeTelegram, gemini: FakeGemini, tmp_path: Path
) -> None:
    log = tmp_path / "bot.log"
    bot = BotProcess(tg, gemini, tmp_path / "data", log)
    await bot.start("-X", "importtime")
    try:
        await tg.wait_for(lambda: tg.calls("getUpdates"), timeout=60)
        user = tg.user(user_id=ANA, first_name="Ana")
        chat = tg.private_chat(user)
        tg.send_command(chat, user, "/start")
        tg.send_photo(chat, user, jpeg(1))
        await tg.wait_for(lambda: _said(tg, chat["id"], "📸"), timeout=30)
        names = imported(bot.output())
        assert "telegram" in names and "bot.wiring" in names
        assert among(names, ("google.genai",)) == [], "imported before the model was needed"

        gemini.enqueue(Reply(text="# One photo\n\nThe story."))
        tg.send_command(chat, user, "/story")
        await tg.wait_for(lambda: _said(tg, chat["id"], "The story."), timeout=60)
        assert among(imported(bot.output()), ("google.genai",)) == ["google.genai"]
    finally:
        code = await bot.stop()
    assert code == 0, bot.output()[-3000:]
