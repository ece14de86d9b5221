"""The risk guard actor's core for one pair: a decision in, an order plan out.

- **Trading state**: the strictest of the operator's (pause, `--reduce-only`, resume; survives
  restarts), the automatic one (a failed integrity gate or a stale source pauses the pair and their
  recovery resumes it, logged both ways), the live venue's (an order's outcome unresolved: REDUCING;
  the venue refusing the pair or the account: HALTED; survives restarts, lifted by `resume`), and
  start-up (HALTED until execution has reconciled).
- **The rule**: exits, the held target, sizing, legs and the pair's limits are the trading kernel's
  (`trading.kernel`, the same rule the training environment and the backtests run). The kernel decides
  on the position once every order sent has filled: execution's last report, with the orders sent
  since it filled at the open of the candle after each was sent, as the paper venue fills them
  (`book`). Each leg the pair allows is put to the account guard in order; a denial stops the plan
  there and is recorded with its reason; a close already allowed is still sent (reducing risk is
  never held back by a denial of what comes after it).
- **Limit entries**: on paper, a post-only entry it sent is stepped through each candle it decides by the
  one limit fill model, as the paper venue will fill it (`resting`): its fills join the projection until
  a report covers them. On a live venue, whose fills the model cannot foretell, the entry only ages
  candle by candle (execution cancels it there when its life ends) and what it filled is what
  execution reports. Either way the kernel waits while it rests, and one that ended without filling in
  full (the position a full fill leaves, `resting_full`, not reached) leaves no target held. A report
  showing execution holds no entry any more (filled on the venue, refused post-only, an operator's
  cancel) ends it here too.
- **Effective state**: each decision first tells the account guard the time of its candle (its close:
  the venue's clock, which the trading day follows) and hears the account's state; the plan carries the
  strictest of the pair's and the account's, with what blocks it (`blocked_by`), so a decision line
  never says ACTIVE while the account denies every order.
- **Transitions**: an automatic pause (a failed gate, a stale source) beginning or clearing is one
  `Transition` each (`changes`), for the shell to log and alert once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Protocol

from domain.candles import Candle
from domain.fills import Fill, FillRules
from domain.market import interval_duration
from domain.messages import OrderPlan, PolicyDecision, PositionReport, RiskOutcome
from domain.trading_state import Origin, StateChange, TradingState, strictest
from features.gates import DUPLICATES_DISAGREE, GAP, INVALID_VALUES, SOURCE_DRIFT, STALE, UNALIGNED
from pipeline.risk.account import AccountVerdict
from pipeline.risk.blocks import AccountView, Announcer, Block, Transition, effective
from trading.context import PairContext
from trading.kernel import Book, PairKernel, project
from trading.limits import PairRiskGuard, RiskLimits
from trading.resting import RestingEntry, resting_from_json, resting_json, step_candle


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
RECONCILABLE = frozenset({"order_unresolved", "reconciliation_failed"})
"""Venue holds a passing reconciliation lifts (it found every order and agreed with the venue)."""
SOURCE_STALE = "source_stale"
CHECKPOINT_VERSION = 1
KEPT_CANDLES = 64
"""Candles decided since execution's last report that the projection remembers (their opens)."""


