"""The one trading rule, for one pair, per final candle.

A decision is taken at the decision candle's close, on the position as it stands after every order
sent before it has filled (paper fills them at the open of the candle after they were sent, so by the
decision candle's open). In order:

1. **Target**: the policy's signed fraction of the maximum position, or HOLD (None: keep the position).
2. **Exits**: an open position beyond its stop-loss or take-profit distance from its entry price, at the
   decision close, is closed whatever the policy says (the limit set's `stop_loss_pct`/`take_profit_pct`).
3. **Held target**: the target the position was last moved to, chosen again, trades nothing, so a held
   position is not churned as equity moves (after a limit entry ended without filling in full, nothing
   is held: the next target sizes again, `expired`). While a limit entry rests the policy waits; an exit
   due cancels the entry and closes at market. **Minimum holding**: an open position held fewer than
   `min_hold_bars` candles keeps its target whatever the policy says (hysteresis against flipping between
   near-ties); the exits of step 2 still close it.
4. **Sizing**: the target times the maximum notional (`max_exposure` of the equity at the decision
   close: initial equity plus realised PnL after fees plus unrealised PnL), divided by the decision close,
   truncated to the step. The order is the difference to the position plus what is still to fill.
5. **Legs**: a move through zero is a reduce-only close (leg 0), then the opening order (leg 1). Legs
   are market orders; with `entry = "limit"` the leg that opens or grows the position is a post-only
   limit at the touch of the decision close (`domain.limit_orders`); exits are always at market.
6. **Pair checks** (`limits.PairRiskGuard`): trading state, allowed instruments, orders per interval,
   order and position notional, leverage; an order that only reduces passes the size limits. A denial
   stops the plan there; a close already allowed is still sent. A leg below the venue's minimums (other
   than a full close) ends the plan too, silently.
7. **Account**: the cross-pair account guard is not the kernel's (it is asynchronous and shared by the
   pairs). `propose` returns the legs the pair allows; the caller asks the account about them in order
   and `commit`s the accepted prefix. The environment and the backtest have one pair: everything passes.

The position-state features an agent sees (`features.state`) are computed here too (`observation`),
from the same position and equity the rule sizes with.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from domain.fills import Fill, FillRules, Position, Side, below_minimum, exit_fill, market_fill, truncate_quantity
from domain.funding import funding_payment
from domain.limit_orders import EntryKind, touch_price
from domain.messages import ExitReason, OrderIntent, RiskOutcome
from domain.orders import client_order_id
from domain.trading_state import TradingState
from features.state import state_features
from trading.limits import STOP_LOSS, TAKE_PROFIT, OrderCheck, PairRiskGuard, RiskLimits

LEGS_PER_DECISION = 4
"""Client order ids are numbered `sequence * 4 + leg`: legs 0 and 1 for a decision's orders."""
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Sizing:
    """What a full target (1.0) is: `max_exposure` times the pair's equity."""

    initial_equity: Decimal
    max_exposure: Decimal

    def equity(self, book: Book, mark: Decimal) -> Decimal:
        """Initial equity plus the pair's realised PnL after fees and funding and its unrealised PnL at `mark`."""
        unrealised = (mark - book.entry_price) * book.quantity if book.quantity else ZERO
        return self.initial_equity + book.realised - book.fees - book.funding + unrealised

    def exit_equity(self, book: Book, mark: Decimal, rules: FillRules) -> Decimal:
        """The equity once the position is closed by a market order at `mark` (its slippage and taker
        fee): what the end of an episode or a backtest is worth, rather than a free exit at the mark."""
        if not book.quantity:
            return self.equity(book, mark)
        closing = exit_fill(book.quantity, mark, rules)
        return self.equity(book, closing.price) - closing.fee

    def max_notional(self, equity: Decimal) -> Decimal:
        return (equity if equity > 0 else ZERO) * self.max_exposure


