"""What model calls cost: a user's own usage, and totals for admins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bot.config import Settings
from storage.protocols import Storage
from storage.records import UsageTotals


@dataclass(frozen=True)
class UsageLine:
    """Usage over one period, with its estimated cost in USD."""

    totals: UsageTotals
    cost: float


@dataclass(frozen=True)
class UsageReport:
    """A user's usage today and this month, and the daily budget."""

    today: UsageLine
    month: UsageLine
    daily_budget: int


class UsageService:
    """Turns the usage rows into reports and costs."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.store = storage.usage

    def cost(self, totals: UsageTotals) -> float:
        """Estimated USD for these tokens at the configured prices (cached input is cheaper)."""
        full_price = totals.prompt_tokens - totals.cached_tokens
        return (
            full_price * self.settings.price_input_per_million
            + totals.cached_tokens * self.settings.price_cached_input_per_million
            + totals.output_tokens * self.settings.price_output_per_million
        ) / 1_000_000

    async def report(self, user_id: int) -> UsageReport:
        """One user's usage today and this month (UTC)."""
        today, month = _period_starts()
        day_totals = await self.store.user_totals(user_id, today)
        month_totals = await self.store.user_totals(user_id, month)
        return UsageReport(
            UsageLine(day_totals, self.cost(day_totals)),
            UsageLine(month_totals, self.cost(month_totals)),
            self.settings.daily_token_budget,
        )

    async def per_user(
        self,
    ) -> tuple[list[tuple[int | None, UsageLine]], list[tuple[int | None, UsageLine]]]:
        """Every user's usage today and this month, biggest first."""
        today, month = _period_starts()
        return (
            [(u, UsageLine(t, self.cost(t))) for u, t in await self.store.per_user(today)],
            [(u, UsageLine(t, self.cost(t))) for u, t in await self.store.per_user(month)],
        )


def _period_starts() -> tuple[str, str]:
    now = datetime.now(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day.isoformat(timespec="seconds"), day.replace(day=1).isoformat(timespec="seconds")
