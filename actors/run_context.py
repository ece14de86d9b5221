"""What every actor of one pair knows about the run it serves."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from domain.market import Interval
from domain.messages import PositionReport


@dataclass(frozen=True, slots=True)
class PairContext:
    run_id: str
    pair: str
    interval: Interval
    mode: Literal["paper", "live"]
    feature_set: str
    policy: str
    initial_equity: Decimal
    """The equity each pair of the run sizes against (plus its own PnL)."""
    max_exposure: Decimal = Decimal("0.5")
    """A full target (1.0) is a position of this fraction of the equity, as in the training environment."""

    def actor_key(self, role: str) -> str:
        """The checkpoint key of this pair's actor of `role` in this run."""
        return f"{role}:{self.run_id}:{self.pair}"

    def equity(self, report: PositionReport | None, mark: Decimal) -> Decimal:
        """The run's equity plus this pair's realised PnL after fees and its unrealised PnL at `mark`."""
        if report is None:
            return self.initial_equity
        unrealised = (mark - report.entry_price) * report.quantity if report.quantity else Decimal(0)
        return self.initial_equity + report.realised - report.fees + unrealised

    def max_notional(self, equity: Decimal) -> Decimal:
        """The notional of a full target position."""
        return max(equity, Decimal(0)) * self.max_exposure
