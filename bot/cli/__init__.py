"""`photostory story PATH` and `photostory ask PATH "question"`: the bot's story from a folder.

The folder is one album in the command's own storage (`PHOTOSTORY_DATA_DIR`, else
`$XDG_DATA_HOME/photostory`, else `~/.local/share/photostory`), found again by the folder's
resolved path; files already read, model copies and uploads are reused on the next run.
Configuration is the bot's environment (GEMINI_API_KEY, GEMINI_MODEL, GEMINI_BASE_URL...,
a .env file in the working directory); no Telegram token is needed.

Exit codes: 0 done (files that could not be read are listed, the others are used), 1 a problem
to act on (one sentence on stderr: no key, no such folder, the model refused...), 2 bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dotenv import load_dotenv

from bot import i18n
from bot.config import LOCAL_DOWNLOAD_LIMIT, Settings
from bot.errors import ConfigError, ModelError, UserError
from bot.i18n import _, ngettext
from bot.logs import setup_logging
from bot.service.words import counted

if TYPE_CHECKING:
    from bot.cli.commands import AskResult, FolderAlbum, StoryResult
    from bot.cli.folder import Skipped
    from bot.cli.progress import Bars

log = logging.getLogger("bot.cli")
M_ARENA_MAX = -8  # glibc's mallopt parameter number


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit code."""
    _limit_malloc_arenas()
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "ask" and not args.question.strip():
        parser.error("the question is empty")
    if args.command == "story":
        args.wish = (args.wish or "").strip() or None
    load_dotenv(Path.cwd() / ".env", override=False)
    i18n.use(i18n.negotiate(args.language or _locale(os.environ)))
    try:
        settings = cli_settings(os.environ, args.data_dir)
    except ConfigError as e:
        return _fail(args, " ".join(e.problems))
    level = settings.log_level if os.environ.get("LOG_LEVEL") else "WARNING"
    setup_logging(level, settings.secrets)

    folder = Path(args.path).expanduser()
    if not folder.is_dir():
        if folder.exists():
            return _fail(args, _("%(path)s is a file, not a folder.") % {"path": args.path})
        return _fail(args, _("There is no folder at %(path)s.") % {"path": args.path})
    folder = folder.resolve()
    out = Path(args.out).expanduser() if getattr(args, "out", None) else Path.cwd()
    # Imported only now: the services, the media libraries and the model's SDK take seconds to
    # import, and --help, a usage error or a missing setting need none of them.
    import asyncio

    from bot.cli.commands import NoMedia
    from bot.cli.progress import Bars

    try:
        with Bars(enabled=not args.json) as bars:
            result = asyncio.run(_run(args, settings, folder, out, bars))
    except NoMedia as e:
        return _fail(args, str(e), e.skipped)
    except (UserError, ModelError) as e:
        return _fail(args, str(e))
    except KeyboardInterrupt:
        print(_("Stopped. What was read and uploaded is kept for the next run."), file=sys.stderr)
        return 130
    except Exception as e:
        log.debug("The command failed", exc_info=True)
        return _fail(
            args,
            _("Something went wrong (%(error)s). LOG_LEVEL=DEBUG shows the details.")
            % {"error": f"{type(e).__name__}: {e}"},
        )
    if args.json:
        print(json.dumps(_as_json(result), ensure_ascii=False, indent=2))
    else:
        print(_as_text(result))
    return 0


def cli_settings(env: Mapping[str, str], data_dir: str | None = None) -> Settings:
    """The bot's settings without Telegram, with the folder command's data dir.

    Files are read from disk, so Telegram's download limit does not apply (the File API's
    2 GB does)."""
    settings = Settings.from_env(env, require_telegram=False)
    return replace(
        settings,
        data_dir=Path(data_dir).expanduser() if data_dir else default_data_dir(env),
        download_limit=max(settings.download_limit, LOCAL_DOWNLOAD_LIMIT),
    )


def default_data_dir(env: Mapping[str, str]) -> Path:
    """PHOTOSTORY_DATA_DIR, else the XDG data home's photostory folder.

    Not the bot's DATA_DIR, whose default is ./data: the command is run from anywhere, and its
    cache should be found again wherever that is."""
    if chosen := env.get("PHOTOSTORY_DATA_DIR", "").strip():
        return Path(chosen).expanduser()
    base = env.get("XDG_DATA_HOME", "").strip() or "~/.local/share"
    return Path(base).expanduser() / "photostory"


