"""What every actor of one pair knows about the run it serves."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from domain.limit_orders import LimitRules
from domain.market import Interval
from domain.messages import PositionReport
from trading.kernel import Book, Sizing


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
    min_hold_bars: int = 0
    """The decision rule's minimum holding: the agent's `environment.min_hold_bars`, as it trained."""
    limit_rules: LimitRules | None = None
    """The limit fill model of the agent's limit entries (`environment.limit`), when it makes them."""

    def actor_key(self, role: str) -> str:
        """The checkpoint key of this pair's actor of `role` in this run."""
        return f"{role}:{self.run_id}:{self.pair}"

    def equity(self, report: PositionReport | None, mark: Decimal) -> Decimal:
        """The run's equity plus this pair's realised PnL after fees and its unrealised PnL at `mark`."""
        if report is None:
            return self.initial_equity
        book = Book(report.quantity, report.entry_price, report.realised, report.fees)
        return self.sizing.equity(book, mark)

    def max_notional(self, equity: Decimal) -> Decimal:
        """The notional of a full target position."""
        return self.sizing.max_notional(equity)

    @property
    def sizing(self) -> Sizing:
        """The trading kernel's sizing of this pair."""
        return Sizing(self.initial_equity, self.max_exposure)
