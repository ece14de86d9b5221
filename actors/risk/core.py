"""The risk guard actor's core for one pair: a decision in, an order plan out.

- **Trading state**: the strictest of the operator's (pause, `--reduce-only`, resume; survives
  restarts), the automatic one (a failed integrity gate or a stale source pauses the pair and their
  recovery resumes it, logged both ways), and start-up (HALTED until execution has reconciled).
- **Exits**: a position beyond its stop-loss or take-profit distance is closed whatever the policy says.
- **Sizing**: a target is a signed fraction of the pair's maximum notional (`PairContext.max_notional`),
  truncated to the step. The order is the difference to the projected position: the position plus
  working orders (as execution last reported) plus orders sent since (sequence after the report's).
  A move through zero is two orders: a reduce-only close, then the opening order.
- **Checks**: every order passes the pair's limits; an order that adds exposure also asks the account
  guard. A denial stops the plan there and is recorded with its reason; a close already allowed is
  still sent (reducing risk is never held back by a denial of what comes after it).
- **Effective state**: each decision first tells the account guard the time of its candle (its close:
  the venue's clock, which the trading day follows) and hears the account's state; the plan carries the
  strictest of the pair's and the account's, with what blocks it (`blocked_by`), so a decision line
  never says ACTIVE while the account denies every order.
- **Transitions**: an automatic pause (a failed gate, a stale source) beginning or clearing is one
  `Transition` each (`changes`), for the shell to log and alert once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from actors.risk.account import AccountVerdict
from actors.risk.blocks import AccountView, Announcer, Block, Transition, effective
from actors.risk.limits import STOP_LOSS, TAKE_PROFIT, OrderCheck, PairRiskGuard, RiskLimits
from actors.run_context import PairContext
from domain.candles import Candle
from domain.fills import FillRules, below_minimum, truncate_quantity
from domain.market import interval_duration
from domain.messages import ExitReason, OrderIntent, OrderPlan, PolicyDecision, PositionReport, RiskOutcome
from domain.orders import client_order_id
from domain.trading_state import Origin, StateChange, TradingState, strictest
from features.gates import DUPLICATES_DISAGREE, GAP, INVALID_VALUES, SOURCE_DRIFT, STALE, UNALIGNED


class AccountLink(Protocol):
    """The risk guard's line to the account guard."""

    async def observe(self, at_ms: int) -> AccountView:
        """A candle closing at `at_ms` (epoch ms, venue time) is being decided: the account's view then."""
        ...

    async def check(self, pair: str, after: Decimal, reduces_only: bool) -> AccountVerdict:
        """(pair, the pair's signed notional if the order fills, whether it only reduces) -> the verdict."""
        ...


AUTO_PAUSE_REASONS = frozenset({GAP, UNALIGNED, INVALID_VALUES, DUPLICATES_DISAGREE, SOURCE_DRIFT, STALE})
NOT_RECONCILED = "not_reconciled"
SOURCE_STALE = "source_stale"
LEGS_PER_DECISION = 4
"""Client order ids are numbered `sequence * 4 + leg`: legs 0 and 1 for a decision's orders."""
CHECKPOINT_VERSION = 1


@dataclass
class Pauses:
    operator: TradingState = "ACTIVE"
    operator_reason: str | None = None
    automatic: str | None = None
    """The reason of an automatic pause (a failed integrity gate, a stale source), or None."""
    reconciled: bool = False

    @property
    def state(self) -> TradingState:
        automatic: TradingState = "HALTED" if self.automatic else "ACTIVE"
        startup: TradingState = "ACTIVE" if self.reconciled else "HALTED"
        return strictest(self.operator, automatic, startup)

    @property
    def reason(self) -> str | None:
        if not self.reconciled:
            return NOT_RECONCILED
        if self.operator != "ACTIVE":
            return self.operator_reason
        return self.automatic