async def _run(
    args: argparse.Namespace, settings: Settings, folder: Path, out: Path, bars: Bars
) -> StoryResult | AskResult:
    from bot.cli.commands import ask, write_story

    if args.command == "story":
        return await write_story(
            settings, folder, bars,
            recursive=args.recursive, wish=args.wish, out=out, language=args.language,
            fresh=args.fresh,
        )  # fmt: skip
    return await ask(
        settings, folder, bars,
        recursive=args.recursive, question=args.question, language=args.language,
    )  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="photostory",
        description="Write the story of a folder of trip photos and videos with Gemini.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    story = commands.add_parser(
        "story",
        help="write the folder's story as a web page and a Markdown zip",
        description="Read the folder's photos and videos and write their story: a "
        "self-contained web page and a Markdown zip, as /export makes them.",
    )
    story.add_argument("path", metavar="PATH", help="the folder of photos and videos")
    story.add_argument("--wish", metavar="TEXT", help='how the story should be, e.g. "a bit funny"')
    story.add_argument("--out", metavar="DIR", help="where to write the files (default: here)")
    story.add_argument(
        "--fresh",
        action="store_true",
        help="start the folder's album over: files deleted from the folder leave the story, "
        "earlier stories are forgotten (uploads are still reused)",
    )
    asking = commands.add_parser(
        "ask",
        help="ask a question about the folder, continuing its conversation",
        description="Ask about the folder's photos; the earlier story and answers are remembered.",
    )
    asking.add_argument("path", metavar="PATH", help="the folder of photos and videos")
    asking.add_argument("question", help="the question")
    for command in (story, asking):
        command.add_argument(
            "-r", "--recursive", action="store_true", help="also read the subfolders"
        )
        command.add_argument("--json", action="store_true", help="print the result as JSON")
        command.add_argument(
            "--language", metavar="CODE", help="the answer's language, e.g. pt-br (default: "
            "the language of the wish or question, else English); also the messages' (else LANG)"
        )  # fmt: skip
        command.add_argument(
            "--data-dir", metavar="DIR", help="where the cache is kept (default: "
            "$PHOTOSTORY_DATA_DIR, else ~/.local/share/photostory)"
        )  # fmt: skip
    return parser


def _fail(args: argparse.Namespace, message: str, skipped: Sequence[Skipped] = ()) -> int:
    if args.json:
        print(json.dumps({"ok": False, "error": message, "skipped": _skipped(skipped)}, indent=2))
    elif skipped:
        print(_skipped_text(skipped))
    print(f"photostory: {message}", file=sys.stderr)
    return 1


def _as_json(result: StoryResult | AskResult) -> dict[str, Any]:
    from bot.cli.commands import StoryResult

    folder_album = result.folder_album
    data: dict[str, Any] = {"ok": True, **_folder_album_json(folder_album)}
    if isinstance(result, StoryResult):
        data["title"] = result.title
        data.update({kind: str(path) for kind, path in result.files.items()})
    else:
        data["answer"] = result.answer
    data["notices"] = result.notices
    return data


def _folder_album_json(folder_album: FolderAlbum) -> dict[str, Any]:
    return {
        "folder": str(folder_album.folder),
        "album": folder_album.album.album.name,
        "photos": folder_album.album.photos,
        "videos": folder_album.album.videos,
        "added": folder_album.added,
        "known": folder_album.known,
        "uploaded": folder_album.uploaded,
        "skipped": _skipped(folder_album.skipped),
        "ignored": folder_album.ignored,
        "missing": folder_album.missing,
    }


def _skipped(skipped: Sequence[Skipped]) -> list[dict[str, str]]:
    return [{"file": s.file, "reason": s.reason} for s in skipped]


def _as_text(result: StoryResult | AskResult) -> str:
    from bot.cli.commands import StoryResult

    folder_album = result.folder_album
    lines = []
    if isinstance(result, StoryResult):
        lines.append(
            _("“%(title)s”, the story of %(counts)s in %(folder)s")
            % {
                "title": result.title,
                "counts": _counts(folder_album),
                "folder": folder_album.folder,
            }
        )
        labels = {"page": _("web page"), "markdown": "Markdown"}
        lines += [f"  {labels.get(k, k)}: {path}" for k, path in result.files.items()]
    else:
        lines.append(result.answer.strip())
    lines += [_("Note: %(notice)s") % {"notice": notice} for notice in result.notices]
    if folder_album.missing:
        count = len(folder_album.missing)
        shown = ", ".join(folder_album.missing[:5]) + (", ..." if count > 5 else "")
        lines.append(
            ngettext(
                "Note: %(count)d file read on an earlier run is not in the folder now "
                "(%(files)s) and still in its album; `photostory story --fresh` starts it over "
                "without it.",
                "Note: %(count)d files read on an earlier run are not in the folder now "
                "(%(files)s) and still in its album; `photostory story --fresh` starts it over "
                "without them.",
                count,
            )
            % {"count": count, "files": shown}
        )
    if folder_album.skipped:
        lines.append(_skipped_text(folder_album.skipped))
    return "\n".join(lines)


def _counts(folder_album: FolderAlbum) -> str:
    album = folder_album.album
    parts = [
        counted(n, kind) for n, kind in ((album.photos, "photo"), (album.videos, "video")) if n
    ]
    if len(parts) == 2:
        return _("%(photos)s and %(videos)s") % {"photos": parts[0], "videos": parts[1]}
    return "".join(parts)


def _skipped_text(skipped: Sequence[Skipped]) -> str:
    count = len(skipped)
    head = ngettext(
        "Skipped %(count)d file that could not be read:",
        "Skipped %(count)d files that could not be read:",
        count,
    ) % {"count": count}
    return "\n".join([head, *(f"  {s.file}: {s.reason}" for s in skipped)])


def _locale(env: Mapping[str, str]) -> str | None:
    """The language of the POSIX locale, as gettext looks it up ("ru_RU.UTF-8")."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        if value := env.get(name, "").split(":")[0]:
            return None if value in {"C", "POSIX"} or value.startswith("C.") else value
    return None


def _limit_malloc_arenas() -> None:
    """As `python -m bot` does: one malloc arena per decoding thread keeps freed memory."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 2)
