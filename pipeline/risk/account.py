"""The account guard's core, one for the whole account: exposure caps that count working orders, the daily
loss limit, and the circuit breaker.

The breaker trips after `breaker_max_losses` losing trades in a row, or when the account's equity falls
`breaker_max_drawdown` USDT below its peak, unrealised PnL included: on paper the pairs' marked value
(every pair's realised PnL less fees and funding plus its open position at the last mark, counted from 0, `mark`),
on a live venue the venue's own equity (wallet balance plus unrealised PnL, `mark_equity`). Tripped, the
account is REDUCING: no order may add exposure, orders that reduce it still go (the protective stops
stay), and the daemon cancels the pairs' opening orders (and, with `flatten_on_trip`, closes their
positions). It is closed again only by an operator's command, and not before its cooldown has passed;
the peak then starts again from the value at that moment. Its state is checkpointed
(`account_risk_state`) so a restart does not reset it.

Every `now` here is the venue's clock (the time of the candle being decided, replay time in a replay):
the trading day is its UTC date, and the breaker's cooldown runs on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from domain.trading_state import TradingState
from pipeline.risk.blocks import Block

GROSS_EXPOSURE = "max_gross_exposure"
NET_EXPOSURE = "max_net_exposure"
DAILY_LOSS = "daily_loss_limit"
BREAKER_OPEN = "circuit_breaker_open"
BREAKER = "circuit_breaker"
"""The breaker as a block (`BREAKER_OPEN` is the reason an order is denied while it is open)."""


@dataclass(frozen=True, slots=True)
class AccountPolicy:
    name: str
    max_gross_exposure: Decimal
    max_net_exposure: Decimal
    daily_loss_limit: Decimal
    breaker_max_losses: int = 5
    breaker_cooldown: timedelta = timedelta(minutes=60)
    breaker_max_drawdown: Decimal | None = None
    flatten_on_trip: bool = False


@dataclass
class AccountState:
    trading_day: date
    daily_pnl: Decimal = Decimal(0)
    consecutive_losses: int = 0
    breaker_open: bool = False
    breaker_tripped_at: datetime | None = None
    breaker_reason: str | None = None
    equity: Decimal = Decimal(0)
    """The account's marked value, counted from 0 as it changes (only its fall from the peak matters), or
    the venue's equity (`equity_source` `venue`)."""
    equity_peak: Decimal = Decimal(0)
    equity_source: str = "book"


@dataclass(frozen=True, slots=True)
class AccountVerdict:
    allowed: bool
    reason: str | None = None
    details: dict[str, str] | None = None