@dataclass
class RiskCore:
    context: PairContext
    limits: RiskLimits
    rules: FillRules
    account: AccountLink
    pauses: Pauses = field(default_factory=Pauses)
    position: PositionReport | None = None
    in_flight: dict[int, Decimal] = field(default_factory=dict)
    """Signed quantity of the orders sent per decision sequence, until a report covers them."""
    held_target: float | None = None
    """The target the position was last moved to: choosing it again trades nothing (as in training),
    so a position is not churned as equity moves."""
    account_view: AccountView | None = None
    """The account's state when the last candle was decided."""
    automatic_figures: dict[str, str] = field(default_factory=dict)
    """What the automatic pause saw (silence, the candle of a failed gate), for its block."""
    guard: PairRiskGuard = field(init=False)
    announcer: Announcer = field(init=False)

    def __post_init__(self) -> None:
        self.guard = PairRiskGuard(self.context.pair, self.limits)
        self.announcer = Announcer()

    @property
    def trading_state(self) -> TradingState:
        return self.pauses.state

    # ---------------------------------------------------------------- state

    def reconciled(self) -> StateChange | None:
        """Execution has restored and reconciled its book: the start-up halt ends."""
        return self._change(lambda: setattr(self.pauses, "reconciled", True), "reconciled", "startup")

    def pause(self, reason: str, *, reduce_only: bool = False) -> StateChange | None:
        def apply() -> None:
            self.pauses.operator = "REDUCING" if reduce_only else "HALTED"
            self.pauses.operator_reason = reason

        return self._change(apply, reason, "operator")

    def resume(self) -> StateChange | None:
        def apply() -> None:
            self.pauses.operator, self.pauses.operator_reason = "ACTIVE", None

        return self._change(apply, "operator_resume", "operator")

    def automatic(self, reason: str | None) -> StateChange | None:
        """Pause (a reason) or resume (None) automatically; only an automatic pause is lifted this way."""
        if reason == self.pauses.automatic:
            return None
        return self._change(lambda: setattr(self.pauses, "automatic", reason), reason or "data_recovered", "automatic")

    def source(
        self, stale: bool, silent_sec: float | None = None, limit_sec: float | None = None
    ) -> StateChange | None:
        """The supervisor's freshness check: a silent source pauses the pair, its return resumes it
        (an automatic pause for another reason is left alone)."""
        if stale and self.pauses.automatic is None:
            self.automatic_figures = {
                key: f"{value:.0f}"
                for key, value in (("silent_sec", silent_sec), ("stale_after_sec", limit_sec))
                if value is not None
            }
            return self.automatic(SOURCE_STALE)
        if not stale and self.pauses.automatic == SOURCE_STALE:
            return self.automatic(None)
        return None

    def halt_for_shutdown(self) -> None:
        """SIGTERM: no more orders from this process (not checkpointed: a restart reconciles first anyway)."""
        self.pauses.reconciled = False

    def _change(self, apply: Callable[[], None], reason: str, origin: Origin) -> StateChange | None:
        before = self.pauses.state
        apply()
        after = self.pauses.state
        return None if before == after else StateChange(before, after, reason, origin)

    def on_report(self, report: PositionReport) -> None:
        if self.position is not None and report.version <= self.position.version:
            return
        self.position = report
        for sequence in [s for s in self.in_flight if s <= report.last_sequence]:
            del self.in_flight[sequence]

    # ---------------------------------------------------------------- blocks

    def blocks(self) -> tuple[Block, ...]:
        """What the pair itself is held by (the account's blocks come from the account guard)."""
        pauses, found = self.pauses, []
        if not pauses.reconciled:
            found.append(
                Block(NOT_RECONCILED, "pair", "HALTED", "startup", "execution has not reconciled with the venue yet")
            )
        if pauses.operator != "ACTIVE":
            cause = pauses.operator_reason or "operator_pause"
            allows = "only orders that reduce a position" if pauses.operator == "REDUCING" else "no new orders"
            detail = f"paused by the operator ({cause}): {allows}; `resume` lifts it"
            found.append(Block(cause, "pair", pauses.operator, "operator", detail))
        if pauses.automatic is not None:
            found.append(self._automatic_block(pauses.automatic))
        return tuple(found)

    def _automatic_block(self, reason: str) -> Block:
        figures = dict(self.automatic_figures)
        if reason == SOURCE_STALE:
            silent = figures.get("silent_sec")
            limit = figures.get("stale_after_sec")
            detail = (
                "no market data"
                + (f" for {silent} s" if silent else "")
                + (f" (stale after {limit} s)" if limit else "")
                + "; trading resumes when it flows again"
            )
        elif reason.startswith("gate:"):
            candle = figures.get("candle")
            detail = (
                f"the integrity gate failed ({reason[5:]})"
                + (f" at candle {candle}" if candle else "")
                + "; trading resumes when a candle passes it"
            )
        else:
            detail = f"paused automatically ({reason})"
        return Block(reason, "pair", "HALTED", "automatic", detail, None, figures)

    def changes(self) -> list[Transition]:
        """The automatic pauses that began or cleared since the last call, once each."""
        automatic = [block for block in self.blocks() if block.origin == "automatic"]
        cleared_by = {
            cause: "data_flowing" if cause == SOURCE_STALE else "gate_passed" if cause.startswith("gate:") else None
            for cause in self.announcer.announced
        }
        return self.announcer.changes(automatic, {k: v for k, v in cleared_by.items() if v is not None})

    def effective(self, account: AccountView | None = None) -> tuple[TradingState, str, tuple[Block, ...]]:
        """The state that governs the pair's orders, its name with causes, and every block behind it."""
        view = account if account is not None else self.account_view
        blocks = self.blocks() + (view.blocks if view is not None else ())
        state, name = effective(self.trading_state, ((block.state, block.cause) for block in blocks))
        return state, name, blocks

    # ---------------------------------------------------------------- deciding

    async def plan(self, decision: PolicyDecision) -> tuple[OrderPlan, StateChange | None]:
        market = decision.input
        forced = market.forced_hold
        change = None
        if forced in AUTO_PAUSE_REASONS:
            if self.pauses.automatic != f"gate:{forced}":
                self.automatic_figures = {"candle": market.trace_id}
            change = self.automatic(f"gate:{forced}")
        elif forced is None and (self.pauses.automatic or "").startswith("gate:"):
            change = self.automatic(None)
        self.account_view = await self.account.observe(decision_time_ms(market.candle))
        state, _, blocks = self.effective()
        blocked_by = tuple(block.cause for block in blocks)
        price = Decimal(repr(market.candle.close))
        target, reason = self._target(decision, price)
        if target is None or (reason == "target" and decision.target == self.held_target):
            return OrderPlan(decision, target, (), RiskOutcome(True), state, blocked_by), change
        projected = self._projected()
        legs = _legs(projected, target - projected)
        orders: list[OrderIntent] = []
        outcome = RiskOutcome(True)
        position = projected
        for leg, quantity, reduce_only in legs:
            after = position + quantity
            full_close = reduce_only and after == 0
            if not full_close and below_minimum(abs(quantity), price, self.rules):
                break
            verdict = await self._check(market.pair, abs(quantity), price, position, after, market.candle.open_time_ms)
            if not verdict.allowed:
                outcome = verdict
                break
            orders.append(
                OrderIntent(
                    client_order_id(self.context.run_id, market.pair, market.sequence * LEGS_PER_DECISION + leg),
                    "BUY" if quantity > 0 else "SELL",
                    abs(quantity),
                    reduce_only,
                    reason,
                    leg,
                )
            )
            self.guard.record_sent(market.candle.open_time_ms)
            position = after
        if orders:
            # Set, not added: a decision sent again (after a restart downstream) replaces its own orders.
            self.in_flight[market.sequence] = position - projected
        if outcome.allowed:
            self.held_target = 0.0 if reason != "target" else decision.target
        return OrderPlan(decision, target, tuple(orders), outcome, state, blocked_by), change

    def _target(self, decision: PolicyDecision, price: Decimal) -> tuple[Decimal | None, ExitReason]:
        """The signed target quantity, and why; None to keep the position (HOLD)."""
        report = self.position
        if report is not None and report.quantity != 0:
            exit_reason = self.guard.exit_reason(report.quantity, report.entry_price, price)
            if exit_reason == STOP_LOSS:
                return Decimal(0), "stop_loss"
            if exit_reason == TAKE_PROFIT:
                return Decimal(0), "take_profit"
        if decision.target is None:
            return None, "target"
        equity = self.context.equity(report, price)
        fraction = Decimal(repr(decision.target))
        quantity = truncate_quantity(abs(fraction) * self.context.max_notional(equity) / price, self.rules)
        return (quantity if fraction > 0 else -quantity), "target"

    def _projected(self) -> Decimal:
        report = self.position
        base = Decimal(0) if report is None else report.quantity + report.working
        return base + sum(self.in_flight.values(), Decimal(0))

    async def _check(
        self, pair: str, quantity: Decimal, price: Decimal, before: Decimal, after: Decimal, interval_start_ms: int
    ) -> RiskOutcome:
        self.guard.state = self.trading_state
        order = OrderCheck(
            pair, quantity, price, before, after, self.context.equity(self.position, price), interval_start_ms
        )
        verdict = self.guard.check(order)
        if not verdict.allowed:
            details = dict(verdict.details)
            if verdict.reason in ("trading_halted", "reduce_only") and self.pauses.reason:
                details["why"] = self.pauses.reason
            return RiskOutcome(False, verdict.reason, details)
        account = await self.account.check(pair, after * price, order.reduces_only)
        if not account.allowed:
            return RiskOutcome(False, account.reason, dict(account.details or {}))
        return RiskOutcome(True)

    # ---------------------------------------------------------------- checkpoint

    def to_json(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "operator": self.pauses.operator,
            "operator_reason": self.pauses.operator_reason,
            "automatic": self.pauses.automatic,
            "held_target": self.held_target,
        }

    def restore(self, document: dict[str, Any]) -> None:
        """The operator's and the automatic pause survive a restart; reconciliation is done again."""
        if document.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"risk checkpoint version {document.get('version')!r} is not {CHECKPOINT_VERSION}")
        self.pauses = Pauses(document["operator"], document["operator_reason"], document["automatic"], False)
        self.held_target = document.get("held_target")
        self.announcer = Announcer(b for b in self.blocks() if b.origin == "automatic")  # announced before

    def status(self) -> dict[str, Any]:
        return {
            "trading_state": self.trading_state,
            "reason": self.pauses.reason,
            "operator": self.pauses.operator,
            "automatic": self.pauses.automatic,
            "reconciled": self.pauses.reconciled,
            "blocked_by": [block.to_json() for block in self.blocks()],
            "projected_position": str(self._projected()),
        }


def decision_time_ms(candle: Candle) -> int:
    """When a candle is decided, on the venue's clock: its close (its open for a calendar month)."""
    try:
        return candle.open_time_ms + int(interval_duration(candle.interval).total_seconds() * 1000)
    except ValueError:
        return candle.open_time_ms


def _legs(position: Decimal, delta: Decimal) -> list[tuple[int, Decimal, bool]]:
    """The orders that move `position` by `delta`: (leg, signed quantity, reduce-only)."""
    if delta == 0:
        return []
    if position == 0 or (position > 0) == (delta > 0):
        return [(1, delta, False)]
    closing = min(abs(delta), abs(position))
    close = closing if delta > 0 else -closing
    rest = delta - close
    return [(0, close, True)] + ([(1, rest, False)] if rest != 0 else [])
