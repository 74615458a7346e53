"""Token usage of every model call, per user and chat."""

from __future__ import annotations

import json

from storage.records import UsageRecord, UsageTotals, now_iso
from storage.sqlite.db import Database


class SqliteUsageStore:
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
                usage.tokens.prompt, usage.tokens.output, usage.tokens.thinking,
                usage.tokens.cached, usage.tokens.total, json.dumps(usage.tokens.by_modality),
                now_iso(),
            ),
        )  # fmt: skip

    async def user_totals(self, user_id: int, since_iso: str) -> UsageTotals:
        """One user's usage since a UTC time."""
        row = await self.db.fetchone(
            "SELECT COUNT(*) AS calls, COALESCE(SUM(prompt_tokens), 0) AS p,"
            " COALESCE(SUM(output_tokens + thinking_tokens), 0) AS o,"
            " COALESCE(SUM(total_tokens), 0) AS t, COALESCE(SUM(cached_tokens), 0) AS c"
            " FROM usage WHERE user_id = ? AND created_at >= ?",
            (user_id, since_iso),
        )
        assert row is not None
        return UsageTotals(row["calls"], row["p"], row["o"], row["t"], row["c"])

    async def per_user(self, since_iso: str) -> list[tuple[int | None, UsageTotals]]:
        """Every user's usage since a UTC time, biggest first."""
        rows = await self.db.fetchall(
            "SELECT user_id, COUNT(*) AS calls, SUM(prompt_tokens) AS p,"
            " SUM(output_tokens + thinking_tokens) AS o, SUM(total_tokens) AS t,"
            " SUM(cached_tokens) AS c"
            " FROM usage WHERE created_at >= ? GROUP BY user_id ORDER BY t DESC",
            (since_iso,),
        )
        return [
            (r["user_id"], UsageTotals(r["calls"], r["p"], r["o"], r["t"], r["c"])) for r in rows
        ]
