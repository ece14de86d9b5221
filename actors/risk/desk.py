"""The account guard actor's core: the account's exposures (positions and working orders of every
pair, from execution's reports), the guard's verdicts, closed trades for the daily loss limit and the
circuit breaker, and the state that must survive a restart (`account_risk_state`)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from actors.risk.account import AccountGuard, AccountPolicy, AccountState, AccountVerdict
from domain.messages import PositionReport
from storage.risk import AccountStateRow


class AccountDesk:
    def __init__(self, policy: AccountPolicy, saved: AccountStateRow | None, now: datetime) -> None:
        state = AccountState(now.astimezone(UTC).date())
        if saved is not None:
            state = AccountState(
                saved.trading_day,
                saved.daily_pnl,
                saved.consecutive_losses,
                saved.breaker_open,
                saved.breaker_tripped_at,
                saved.breaker_reason,
            )
        self.guard = AccountGuard(policy, state)
        self.reports: dict[str, PositionReport] = {}

    @property
    def exposures(self) -> dict[str, Decimal]:
        """Signed notional per pair: position and working orders at the last mark."""
        return {pair: (r.quantity + r.working) * r.mark for pair, r in self.reports.items()}

    def on_report(self, report: PositionReport) -> None:
        current = self.reports.get(report.pair)
        if current is None or report.version > current.version:
            self.reports[report.pair] = report

    def check(self, pair: str, after: Decimal, reduces_only: bool, now: datetime) -> AccountVerdict:
        exposures = self.exposures
        exposures.pop(pair, None)
        return self.guard.check(exposures, pair, after, reduces_only, now)

    def trade_closed(self, net_pnl: Decimal, now: datetime) -> bool:
        """A closed trade's PnL after fees; True when it tripped the circuit breaker."""
        return self.guard.record_trade(net_pnl, now)

    def resume(self, now: datetime) -> str | None:
        """The operator closes the breaker; the reason it cannot yet, or None."""
        return self.guard.resume(now)

    def row(self) -> AccountStateRow:
        state = self.guard.state
        exposures = self.exposures.values()
        cooldown = state.breaker_tripped_at + self.guard.policy.breaker_cooldown if state.breaker_tripped_at else None
        return AccountStateRow(
            self.guard.trading_state,
            sum((abs(v) for v in exposures), Decimal(0)),
            sum(exposures, Decimal(0)),
            state.trading_day,
            state.daily_pnl,
            state.consecutive_losses,
            state.breaker_open,
            state.breaker_tripped_at,
            cooldown if state.breaker_open else None,
            state.breaker_reason,
        )

    def summary(self) -> dict[str, Any]:
        row = self.row()
        policy = self.guard.policy
        return {
            "trading_state": row.trading_state,
            "gross_exposure": str(row.gross_exposure),
            "net_exposure": str(row.net_exposure),
            "max_gross_exposure": str(policy.max_gross_exposure),
            "max_net_exposure": str(policy.max_net_exposure),
            "trading_day": row.trading_day.isoformat(),
            "daily_pnl": str(row.daily_pnl),
            "daily_loss_limit": str(policy.daily_loss_limit),
            "consecutive_losses": row.consecutive_losses,
            "breaker_open": row.breaker_open,
            "breaker_reason": row.breaker_reason,
            "breaker_cooldown_until": row.breaker_cooldown_until.isoformat() if row.breaker_cooldown_until else None,
            "exposures": {pair: str(value) for pair, value in sorted(self.exposures.items())},
        }