@dataclass(slots=True)
class Book:
    """The pair's position when a decision is taken (every order sent before it has filled). A value:
    nothing changes it once made (not frozen only because a frozen dataclass is slow to build, and the
    backtest builds one per bar)."""

    quantity: Decimal = ZERO
    entry_price: Decimal = ZERO
    realised: Decimal = ZERO
    """Realised PnL before fees."""
    fees: Decimal = ZERO
    bars_held: int = 0
    pending: Decimal = ZERO
    """Signed quantity of orders sent that have not filled yet (a venue that fills later than paper)."""
    funding: Decimal = ZERO
    """Funding paid (negative: received), `domain.funding`: charged in training, backtests and runs."""
    resting: Decimal = ZERO
    """Signed quantity still to fill of a resting limit entry (`domain.limit_orders`): while it rests the
    pair's decisions wait, exits excepted (they cancel it)."""

    @classmethod
    def of(
        cls,
        position: Position,
        bars_held: int,
        pending: Decimal = ZERO,
        funding: Decimal | None = None,
        resting: Decimal = ZERO,
    ) -> Book:
        """`funding`: the position's own (`Position.funding`) unless given."""
        return cls(
            position.quantity,
            position.entry_price,
            position.realised,
            position.fees,
            bars_held,
            pending,
            position.funding if funding is None else funding,
            resting,
        )

    @property
    def projected(self) -> Decimal:
        return self.quantity + self.pending


def bars_after_fill(before: Decimal, after: Decimal, bars_held: int) -> int:
    """A fill that opens a position from flat or closes it restarts the count of bars held."""
    return 0 if before == 0 or after == 0 else bars_held


def bars_after_candle(quantity: Decimal, bars_held: int) -> int:
    """A candle's fills are done: a position still open has been held one more bar."""
    return bars_held + 1 if quantity != 0 else bars_held


def project(
    book: Book,
    candles: Iterable[Iterable[tuple[Decimal, Decimal]]],
    rules: FillRules,
    limit_fills: Iterable[Iterable[Fill]] | None = None,
) -> Book:
    """`book` after more candles, each given as the orders that fill at its open ((signed quantity,
    open price), in the order they fill), at market, as paper fills them, then a resting limit entry's
    fills in it (`limit_fills`, one list per candle); a filled order leaves `pending`. For a caller that
    knows the position only as it was before those candles (the live risk guard between execution's
    reports)."""
    limits = iter(limit_fills) if limit_fills is not None else None
    for orders in candles:
        book, _ = fill_candle(book, orders, rules, next(limits, ()) if limits is not None else ())
    return book


def fill_candle(
    book: Book,
    orders: Iterable[tuple[Decimal, Decimal]],
    rules: FillRules,
    limit_fills: Iterable[Fill] = (),
) -> tuple[Book, list[Fill]]:
    """`book` after one candle whose open fills `orders` ((signed quantity, price), in order) at market,
    as paper fills them, then `limit_fills` (a resting limit entry's, `trading.resting`), and the fills;
    a filled market order leaves `pending`."""
    position = Position(book.quantity, book.entry_price, book.realised, book.fees)
    bars = book.bars_held
    pending = book.pending
    fills: list[Fill] = []
    for quantity, price in orders:
        if quantity == 0:
            continue
        before = position.quantity
        fill = market_fill("BUY" if quantity > 0 else "SELL", abs(quantity), price, rules)
        position.apply(fill)
        fills.append(fill)
        bars = bars_after_fill(before, position.quantity, bars)
        pending -= quantity
    for fill in limit_fills:
        before = position.quantity
        position.apply(fill)
        fills.append(fill)
        bars = bars_after_fill(before, position.quantity, bars)
    bars = bars_after_candle(position.quantity, bars)
    after = Book(
        position.quantity,
        position.entry_price,
        position.realised,
        position.fees,
        bars,
        pending,
        book.funding,
        book.resting,
    )
    return after, fills


def pay_funding(book: Book, close: Decimal, rate: float) -> Book:
    """`book` once the position held through a candle paid its funding at the candle's close (`rate`: the
    candle's, 0 when no funding time falls within it)."""
    payment = funding_payment(book.quantity, close, rate)
    return replace(book, funding=book.funding + payment) if payment else book