class AccountGuard:
    def __init__(self, policy: AccountPolicy, state: AccountState) -> None:
        self.policy = policy
        self.state = state

    @property
    def trading_state(self) -> TradingState:
        if self.loss_limit_reached:
            return "HALTED"
        if self.state.breaker_open:
            return "REDUCING"
        return "ACTIVE"

    @property
    def drawdown(self) -> Decimal:
        return self.state.equity_peak - self.state.equity

    @property
    def loss_limit_reached(self) -> bool:
        return self.state.daily_pnl <= -self.policy.daily_loss_limit

    @property
    def next_trading_day(self) -> datetime:
        """When the current trading day ends (00:00 UTC of the next date, on the venue's clock)."""
        return datetime.combine(self.state.trading_day + timedelta(days=1), time(0), UTC)

    @property
    def breaker_ready_at(self) -> datetime | None:
        """When an open breaker may first be closed."""
        tripped = self.state.breaker_tripped_at
        return None if not self.state.breaker_open or tripped is None else tripped + self.policy.breaker_cooldown

    def blocks(self, now: datetime) -> tuple[Block, ...]:
        """What halts the account at `now`, each with its figures."""
        found: list[Block] = []
        state, policy = self.state, self.policy
        if self.loss_limit_reached:
            until = self.next_trading_day
            found.append(
                Block(
                    DAILY_LOSS,
                    "account",
                    "HALTED",
                    "automatic",
                    f"the daily PnL {_cents(state.daily_pnl)} USDT of {state.trading_day.isoformat()} reached the "
                    f"daily loss limit of {policy.daily_loss_limit} USDT: no new exposure until the next trading day, "
                    f"{until:%Y-%m-%d %H:%M} UTC (venue time)",
                    until,
                    {
                        "daily_pnl": str(state.daily_pnl),
                        "daily_loss_limit": str(policy.daily_loss_limit),
                        "trading_day": state.trading_day.isoformat(),
                    },
                )
            )
        ready = self.breaker_ready_at
        if state.breaker_open:
            when = "-" if ready is None else f"{ready:%Y-%m-%d %H:%M} UTC (venue time)"
            wait = (
                f"`resume` closes it from {when}" if ready is None or now < ready else "cooled down: `resume` closes it"
            )
            found.append(
                Block(
                    BREAKER,
                    "account",
                    "REDUCING",
                    "automatic",
                    f"the circuit breaker is open ({state.breaker_reason}); {wait}",
                    ready,
                    {
                        "breaker_reason": state.breaker_reason or "",
                        "consecutive_losses": str(state.consecutive_losses),
                        "breaker_max_losses": str(policy.breaker_max_losses),
                        "drawdown": str(self.drawdown),
                        "breaker_max_drawdown": ""
                        if policy.breaker_max_drawdown is None
                        else str(policy.breaker_max_drawdown),
                        "cooldown_until": "" if ready is None else ready.isoformat(),
                    },
                )
            )
        return tuple(found)

    def check(
        self, exposures: dict[str, Decimal], pair: str, after: Decimal, reduces_only: bool, now: datetime
    ) -> AccountVerdict:
        """`exposures`: signed notional per pair, positions plus working orders; `after`: the pair's
        signed notional if this order fills."""
        self._roll_day(now)
        if self.state.breaker_open and not reduces_only:
            return AccountVerdict(False, BREAKER_OPEN, {"reason": self.state.breaker_reason or ""})
        if self.loss_limit_reached and not reduces_only:
            return AccountVerdict(
                False,
                DAILY_LOSS,
                {
                    "daily_pnl": str(self.state.daily_pnl),
                    "limit": str(self.policy.daily_loss_limit),
                    "until": self.next_trading_day.isoformat(),
                },
            )
        if reduces_only:
            return AccountVerdict(True)
        projected = dict(exposures) | {pair: after}
        gross = sum((abs(value) for value in projected.values()), Decimal(0))
        net = abs(sum(projected.values(), Decimal(0)))
        if gross > self.policy.max_gross_exposure:
            return AccountVerdict(
                False, GROSS_EXPOSURE, {"gross": str(gross), "limit": str(self.policy.max_gross_exposure)}
            )
        if net > self.policy.max_net_exposure:
            return AccountVerdict(False, NET_EXPOSURE, {"net": str(net), "limit": str(self.policy.max_net_exposure)})
        return AccountVerdict(True)

    def record_trade(self, realised_after_fees: Decimal, now: datetime) -> bool:
        """A closed trade's result; True when it tripped the breaker."""
        self._roll_day(now)
        self.state.daily_pnl += realised_after_fees
        self.state.consecutive_losses = self.state.consecutive_losses + 1 if realised_after_fees < 0 else 0
        if not self.state.breaker_open and self.state.consecutive_losses >= self.policy.breaker_max_losses:
            self.state.breaker_open = True
            self.state.breaker_tripped_at = now
            self.state.breaker_reason = f"{self.state.consecutive_losses} losing trades in a row"
            return True
        return False

    def mark(self, change: Decimal, now: datetime) -> bool:
        """The account's marked value moved by `change` (a pair's realised PnL less fees plus its open
        position at its mark, since its previous report); True when the fall from the peak tripped the
        breaker."""
        self.state.equity += change
        return self._equity_moved(now)

    def mark_equity(self, equity: Decimal, now: datetime) -> bool:
        """The venue's equity now (wallet balance plus unrealised PnL); True when the fall from the peak
        tripped the breaker."""
        self.state.equity = equity
        return self._equity_moved(now)

    def _equity_moved(self, now: datetime) -> bool:
        state = self.state
        state.equity_peak = max(state.equity_peak, state.equity)
        limit = self.policy.breaker_max_drawdown
        if state.breaker_open or limit is None or self.drawdown < limit:
            return False
        state.breaker_open = True
        state.breaker_tripped_at = now
        state.breaker_reason = (
            f"a drawdown of {_cents(self.drawdown)} USDT from the equity peak (unrealised PnL included) reached "
            f"{limit} USDT"
        )
        return True

    def resume(self, now: datetime) -> str | None:
        """An operator's command: close the breaker if it has cooled down. What still halts the account
        (a breaker cooling down, the daily loss limit until the next trading day), or None when ACTIVE."""
        self._roll_day(now)
        refusals = []
        if self.state.breaker_open:
            assert self.state.breaker_tripped_at is not None
            ready = self.state.breaker_tripped_at + self.policy.breaker_cooldown
            if now < ready:
                refusals.append(f"the circuit breaker cools down until {ready.isoformat()}")
            else:
                self.state.breaker_open = False
                self.state.consecutive_losses = 0
                self.state.breaker_reason = None
                self.state.equity_peak = self.state.equity  # the drawdown counts from here again
        if self.loss_limit_reached:
            refusals.append(
                f"the daily loss limit ({_cents(self.state.daily_pnl)} USDT against "
                f"-{self.policy.daily_loss_limit} USDT) halts new exposure until the next trading day, "
                f"{self.next_trading_day:%Y-%m-%d %H:%M} UTC"
            )
        return "; ".join(refusals) or None

    def roll(self, now: datetime) -> bool:
        """The trading day at `now`; True when a new one began."""
        return self._roll_day(now)

    def _roll_day(self, now: datetime) -> bool:
        """A new trading day (any other date of the venue's clock) starts with a daily PnL of 0."""
        today = now.astimezone(UTC).date()
        if today != self.state.trading_day:
            self.state.trading_day = today
            self.state.daily_pnl = Decimal(0)
            return True
        return False


def _cents(amount: Decimal) -> Decimal:
    """An amount of USDT as people read it (the exact figure stays in the details)."""
    return amount.quantize(Decimal("0.01"))
