"""The account guard actor's core: the account's exposures (positions and working orders of every
pair, from execution's reports), the guard's verdicts, closed trades for the daily loss limit and the
circuit breaker, and the state that must survive a restart (`account_risk_state`).

The desk keeps the venue's clock: the latest candle time any pair has decided (`observe`), never going
back, so the trading day and the breaker's cooldown follow market time (replay time in a replay), not
the wall clock. Until the first candle after a start, the clock is the last market time the saved state
knows (the start of its trading day, or the breaker's trip). `changes` gives each block (daily loss
limit, circuit breaker) that began or cleared since it was last asked, once. After a restart a restored
open breaker counts as announced already (its trip was saved as it was announced); a daily-loss halt is
announced again at the start, because whether it holds depends on the limit now configured, which may
have been lowered since (a halt no event ever reported would be a silent one)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from domain.messages import PositionReport
from pipeline.risk.account import BREAKER, DAILY_LOSS, AccountGuard, AccountPolicy, AccountState, AccountVerdict
from pipeline.risk.blocks import AccountView, Announcer, Transition
from storage.risk import AccountStateRow


class AccountDesk:
    def __init__(
        self, policy: AccountPolicy, saved: AccountStateRow | None, now: datetime, equity_source: str = "book"
    ) -> None:
        """`equity_source`: `venue` on a live run (the venue's equity, `venue_equity`), else `book` (the
        pairs' reports). A saved equity of the other source is not carried over: the peak starts again
        (from the venue's first reading, or from 0)."""
        state = AccountState(now.astimezone(UTC).date(), equity_source=equity_source)
        if saved is not None:
            same = saved.equity_source == equity_source
            state = AccountState(
                saved.trading_day,
                saved.daily_pnl,
                saved.consecutive_losses,
                saved.breaker_open,
                saved.breaker_tripped_at,
                saved.breaker_reason,
                saved.equity if same else Decimal(0),
                saved.equity_peak if same else Decimal(0),
                equity_source,
            )
        self.guard = AccountGuard(policy, state)
        self._venue_baseline = equity_source == "venue" and (saved is None or saved.equity_source != "venue")
        """Whether the venue's next reading starts the peak (no venue equity saved yet)."""
        self.venue_equity_at: datetime | None = None
        """When the venue's equity was last read (wall clock); None before the first reading."""
        self.venue_balance: Decimal | None = None
        self.reports: dict[str, PositionReport] = {}
        self.clock: datetime | None = None
        """The latest market time observed since the start; None before the first candle."""
        self._announcer = Announcer(block for block in self.guard.blocks(self.now) if block.cause == BREAKER)
        self._halted_on = state.trading_day
        self._cooled_announced = False

    @property
    def now(self) -> datetime:
        """The venue's clock as far as the desk knows it."""
        if self.clock is not None:
            return self.clock
        state = self.guard.state
        start = datetime.combine(state.trading_day, time(0), UTC)
        return max(start, state.breaker_tripped_at) if state.breaker_tripped_at is not None else start

    def observe(self, moment: datetime) -> AccountView:
        """A pair decides the candle closing at `moment`: the clock moves on (never back), the trading day
        rolls over when its date changes; the account's state and blocks at that time."""
        if self.clock is None or moment > self.clock:
            self.clock = moment
        self.guard.roll(self.now)
        return self.view()

    def view(self) -> AccountView:
        return AccountView(self.guard.trading_state, self.guard.blocks(self.now))

    def changes(self) -> list[Transition]:
        """Blocks that began or cleared since the last call (each once), and the breaker's cooldown ending
        (a `Transition` of the breaker block with `began` False and `cleared_by` `cooldown_over`: it is still
        open, but `resume` may close it now)."""
        blocks = self.guard.blocks(self.now)
        cleared_by = {
            DAILY_LOSS: "next_trading_day"
            if self.guard.state.trading_day != self._halted_on
            else "daily_pnl_recovered",
            BREAKER: "operator",
        }
        transitions = self._announcer.changes(blocks, cleared_by)
        if any(t.began and t.block.cause == DAILY_LOSS for t in transitions):
            self._halted_on = self.guard.state.trading_day
        ready = self.guard.breaker_ready_at
        if ready is None:
            self._cooled_announced = False
        elif self.now >= ready and not self._cooled_announced:
            self._cooled_announced = True
            breaker = next(block for block in blocks if block.cause == BREAKER)
            transitions.append(Transition(breaker, False, "cooldown_over"))
        return transitions

    @property
    def exposures(self) -> dict[str, Decimal]:
        """Signed notional per pair: position and working orders at the last mark."""
        return {pair: (r.quantity + r.working) * r.mark for pair, r in self.reports.items()}

    def on_report(self, report: PositionReport) -> bool:
        """A pair's newer position (an older one is ignored); its change of marked value moves the account's,
        from the pair's second report since the start (the first is its baseline: a move while the daemon
        was down is not counted). True when the drawdown tripped the breaker."""
        current = self.reports.get(report.pair)
        if current is not None and report.version <= current.version:
            return False
        self.reports[report.pair] = report
        if self.guard.state.equity_source == "venue":  # the venue's equity moves the account's, not the books
            return False
        if current is None or report.version == 1:  # the pair's first report, or a restarted pair's
            return False
        before, after = marked_value(current), marked_value(report)
        if before is None or after is None:  # a position with no mark yet (adopted before any candle)
            return False
        return self.guard.mark(after - before, self.now)

    def venue_equity(self, equity: Decimal, balance: Decimal, read_at: datetime) -> bool:
        """The live venue's equity (wallet `balance` plus unrealised PnL), read at `read_at`; the first
        reading of a run gone live is the peak's start. True when the drawdown tripped the breaker."""
        self.venue_equity_at = read_at
        self.venue_balance = balance
        if self._venue_baseline:
            self._venue_baseline = False
            self.guard.state.equity = self.guard.state.equity_peak = equity
            return False
        return self.guard.mark_equity(equity, self.now)

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
            state.equity,
            state.equity_peak,
            state.equity_source,
        )

    def summary(self) -> dict[str, Any]:
        row = self.row()
        policy = self.guard.policy
        return {
            "trading_state": row.trading_state,
            "blocked_by": [block.to_json() for block in self.guard.blocks(self.now)],
            "market_time": None if self.clock is None else self.clock.isoformat(),
            "gross_exposure": str(row.gross_exposure),
            "net_exposure": str(row.net_exposure),
            "max_gross_exposure": str(policy.max_gross_exposure),
            "max_net_exposure": str(policy.max_net_exposure),
            "trading_day": row.trading_day.isoformat(),
            "daily_pnl": str(row.daily_pnl),
            "daily_loss_limit": str(policy.daily_loss_limit),
            "consecutive_losses": row.consecutive_losses,
            "drawdown": str(self.guard.drawdown),
            "equity_source": row.equity_source,
            "venue_equity": str(row.equity) if row.equity_source == "venue" and self.venue_equity_at else None,
            "venue_balance": None if self.venue_balance is None else str(self.venue_balance),
            "venue_equity_read_at": None if self.venue_equity_at is None else self.venue_equity_at.isoformat(),
            "breaker_max_drawdown": None if policy.breaker_max_drawdown is None else str(policy.breaker_max_drawdown),
            "breaker_open": row.breaker_open,
            "breaker_reason": row.breaker_reason,
            "breaker_tripped_at": row.breaker_tripped_at.isoformat()
            if row.breaker_open and row.breaker_tripped_at
            else None,
            "breaker_cooldown_until": row.breaker_cooldown_until.isoformat() if row.breaker_cooldown_until else None,
            "exposures": {pair: str(value) for pair, value in sorted(self.exposures.items())},
        }


def marked_value(report: PositionReport) -> Decimal | None:
    """A pair's realised PnL less fees and funding plus its open position at its mark; None for a position
    not marked yet (no candle since it was adopted)."""
    if report.quantity != 0 and report.mark <= 0:
        return None
    return report.realised - report.fees - report.funding + report.quantity * (report.mark - report.entry_price)