def observation(book: Book, mark: Decimal, sizing: Sizing, equity: Decimal | None = None) -> npt.NDArray[np.float64]:
    """The position-state features of `book` at `mark` (what orders are still to fill count as filled);
    `equity`: `sizing.equity(book, mark)`, when the caller has it already."""
    if equity is None:
        equity = sizing.equity(book, mark)
    quantity = book.quantity
    unrealised = float((mark - book.entry_price) * quantity) if quantity else 0.0
    projected = float(quantity + book.pending) if book.pending else float(quantity)
    return state_features(
        projected, unrealised, float(equity), float(sizing.max_notional(equity)), float(mark), book.bars_held
    )


@dataclass(frozen=True, slots=True)
class Leg:
    intent: OrderIntent
    signed: Decimal
    after: Decimal
    """The pair's projected signed position once this leg (and those before it) fill."""
    notional_after: Decimal
    """`after` times the decision close: what the account guard is asked about."""
    reduces_only: bool


@dataclass(frozen=True, slots=True)
class Proposal:
    """The legs the pair allows, for the caller to put to the account guard in order."""

    target: float | None
    target_quantity: Decimal | None
    """None: HOLD (the position is kept)."""
    reason: ExitReason
    legs: tuple[Leg, ...]
    pair_outcome: RiskOutcome
    """The pair's denial that ended the legs, or allowed."""
    interval_start_ms: int
    trades: bool
    """False for HOLD and for the held target: nothing was sized."""
    cancels_resting: bool = False
    """An exit while a limit entry rests: it is cancelled before the exit's orders are sent."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What the kernel made of a decision: the target quantity, the orders to place, and the verdict."""

    target_quantity: Decimal | None
    orders: tuple[OrderIntent, ...]
    outcome: RiskOutcome
    reason: ExitReason
    cancels_resting: bool = False
    """The resting limit entry is cancelled first (an exit is due)."""

    @property
    def signed_quantity(self) -> Decimal:
        """What the decision's market orders add to the position (a limit entry rests: not counted)."""
        return sum((order.signed_quantity for order in self.orders if order.limit_price is None), ZERO)


ALLOWED = RiskOutcome(True)
HOLD = Decision(None, (), ALLOWED, "target")