@dataclass
class Pauses:
    operator: TradingState = "ACTIVE"
    operator_reason: str | None = None
    automatic: str | None = None
    """The reason of an automatic pause (a failed integrity gate, a stale source), or None."""
    reconciled: bool = False
    venue: TradingState = "ACTIVE"
    """What the live venue's outcomes imposed (`RiskCore.venue_outcome`): REDUCING while an order's
    outcome is unresolved, HALTED when the venue refuses the pair or the account; `resume` lifts it."""
    venue_reason: str | None = None

    @property
    def state(self) -> TradingState:
        automatic: TradingState = "HALTED" if self.automatic else "ACTIVE"
        startup: TradingState = "ACTIVE" if self.reconciled else "HALTED"
        return strictest(self.operator, automatic, startup, self.venue)

    @property
    def reason(self) -> str | None:
        if not self.reconciled:
            return NOT_RECONCILED
        if self.venue != "ACTIVE":
            return self.venue_reason
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
    account_view: AccountView | None = None
    """The account's state when the last candle was decided."""
    automatic_figures: dict[str, str] = field(default_factory=dict)
    """What the automatic pause saw (silence, the candle of a failed gate), for its block."""
    kernel: PairKernel = field(init=False)
    announcer: Announcer = field(init=False)
    _opens: dict[int, Decimal] = field(default_factory=dict, repr=False)
    """The open of each candle decided since the last report (where the orders sent then fill)."""
    _sent: dict[int, tuple[Decimal, ...]] = field(default_factory=dict, repr=False)
    """The signed legs sent per decision sequence, until a report shows them filled."""
    resting: RestingEntry | None = None
    """The limit entry sent and still resting, as the paper venue steps it through each decided candle
    (`trading.resting`, the one limit fill model): the kernel waits while it rests."""
    resting_since: int = -1
    """The decision sequence that sent `resting`."""
    resting_full: Decimal | None = None
    """The position `resting` leaves when it fills in full (its decision's target quantity)."""
    _limit_fills: dict[int, Fill] = field(default_factory=dict, repr=False)
    """What the resting entry filled per decided candle, until a report covers that candle."""

    def __post_init__(self) -> None:
        self.kernel = PairKernel(
            self.context.pair,
            self.context.run_id,
            self.limits,
            self.rules,
            self.context.sizing,
            min_hold_bars=self.context.min_hold_bars,
        )
        self.announcer = Announcer()

    @property
    def guard(self) -> PairRiskGuard:
        return self.kernel.guard

    @property
    def held_target(self) -> float | None:
        """The target the position was last moved to: choosing it again trades nothing (as in training),
        so a position is not churned as equity moves."""
        return self.kernel.held_target

    @held_target.setter
    def held_target(self, value: float | None) -> None:
        self.kernel.held_target = value

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
        """The operator's resume: their pause ends, and so does one the venue's outcomes imposed (the
        operator has looked at what the alert named)."""

        def apply() -> None:
            self.pauses.operator, self.pauses.operator_reason = "ACTIVE", None
            self.pauses.venue, self.pauses.venue_reason = "ACTIVE", None

        return self._change(apply, "operator_resume", "operator")

    def operator(self, state: TradingState, reason: str | None) -> StateChange | None:
        """The operator's desired state, as the supervisor keeps it (after every restart): ACTIVE ends
        the operator's pause, REDUCING or HALTED pauses (with `reason`, or `operator_pause`). A pause the
        venue imposed stays: only an explicit `resume` lifts it."""
        if state == "ACTIVE":

            def apply() -> None:
                self.pauses.operator, self.pauses.operator_reason = "ACTIVE", None

            return self._change(apply, "operator_resume", "operator")
        return self.pause(reason or "operator_pause", reduce_only=state == "REDUCING")

    def venue_outcome(self, state: TradingState, reason: str) -> StateChange | None:
        """What the live venue's answers mean for the pair (REDUCING: an order's outcome left unresolved;
        HALTED: the venue refuses the pair or the account, or reconciliation failed). It only tightens:
        a REDUCING after a HALTED leaves the pair HALTED. ACTIVE (`reconciled`: book and venue agree)
        lifts only what reconciliation settles (an unresolved outcome, a failed reconciliation); the
        venue refusing the pair or the account waits for the operator's `resume`."""
        if state == "ACTIVE":
            if self.pauses.venue_reason not in RECONCILABLE:
                return None

            def lift() -> None:
                self.pauses.venue, self.pauses.venue_reason = "ACTIVE", None

            return self._change(lift, reason, "venue")
        if strictest(self.pauses.venue, state) == self.pauses.venue and self.pauses.venue != "ACTIVE":
            return None

        def apply() -> None:
            self.pauses.venue, self.pauses.venue_reason = state, reason

        return self._change(apply, reason, "venue")

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
        for sequence in [s for s in self._sent if s < report.last_sequence]:
            del self._sent[sequence]
        for sequence in [s for s in self._opens if s <= report.last_sequence]:
            del self._opens[sequence]
        for sequence in [s for s in self._limit_fills if s <= report.last_sequence]:
            del self._limit_fills[sequence]
        if self.resting is None or self.resting_since > report.last_sequence:
            return
        if report.resting == 0:
            # Execution's book holds no entry any more (it filled on the venue, the venue refused it
            # post-only, the operator cancelled it): nor do we. Short of a full fill, no target is held.
            if report.quantity != self.resting_full:
                self.kernel.expired()
            self.resting = None
        elif self.live:  # what is left of it on the venue, as execution last heard
            self.resting = replace(self.resting, remaining=abs(report.resting))

    @property
    def live(self) -> bool:
        """Orders fill on a live venue, by its word, not by the paper fill model."""
        return self.context.mode == "live"

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
        if pauses.venue != "ACTIVE":
            cause = pauses.venue_reason or "venue"
            allows = "only orders that reduce a position" if pauses.venue == "REDUCING" else "no new orders"
            detail = f"the venue's answer to an order holds the pair ({cause}): {allows}; `resume` lifts it"
            found.append(Block(cause, "pair", pauses.venue, "venue", detail))
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
        """The trading kernel's rule (`trading.kernel`) on the position as it stands once every order
        sent has filled, with the account guard asked about each leg the pair allows."""
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
        candle = market.candle
        self._opens[market.sequence] = Decimal(repr(candle.open))
        for sequence in sorted(self._opens)[:-KEPT_CANDLES]:
            del self._opens[sequence]
        self._step_resting(market.sequence, candle)
        book = self.book(market.sequence)
        # A limit entry only from an agent trained with them (run setup gives the context their model).
        entry = decision.entry if self.context.limit_rules is not None else "market"
        proposal = self.kernel.propose(
            decision.target,
            book,
            Decimal(repr(candle.close)),
            market.sequence,
            candle.open_time_ms,
            self.trading_state,
            entry,
        )
        accepted, denial = len(proposal.legs), None
        for index, leg in enumerate(proposal.legs):
            verdict = await self.account.check(market.pair, leg.notional_after, leg.reduces_only)
            if not verdict.allowed:
                accepted, denial = index, RiskOutcome(False, verdict.reason, dict(verdict.details or {}))
                break
        result = self.kernel.commit(proposal, accepted, denial)
        outcome = result.outcome
        if not outcome.allowed and outcome.reason in ("trading_halted", "reduce_only") and self.pauses.reason:
            outcome = RiskOutcome(False, outcome.reason, {**outcome.details, "why": self.pauses.reason})
        if result.cancels_resting:
            self.resting = None
        market_legs = tuple(o.signed_quantity for o in result.orders if o.limit_price is None)
        if market_legs:
            # Set, not added: a decision sent again (after a restart downstream) replaces its own orders.
            self.in_flight[market.sequence] = result.signed_quantity
            self._sent[market.sequence] = market_legs
        for order in result.orders:
            if order.limit_price is not None and self.context.limit_rules is not None:
                self.resting, self.resting_since = RestingEntry.of(order, self.context.limit_rules), market.sequence
                self.resting_full = result.target_quantity
        plan = OrderPlan(
            decision, result.target_quantity, result.orders, outcome, state, blocked_by, result.cancels_resting
        )
        return plan, change

    def _step_resting(self, sequence: int, candle: Candle) -> None:
        """The resting entry through the candle being decided, as the paper venue will step it."""
        rules = self.context.limit_rules
        if self.resting is None or rules is None or self.resting_since >= sequence:
            return
        if self.live:  # the venue fills it: it only ages here (execution cancels it there at its end)
            if self.resting.candles_left <= 1:
                self.resting = None
                self.kernel.expired()
            else:
                self.resting = replace(self.resting, candles_left=self.resting.candles_left - 1, rested=True)
            return
        values = (candle.open, candle.low, candle.high, candle.volume)
        open_price, low, high, volume = (Decimal(repr(value)) for value in values)
        step = step_candle(self.resting, open_price, low, high, volume, self.rules, rules)
        if step.fill is not None:
            self._limit_fills[sequence] = step.fill
        self.resting = step.resting
        if step.ended in ("rejected", "expired"):
            self.kernel.expired()

    def book(self, sequence: int) -> Book:
        """The position when the candle of `sequence` is decided: execution's last report, with every
        order sent since filled at the open of the first candle after it was sent, as the paper venue
        fills them (execution books those fills only when it records this candle's plan)."""
        report = self.position
        last = -1 if report is None else report.last_sequence
        working = Decimal(0) if report is None else report.working
        sent = self._sent.get(last, ())
        orders = [(last, q) for q in (sent if working and sum(sent, Decimal(0)) == working else (working,)) if q]
        orders += [(s, q) for s, legs in sorted(self._sent.items()) if last < s < sequence for q in legs]
        base = Book(pending=sum((q for _, q in orders), Decimal(0)))
        if report is not None:
            base = Book(
                report.quantity,
                report.entry_price,
                report.realised,
                report.fees,
                report.bars_held,
                base.pending,
                report.funding,
            )
        candles = sorted(s for s in self._opens if last < s <= sequence)
        fills: dict[int, list[tuple[Decimal, Decimal]]] = {s: [] for s in candles}
        for placed, quantity in orders:
            fill_at = next((s for s in candles if s > placed), None)
            if fill_at is not None:
                fills[fill_at].append((quantity, self._opens[fill_at]))
        limit_fills = [[self._limit_fills[s]] if s in self._limit_fills else [] for s in candles]
        book = project(base, (fills[s] for s in candles), self.rules, limit_fills)
        return replace(book, resting=Decimal(0) if self.resting is None else self.resting.signed)

    def _projected(self) -> Decimal:
        report = self.position
        base = Decimal(0) if report is None else report.quantity + report.working
        return base + sum(self.in_flight.values(), Decimal(0))

    # ---------------------------------------------------------------- checkpoint

    def to_json(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "operator": self.pauses.operator,
            "operator_reason": self.pauses.operator_reason,
            "automatic": self.pauses.automatic,
            "venue": self.pauses.venue,
            "venue_reason": self.pauses.venue_reason,
            "held_target": self.held_target,
            "resting": None if self.resting is None else self._resting_json(self.resting),
        }

    def _resting_json(self, resting: RestingEntry) -> dict[str, Any]:
        full = None if self.resting_full is None else str(self.resting_full)
        return {**resting_json(resting), "since": self.resting_since, "full": full}

    def restore(self, document: dict[str, Any]) -> None:
        """The operator's and the automatic pause survive a restart; reconciliation is done again."""
        if document.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"risk checkpoint version {document.get('version')!r} is not {CHECKPOINT_VERSION}")
        self.pauses = Pauses(
            document["operator"],
            document["operator_reason"],
            document["automatic"],
            False,
            document.get("venue", "ACTIVE"),  # checkpoints from before live trading have none
            document.get("venue_reason"),
        )
        self.held_target = document.get("held_target")
        resting = document.get("resting")  # checkpoints from before limit entries have none
        self.resting = None if resting is None else resting_from_json(resting)
        self.resting_since = -1 if resting is None else int(resting["since"])
        full = None if resting is None else resting.get("full")
        self.resting_full = None if full is None else Decimal(full)
        self.announcer = Announcer(b for b in self.blocks() if b.origin == "automatic")  # announced before

    def status(self) -> dict[str, Any]:
        return {
            "trading_state": self.trading_state,
            "reason": self.pauses.reason,
            "operator": self.pauses.operator,
            "automatic": self.pauses.automatic,
            "venue": self.pauses.venue,
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
