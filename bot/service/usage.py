"""What model calls cost: a user's own usage, and totals for admins, at prices it names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bot import model_facts
from bot.config import Settings
from storage.protocols import Storage
from storage.records import UsageTotals


@dataclass(frozen=True)
class Prices:
    """The USD per million tokens a cost assumes, and where each figure comes from."""

    input: float | None
    cached_input: float | None
    output: float | None
    model: str
    on: date  # the day the model's list price was looked up for
    set_by_operator: tuple[str, ...]  # which of "input", "cached input", "output" PRICE_* set
    listed_until: date | None  # the last day of the list price, when a change is announced

    def cost(self, totals: UsageTotals) -> float | None:
        """Estimated USD for these tokens (cached input is cheaper); None without prices."""
        if self.input is None or self.cached_input is None or self.output is None:
            return None
        full_price = totals.prompt_tokens - totals.cached_tokens
        return (
            full_price * self.input
            + totals.cached_tokens * self.cached_input
            + totals.output_tokens * self.output
        ) / 1_000_000


def assumed_prices(settings: Settings, on: date) -> Prices:
    """The operator's PRICE_* where set, else the model's list price on that day."""
    own = {
        "input": settings.price_input_per_million,
        "cached input": settings.price_cached_input_per_million,
        "output": settings.price_output_per_million,
    }
    listed = model_facts.list_price(settings.gemini_model, on)
    listed_prices = (
        {"input": listed.input, "cached input": listed.cached_input, "output": listed.output}
        if listed
        else {}
    )
    change = model_facts.next_list_price(settings.gemini_model, on)
    chosen = {n: price if price is not None else listed_prices.get(n) for n, price in own.items()}
    return Prices(
        chosen["input"],
        chosen["cached input"],
        chosen["output"],
        model=settings.gemini_model,
        on=on,
        set_by_operator=tuple(name for name, price in own.items() if price is not None),
        listed_until=change.since - timedelta(days=1) if change else None,
    )


@dataclass(frozen=True)
class UsageLine:
    """Usage over one period, with its estimated cost in USD (None without prices)."""

    totals: UsageTotals
    cost: float | None


@dataclass(frozen=True)
class UsageReport:
    """A user's usage today and this month, the daily budget, and the prices assumed."""

    today: UsageLine
    month: UsageLine
    daily_budget: int
    prices: Prices


class UsageService:
    """Turns the usage rows into reports and costs."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.store = storage.usage
        self.clock = clock

    def prices(self) -> Prices:
        """The prices costs assume today (UTC).

        Today's prices serve the whole month too: Google changes prices on the first of a month."""
        return assumed_prices(self.settings, self.clock().astimezone(UTC).date())

    async def report(self, user_id: int) -> UsageReport:
        """One user's usage today and this month (UTC)."""
        today, month = self._period_starts()
        prices = self.prices()
        day_totals = await self.store.user_totals(user_id, today)
        month_totals = await self.store.user_totals(user_id, month)
        return UsageReport(
            UsageLine(day_totals, prices.cost(day_totals)),
            UsageLine(month_totals, prices.cost(month_totals)),
            self.settings.daily_token_budget,
            prices,
        )

    async def per_user(
        self,
    ) -> tuple[list[tuple[int | None, UsageLine]], list[tuple[int | None, UsageLine]]]:
        """Every user's usage today and this month, biggest first."""
        today, month = self._period_starts()
        cost = self.prices().cost
        return (
            [(u, UsageLine(t, cost(t))) for u, t in await self.store.per_user(today)],
            [(u, UsageLine(t, cost(t))) for u, t in await self.store.per_user(month)],
        )

    def _period_starts(self) -> tuple[str, str]:
        now = self.clock().astimezone(UTC)
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return day.isoformat(timespec="seconds"), day.replace(day=1).isoformat(timespec="seconds")