@dataclass
class PairKernel:
    pair: str
    run_id: str
    limits: RiskLimits
    rules: FillRules
    sizing: Sizing
    held_target: float | None = None
    """The target the position was last moved to (0.0 after an exit)."""
    min_hold_bars: int = 0
    """An open position is held at least this many candles before the policy may move it (exits excepted)."""
    guard: PairRiskGuard = field(init=False)

    def __post_init__(self) -> None:
        self.guard = PairRiskGuard(self.pair, self.limits)

    def propose(
        self,
        target: float | None,
        book: Book,
        close: Decimal,
        sequence: int,
        interval_start_ms: int,
        state: TradingState = "ACTIVE",
        entry: EntryKind = "market",
    ) -> Proposal:
        """Steps 1-6 for a decision at `close` (the decision candle's, whose interval starts at
        `interval_start_ms`; `sequence` numbers its client order ids). `entry`: how the leg that opens or
        grows the position is sent (a `limit` rests at the touch of `close`)."""
        reason = self._exit(book, close)
        equity = self.sizing.equity(book, close)
        if reason != "target":
            quantity = ZERO
        elif target is None or self._holding(book):
            return Proposal(target, None, reason, (), ALLOWED, interval_start_ms, False)
        else:
            quantity = self._size(target, equity, close)
            if target == self.held_target:
                return Proposal(target, quantity, reason, (), ALLOWED, interval_start_ms, False)
        projected = book.projected
        self.guard.state = state
        legs: list[Leg] = []
        outcome = ALLOWED
        position = projected
        for leg, signed, reduce_only in legs_of(projected, quantity - projected):
            after = position + signed
            if not (reduce_only and after == 0) and below_minimum(abs(signed), close, self.rules):
                break
            check = OrderCheck(self.pair, abs(signed), close, position, after, equity, interval_start_ms)
            verdict = self.guard.check(check, already=len(legs))
            if not verdict.allowed:
                outcome = RiskOutcome(False, verdict.reason, dict(verdict.details))
                break
            side: Side = "BUY" if signed > 0 else "SELL"
            limit = entry == "limit" and not reduce_only and reason == "target"
            intent = OrderIntent(
                client_order_id(self.run_id, self.pair, sequence * LEGS_PER_DECISION + leg),
                side,
                abs(signed),
                reduce_only,
                reason,
                leg,
                touch_price(side, close, self.rules) if limit else None,
            )
            legs.append(Leg(intent, signed, after, after * close, check.reduces_only))
            position = after
        return Proposal(
            target,
            quantity,
            reason,
            tuple(legs),
            outcome,
            interval_start_ms,
            True,
            cancels_resting=book.resting != 0,
        )

    def commit(self, proposal: Proposal, accepted: int | None = None, denial: RiskOutcome | None = None) -> Decision:
        """Step 7's end: the first `accepted` legs (all by default) are sent; `denial` is the account's
        verdict on the next one, if it denied it."""
        count = len(proposal.legs) if accepted is None else accepted
        legs = proposal.legs[:count]
        for _ in legs:
            self.guard.record_sent(proposal.interval_start_ms)
        if count < len(proposal.legs):
            outcome = denial if denial is not None else RiskOutcome(False, "account_denied")
        else:
            outcome = proposal.pair_outcome
        if proposal.trades and outcome.allowed:
            self.held_target = proposal.target if proposal.reason == "target" else 0.0
        return Decision(
            proposal.target_quantity,
            tuple(leg.intent for leg in legs),
            outcome,
            proposal.reason,
            proposal.cancels_resting,
        )

    def decide(
        self,
        target: float | None,
        book: Book,
        close: Decimal,
        sequence: int,
        interval_start_ms: int,
        state: TradingState = "ACTIVE",
        entry: EntryKind = "market",
    ) -> Decision:
        """The whole rule for a single pair whose account allows everything (training, backtests).
        When nothing trades (HOLD, or the held target again, with no exit due) it returns `HOLD` without
        sizing: the common case, kept cheap because the environment and the backtests decide every bar."""
        if (target is None or target == self.held_target or self._holding(book)) and self._exit(
            book, close
        ) == "target":
            return HOLD
        return self.commit(self.propose(target, book, close, sequence, interval_start_ms, state, entry))

    def expired(self) -> None:
        """A limit entry ended without filling in full (it expired, or post-only rejected it at an open it
        would have taken at): the position is not the held target's, so the next decision sizes again
        whatever target it asks for (HOLD still keeps the position as it is)."""
        self.held_target = None

    def _holding(self, book: Book) -> bool:
        """The position is open and younger than `min_hold_bars`, or a limit entry rests: the policy may
        not move it yet."""
        return book.resting != 0 or (book.quantity != 0 and book.bars_held < self.min_hold_bars)

    def _exit(self, book: Book, close: Decimal) -> ExitReason:
        """Why the position must move at `close` whatever the policy says, or "target" (it need not)."""
        if book.quantity != 0:
            exit_reason = self.guard.exit_reason(book.quantity, book.entry_price, close)
            if exit_reason == STOP_LOSS:
                return "stop_loss"
            if exit_reason == TAKE_PROFIT:
                return "take_profit"
        return "target"

    def _size(self, target: float, equity: Decimal, close: Decimal) -> Decimal:
        """The signed quantity of `target` (a fraction of the maximum position) at `close`."""
        fraction = Decimal(repr(target))
        quantity = truncate_quantity(abs(fraction) * self.sizing.max_notional(equity) / close, self.rules)
        return quantity if fraction > 0 else -quantity


def legs_of(position: Decimal, delta: Decimal) -> list[tuple[int, Decimal, bool]]:
    """The orders that move `position` by `delta`: (leg, signed quantity, reduce-only)."""
    if delta == 0:
        return []
    if position == 0 or (position > 0) == (delta > 0):
        return [(1, delta, False)]
    closing = min(abs(delta), abs(position))
    close = closing if delta > 0 else -closing
    rest = delta - close
    return [(0, close, True)] + ([(1, rest, False)] if rest != 0 else [])


def unlimited(name: str = "unlimited") -> RiskLimits:
    """A limit set that denies nothing and never exits (no `[risk]` settings given)."""
    big = Decimal("1e30")
    return RiskLimits(name, big, big, 1_000_000, big)
