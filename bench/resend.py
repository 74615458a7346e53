"""4. Re-sent media per follow-up: what each question after the story sends to Gemini again.

An album of photos (the real test photos as files, the rest compressed) and two real videos
gets its story; then each follow-up question is matched to the requests the fake Gemini
received between the question and its answer. Media bytes sent again = inline data in those
requests (generateContent or cachedContents) + bytes uploaded to the File API meanwhile.

Input tokens per follow-up, from the bot's own usage rows (the fake's token estimate: 258 per
photo, 300 per video, 4 characters of text per token): billed at the full price (input minus
cached) against the album's tokens (the context cache the story left behind, which holds the
system instruction and the album). Caching is on, as the product ships (GEMINI_CACHE_*).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bench import media
from bench.chats import prepare_photos
from bench.report import Row, kb, median, verdict
from bench.session import Context, Session
from bot.config import DEFAULT_MODEL
from bot.model_facts import list_price
from tests.fakes.gemini_api import Recorded, file_uris, inline_bytes

SCENARIO = "4 re-sent media"
VIDEOS = 2
# USD per million tokens: the default model's list input and cached-input prices today, and the
# storage price per hour Google lists for Flash models' explicit caches (an assumption: not
# measured).
_LISTED = list_price(DEFAULT_MODEL, datetime.now(UTC).date())
assert _LISTED is not None, "bot/model_facts.py has the default model's prices"
PRICE_INPUT, PRICE_CACHED = _LISTED.input, _LISTED.cached_input
STORAGE_PRICE = 1.0


async def run(ctx: Context) -> list[Row]:
    """Album, story, follow-ups; read the fake Gemini's log."""
    plan = ctx.plan
    real = [(p.name, p.read_bytes()) for p in media.REAL_PHOTOS]
    compressed = media.photos(media.COMPRESSED, plan.resend_photos - len(real), first=10_000)
    prepare_photos(compressed)
    async with Session(ctx, "resend") as session:
        user = session.traveller()
        sent = [user.send_files(real)]
        sent += [user.send_photos(compressed[i : i + 10]) for i in range(0, len(compressed), 10)]
        sent += [user.send_video(p.read_bytes(), p.name) for p in media.REAL_VIDEOS[:VIDEOS]]
        await user.acknowledged(sent, ctx.plan.ack_quiet)
        story = await user.story("short")
        answers = [
            await user.ask(f"Which photo was taken first, and where? (question {n})")
            for n in range(1, plan.resend_questions + 1)
        ]
        requests = list(session.gemini.requests)
        await session.stop_process()
        tokens = _follow_up_tokens(session.db_path)
        # Storage bought so far: each live cache from its creation to its (refreshed) expiry.
        token_hours = sum(
            c.tokens * (c.expires - _parse_time(c.json["createTime"])).total_seconds() / 3600
            for c in session.gemini.caches.values()
        )

    def window(start: float, seconds: float) -> list[Recorded]:
        return [r for r in requests if start <= r.time <= start + seconds]

    story_window = window(story.sent_at, story.final)
    story_uploads = [r for r in story_window if r.kind == "upload_chunk"]
    resent: list[int] = []
    refs: list[int] = []
    sizes: list[int] = []
    for answer in answers:
        seen = window(answer.sent_at, answer.final)
        asks = [r for r in seen if r.kind in ("generate", "stream")]
        if not asks:
            raise RuntimeError("a follow-up reached no generateContent request")
        media_bytes = sum(
            inline_bytes(r.body) for r in seen if r.kind in ("generate", "stream", "cache_create")
        )
        media_bytes += sum(r.bytes_len for r in seen if r.kind == "upload_chunk")
        resent.append(media_bytes)
        refs.append(sum(len(file_uris(r.body)) for r in asks))
        sizes.append(sum(r.bytes_len for r in asks))
    album = f"{plan.resend_photos} photos + {VIDEOS} videos"
    full = [prompt - cached for prompt, cached in tokens.follow_ups]
    cached = [c for _, c in tokens.follow_ups]
    share = max(full) / tokens.album if tokens.album and full else float("nan")
    caches = [r for r in requests if r.kind.startswith("cache_")]
    return [
        Row(
            SCENARIO,
            f"media bytes sent again per follow-up after the story ({album}), worst of "
            f"{len(answers)}",
            f"{max(resent)} B",
            "0 B",
            verdict(max(resent) == 0),
            {"bytes": resent},
        ),
        Row(
            SCENARIO,
            "per follow-up: file references / request size (median)",
            f"{median(refs):.0f} refs / {kb(median(sizes))}",
            data={"refs": refs, "request_bytes": sizes},
        ),
        Row(
            SCENARIO,
            f"per follow-up ({album}): input tokens = at the full price + cached (median; "
            "all of them at the full price without the cache)",
            f"{median([p for p, _ in tokens.follow_ups]):,.0f} = {median(full):,.0f} + "
            f"{median(cached):,.0f}",
            data={"full_price": full, "cached": cached},
        ),
        Row(
            SCENARIO,
            "full-price input tokens per follow-up, worst, as a share of the album's "
            f"{tokens.album:,} tokens",
            f"{share:.1%}",
            "<= 10%",
            verdict(share <= 0.10),
            {"album_tokens": tokens.album, "share": share},
        ),
        Row(
            SCENARIO,
            "the album's context cache: made / refreshed / deleted; tokens read once to make it",
            f"{sum(r.kind == 'cache_create' for r in caches)} / "
            f"{sum(r.kind == 'cache_update' for r in caches)} / "
            f"{sum(r.kind == 'cache_delete' for r in caches)}; {tokens.cache_made:,}",
            data={"cache_requests": [r.kind for r in caches], "made": tokens.cache_made},
        ),
        Row(
            SCENARIO,
            f"cache storage to its expiry at ${STORAGE_PRICE:g}/M token-hours (not in /usage) / "
            "input cost saved per follow-up",
            f"{token_hours:,.0f} token-hours ≈ ${token_hours * STORAGE_PRICE / 1e6:.4f} / "
            f"${median(cached) * (PRICE_INPUT - PRICE_CACHED) / 1e6:.4f}",
            data={"token_hours": token_hours},
        ),
        Row(
            SCENARIO,
            "the story itself: uploads to the File API",
            f"{len(story_uploads)} files, {kb(sum(r.bytes_len for r in story_uploads))}",
            data={"uploads": len(story_uploads)},
        ),
    ]


class _Tokens:
    """What the bot's usage rows say about the follow-ups and the album's cache."""

    def __init__(self, follow_ups: list[tuple[int, int]], album: int, cache_made: int) -> None:
        self.follow_ups = follow_ups  # (input tokens, of them cached) per follow-up
        self.album = album
        self.cache_made = cache_made


def _follow_up_tokens(db_path: Path) -> _Tokens:
    conn = sqlite3.connect(db_path)
    try:
        follow_ups = [
            (int(p), int(c))
            for p, c in conn.execute(
                "SELECT prompt_tokens, cached_tokens FROM usage WHERE kind = 'question' ORDER BY id"
            )
        ]
        made = conn.execute(
            "SELECT COALESCE(SUM(prompt_tokens), 0) FROM usage WHERE kind = 'cache'"
        ).fetchone()[0]
        # The album as the cache holds it; without a cache, the story's whole input.
        row = conn.execute("SELECT tokens FROM context_caches").fetchone()
        if row is None:
            row = conn.execute(
                "SELECT prompt_tokens FROM usage WHERE kind = 'story' ORDER BY id LIMIT 1"
            ).fetchone()
    finally:
        conn.close()
    return _Tokens(follow_ups, int(row[0]) if row else 0, int(made))


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
