"""Token usage of every model call, per user and chat."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from storage.db import Database
from storage.models import now_iso


@dataclass(frozen=True)
class UsageRecord:
    """The tokens one model call used."""

    chat_id: int
    user_id: int | None
    album_id: int | None
    kind: str
    model: str
    prompt_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cached_tokens: int = 0
    total_tokens: int = 0
    by_modality: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class UsageTotals:
    """Sums over a period."""

    calls: int
    prompt_tokens: int
    output_tokens: int
    total_tokens: int


class UsageStore:
    """Appends usage rows and sums them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, usage: UsageRecord) -> None:
        """Store one call's usage."""
        await self.db.execute(
            "INSERT INTO usage (user_id, chat_id, album_id, kind, model, prompt_tokens,"
            " output_tokens, thinking_tokens, cached_tokens, total_tokens, by_modality,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                usage.user_id, usage.chat_id, usage.album_id, usage.kind, usage.model,
                usage.prompt_tokens, usage.output_tokens, usage.thinking_tokens,
                usage.cached_tokens, usage.total_tokens, json.dumps(usage.by_modality),
                now_iso(),
            ),
        )  # fmt: skip

    async def user_totals(self, user_id: int, since_iso: str) -> UsageTotals:
        """One user's usage since a UTC time."""
        row = await self.db.fetchone(
            "SELECT COUNT(*) AS calls, COALESCE(SUM(prompt_tokens), 0) AS p,"
            " COALESCE(SUM(output_tokens + thinking_tokens), 0) AS o,"
            " COALESCE(SUM(total_tokens), 0) AS t FROM usage WHERE user_id = ? AND created_at >= ?",
            (user_id, since_iso),
        )
        assert row is not None
        return UsageTotals(row["calls"], row["p"], row["o"], row["t"])

    async def per_user(self, since_iso: str) -> list[tuple[int | None, UsageTotals]]:
        """Every user's usage since a UTC time, biggest first."""
        rows = await self.db.fetchall(
            "SELECT user_id, COUNT(*) AS calls, SUM(prompt_tokens) AS p,"
            " SUM(output_tokens + thinking_tokens) AS o, SUM(total_tokens) AS t"
            " FROM usage WHERE created_at >= ? GROUP BY user_id ORDER BY t DESC",
            (since_iso,),
        )
        return [(r["user_id"], UsageTotals(r["calls"], r["p"], r["o"], r["t"])) for r in rows]
