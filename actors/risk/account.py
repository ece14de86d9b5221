"""The account guard's core, one for the whole account: exposure caps that count working orders, the
daily loss limit, and the circuit breaker.

The breaker trips after `breaker_max_losses` losing trades in a row; it halts the account, and is
closed again only by an operator's command, and not before its cooldown has passed. Its state is
checkpointed (`account_risk_state`) so a restart does not reset it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from domain.trading_state import TradingState

GROSS_EXPOSURE = "max_gross_exposure"
NET_EXPOSURE = "max_net_exposure"
DAILY_LOSS = "daily_loss_limit"
BREAKER_OPEN = "circuit_breaker_open"


@dataclass(frozen=True, slots=True)
class AccountPolicy:
    name: str
    max_gross_exposure: Decimal
    max_net_exposure: Decimal
    daily_loss_limit: Decimal
    breaker_max_losses: int = 5
    breaker_cooldown: timedelta = timedelta(minutes=60)


@dataclass
class AccountState:
    trading_day: date
    daily_pnl: Decimal = Decimal(0)
    consecutive_losses: int = 0
    breaker_open: bool = False
    breaker_tripped_at: datetime | None = None
    breaker_reason: str | None = None


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
        if self.state.breaker_open or self.state.daily_pnl <= -self.policy.daily_loss_limit:
            return "HALTED"
        return "ACTIVE"

    def check(
        self, exposures: dict[str, Decimal], pair: str, after: Decimal, reduces_only: bool, now: datetime
    ) -> AccountVerdict:
        """`exposures`: signed notional per pair, positions plus working orders; `after`: the pair's
        signed notional if this order fills."""
        self._roll_day(now)
        if self.state.breaker_open and not reduces_only:
            return AccountVerdict(False, BREAKER_OPEN, {"reason": self.state.breaker_reason or ""})
        if self.state.daily_pnl <= -self.policy.daily_loss_limit and not reduces_only:
            return AccountVerdict(False, DAILY_LOSS, {"daily_pnl": str(self.state.daily_pnl)})
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

    def resume(self, now: datetime) -> str | None:
        """An operator's command to close the breaker; the reason it cannot yet, or None when closed."""
        if not self.state.breaker_open:
            return None
        assert self.state.breaker_tripped_at is not None
        ready = self.state.breaker_tripped_at + self.policy.breaker_cooldown
        if now < ready:
            return f"the circuit breaker cools down until {ready.isoformat()}"
        self.state.breaker_open = False
        self.state.consecutive_losses = 0
        self.state.breaker_reason = None
        return None

    def _roll_day(self, now: datetime) -> None:
        today = now.astimezone(UTC).date()
        if today != self.state.trading_day:
            self.state.trading_day = today
            self.state.daily_pnl = Decimal(0)
