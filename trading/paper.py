"""Paper trading's order book for one pair, the paper venue of the trading kernel: working orders, the
net position, and the trade it belongs to. Pure (no I/O, no clock); the execution stage persists what
it reports. It fills with the shared fill model and bar count, as `trading.kernel.fill_candle` does for
the training environment (which needs no trades or order ids); the agreement test holds them equal.

Market orders fill at the open of the next final candle, as in the training environment, with the
shared fill model (`domain.fills`): slippage against the taker onto the tick grid, the taker fee, step
truncation. A post-only limit entry (an intent with a limit price, placed with the limit fill model it
was decided under) fills candle by candle after them, by the one limit fill model
(`domain.limit_orders`, stepped by `trading.resting` as the environment steps it): rejected at an open
it would take at, filled in full at an open that went through it, in the range by the volume share,
cancelled once it expires. A trade is one position's life: created with the order that
opens it (status `open`, no entry price until it fills), closed when the position returns to zero.
A decision that flips the position sends two orders, a reduce-only close and an opening order, so
every trade closes and opens cleanly.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

from domain.candles import Candle
from domain.fills import Fill, FillRules, Position, market_fill
from domain.funding import funding_payment
from domain.limit_orders import LimitRules
from domain.messages import ExitReason, OrderIntent, Side
from domain.orders import OrderState
from trading.kernel import bars_after_candle, bars_after_fill
from trading.protection import ProtectiveOrder
from trading.resting import RestingEntry, step_candle

TradeSide = Literal["long", "short"]
TradeOrigin = Literal["decision", "external"]
NOTHING_TO_REDUCE = "reduce_only_nothing_to_reduce"
POST_ONLY_WOULD_TAKE = "post_only_would_take"
"""A limit entry the open went through as it was placed: post-only refuses to take liquidity."""
LIMIT_EXPIRED = "limit_expired"
EXIT_CANCELS_ENTRY = "exit_cancels_entry"
SUPERSEDED = "superseded_by_new_orders"
CHECKPOINT_VERSION = 1


@dataclass
class WorkingOrder:
    execution_id: uuid.UUID
    client_order_id: str
    side: Side
    quantity: Decimal
    reduce_only: bool
    reason: ExitReason
    sequence: int
    trade_id: uuid.UUID
    state: OrderState = "intent"
    """As last recorded: the book fills an order whatever this says; execution records the steps."""
    filled: Decimal = Decimal(0)
    """What has filled so far (a live venue fills an order in parts; paper fills it at once)."""
    filled_value: Decimal = Decimal(0)
    """The sum of quantity times price over its fills."""
    fees_paid: Decimal = Decimal(0)
    limit_price: Decimal | None = None
    """A post-only limit entry's price; None: a market order."""
    limit_rules: LimitRules | None = None
    """A limit entry's fill model, its `expiry_bars` what is left of its life (candles)."""
    rested: bool = False
    """A limit entry on the book since an earlier candle's open."""

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled

    @property
    def signed_quantity(self) -> Decimal:
        """What is still to fill, signed."""
        return self.remaining if self.side == "BUY" else -self.remaining

    @property
    def average_price(self) -> Decimal | None:
        return self.filled_value / self.filled if self.filled else None


@dataclass
class Trade:
    id: uuid.UUID
    side: TradeSide
    quantity: Decimal
    """The position's size (before the first fill: the opening order's quantity)."""
    opened_at_ms: int
    entry_price: Decimal | None = None
    fees: Decimal = Decimal(0)
    realised: Decimal = Decimal(0)
    """PnL of the closing fills, before fees."""
    exit_quantity: Decimal = Decimal(0)
    exit_value: Decimal = Decimal(0)
    status: Literal["open", "closing", "closed", "cancelled"] = "open"
    close_reason: str | None = None
    origin: TradeOrigin = "decision"
    """`external`: a venue position reconciliation adopted (no order of ours opened it)."""
    funding: Decimal = Decimal(0)
    """Funding its position paid while open (negative: received)."""

    @property
    def exit_price(self) -> Decimal | None:
        return self.exit_value / self.exit_quantity if self.exit_quantity else None

    @property
    def net_pnl(self) -> Decimal:
        return self.realised - self.fees - self.funding


@dataclass(frozen=True)
class FundingDue:
    """A funding time the position was held through, waiting for the venue's rate: the quantity held
    through the candle holding it, that candle's close, and the trade it belongs to."""

    time_ms: int
    quantity: Decimal
    mark: Decimal
    trade_id: uuid.UUID

    def to_json(self) -> dict[str, Any]:
        return {"time_ms": self.time_ms, "quantity": str(self.quantity), "mark": str(self.mark),
                "trade_id": str(self.trade_id)}  # fmt: skip

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> FundingDue:
        return cls(int(item["time_ms"]), Decimal(item["quantity"]), Decimal(item["mark"]), uuid.UUID(item["trade_id"]))


@dataclass(frozen=True)
class FundingPaid:
    """A funding time paid: what was due, the venue's rate, the payment (negative: received), and the
    trade it was booked on (None: the trade had left the book, closed before the rate was known)."""

    due: FundingDue
    rate: Decimal
    payment: Decimal
    trade: Trade | None


@dataclass(frozen=True)
class OrderFilled:
    order: WorkingOrder
    fill: Fill
    realised: Decimal
    trade: Trade


@dataclass(frozen=True)
class OrderCancelled:
    order: WorkingOrder
    reason: str
    trade: Trade


BookEvent = OrderFilled | OrderCancelled


@dataclass
class PaperBook:
    pair: str
    rules: FillRules
    position: Position = field(default_factory=Position)
    working: dict[str, WorkingOrder] = field(default_factory=dict)
    trade: Trade | None = None
    """The trade the position (or its opening order) belongs to."""
    next_trade: Trade | None = None
    """The trade an opening order placed while the current one is closing will start (a flip)."""
    bars_held: int = 0
    last_open_ms: int | None = None
    """The newest candle the book has seen (fills happen once per candle)."""
    protection: dict[str, ProtectiveOrder] = field(default_factory=dict)
    """A live venue's protective orders (`trading.protection`), by our client order id; never filled by
    the book, and not working orders: the venue triggers them."""
    protections_placed: int = 0
    """How many protective orders the book has planned: the next one's id derives from it."""
    funding_due: list[FundingDue] = field(default_factory=list)
    """Funding times held through whose rate is not known yet, oldest first."""

    @property
    def working_quantity(self) -> Decimal:
        """What working market orders are still to fill, signed (limit entries: `resting_quantity`)."""
        return sum((o.signed_quantity for o in self.working.values() if o.limit_price is None), Decimal(0))

    @property
    def resting_quantity(self) -> Decimal:
        """What resting limit entries are still to fill, signed."""
        return sum((o.signed_quantity for o in self.working.values() if o.limit_price is not None), Decimal(0))

    def resting_entries(self) -> list[WorkingOrder]:
        return [order for order in self.working.values() if order.limit_price is not None]

    def place(
        self, intent: OrderIntent, sequence: int, now_ms: int, limits: LimitRules | None = None
    ) -> tuple[WorkingOrder, Trade, bool]:
        """Accept an order; returns it, its trade, and whether that trade is new. Raises ValueError for
        a reduce-only order with nothing to reduce (the risk guard never plans one), and for a limit
        entry without `limits` (the fill model it was decided under)."""
        if intent.limit_price is not None and limits is None:
            raise ValueError(f"order {intent.client_order_id} is a limit entry, but no limit fill model was given")
        if intent.client_order_id in self.working:
            raise ValueError(f"order {intent.client_order_id} is already working")
        created = False
        if intent.reduce_only:
            if self.trade is None or self.position.quantity == 0:
                raise ValueError(NOTHING_TO_REDUCE)
            trade = self.trade
            if abs(self.position.quantity + self._working_reduction() + intent.signed_quantity) == 0:
                trade.status = "closing"
        else:
            side: TradeSide = "long" if intent.side == "BUY" else "short"
            current = self.trade
            if current is not None and current.side == side and current.status != "closing":
                trade = current
            elif current is None:
                trade = self.trade = Trade(uuid.uuid4(), side, intent.quantity, now_ms)
                created = True
            elif current.status == "closing" and self.next_trade is None:
                trade = self.next_trade = Trade(uuid.uuid4(), side, intent.quantity, now_ms)
                created = True
            else:
                raise ValueError(f"an order opening {side} while a {current.side} trade is {current.status}")
        order = WorkingOrder(
            uuid.uuid4(),
            intent.client_order_id,
            intent.side,
            intent.quantity,
            intent.reduce_only,
            intent.reason,
            sequence,
            trade.id,
            limit_price=intent.limit_price,
            limit_rules=limits if intent.limit_price is not None else None,
        )
        self.working[order.client_order_id] = order
        return order, trade, created

    def on_candle(self, candle: Candle) -> list[BookEvent]:
        """A final candle: every working market order fills at its open (a reduce-only one only as far
        as the position reaches), then each limit entry takes its step of the candle, then the bars-held
        count moves on. A candle seen before does nothing."""
        if self.last_open_ms is not None and candle.open_time_ms <= self.last_open_ms:
            return []
        price = Decimal(repr(candle.open))
        events = self._fill_market(price, candle.open_time_ms)
        for order in [o for o in self.working.values() if o.limit_price is not None]:
            events.extend(self._step_limit(order, price, candle))
        self.bars_held = bars_after_candle(self.position.quantity, self.bars_held)
        return events

    def on_open(self, open_ms: int, price: Decimal) -> list[BookEvent]:
        """`on_candle` for a final candle that opened at `open_ms` at `price`, when only market orders work."""
        if self.last_open_ms is not None and open_ms <= self.last_open_ms:
            return []
        events = self._fill_market(price, open_ms)
        self.bars_held = bars_after_candle(self.position.quantity, self.bars_held)
        return events

    def _step_limit(self, order: WorkingOrder, price: Decimal, candle: Candle) -> list[BookEvent]:
        """One candle of a limit entry (`trading.resting.step_candle`, as the environment steps it)."""
        assert order.limit_price is not None
        assert order.limit_rules is not None
        entry = RestingEntry(
            order.client_order_id,
            order.side,
            order.limit_price,
            order.remaining,
            order.limit_rules.expiry_bars,
            order.rested,
        )
        high, low, volume = (Decimal(repr(value)) for value in (candle.high, candle.low, candle.volume))
        step = step_candle(entry, price, low, high, volume, self.rules, order.limit_rules)
        events: list[BookEvent] = []
        if step.fill is not None:
            if step.fill.quantity == order.remaining:
                del self.working[order.client_order_id]
            events.append(self._filled(order, step.fill, candle.open_time_ms))
        if step.ended in ("rejected", "expired"):
            del self.working[order.client_order_id]
            events.append(self._cancelled(order, POST_ONLY_WOULD_TAKE if step.ended == "rejected" else LIMIT_EXPIRED))
        elif step.resting is not None:
            order.rested = True
            order.limit_rules = replace(order.limit_rules, expiry_bars=step.resting.candles_left)
        return events

    def _fill_market(self, price: Decimal, open_ms: int) -> list[BookEvent]:
        self.last_open_ms = open_ms
        events: list[BookEvent] = []
        for key in [k for k, o in self.working.items() if o.limit_price is None]:
            order = self.working.pop(key)
            quantity = order.remaining
            if order.reduce_only:
                reducible = abs(self.position.quantity) if _reduces(self.position.quantity, order.side) else Decimal(0)
                quantity = min(quantity, reducible)
                if quantity == 0:
                    events.append(self._cancelled(order, NOTHING_TO_REDUCE))
                    continue
            fill = market_fill(order.side, quantity, price, self.rules)
            events.append(self._filled(order, fill, open_ms))
        return events

    def pass_candle(self, open_ms: int) -> None:
        """A final candle on a live venue, where nothing fills from candles: the bars-held count moves
        on, and each limit entry placed before it has one candle less to live (once per candle; one in
        its last candle stays at 1: `expiring` names it, for the venue to cancel)."""
        if self.last_open_ms is not None and open_ms <= self.last_open_ms:
            return
        self.last_open_ms = open_ms
        self.bars_held = bars_after_candle(self.position.quantity, self.bars_held)
        for order in self.resting_entries():
            assert order.limit_rules is not None
            order.rested = True
            if order.limit_rules.expiry_bars > 1:
                order.limit_rules = replace(order.limit_rules, expiry_bars=order.limit_rules.expiry_bars - 1)

    def expiring(self, open_ms: int, sequence: int) -> list[WorkingOrder]:
        """On a live venue, the limit entries whose life ends with the final candle that opened at
        `open_ms` (decided as `sequence`): placed before it, in their last candle. The limit fill model
        cancels them at that candle's close (`LIMIT_EXPIRED`); a venue holds them until asked."""
        if self.last_open_ms is not None and open_ms <= self.last_open_ms:
            return []  # decided before
        return [
            order
            for order in self.resting_entries()
            if order.sequence < sequence and order.limit_rules is not None and order.limit_rules.expiry_bars <= 1
        ]

    def relink(self, client_order_id: str, at_ms: int) -> None:
        """A live venue's news of a working order whose trade has ended meanwhile (its fills and the
        position's arrive in the venue's order, not the plan's): the order belongs to the trade the position
        is in now, or opens one. Positions and fills stay exact; only the trade it is counted in moves."""
        order = self.working[client_order_id]
        following = self.next_trade is not None and order.trade_id == self.next_trade.id
        if following and self.trade is not None and self.position.quantity != 0:
            # A flip's opening leg filled before its closing leg was heard of: it trades against the
            # position held now (the closing leg's fill, heard later, then opens the next trade).
            order.trade_id = self.trade.id
            return
        if any(t is not None and t.id == order.trade_id for t in (self.trade, self.next_trade)):
            return
        if self.trade is None:
            side: TradeSide = "long" if order.side == "BUY" else "short"
            self.trade = Trade(uuid.uuid4(), side, order.remaining, at_ms)
        order.trade_id = self.trade.id

    def venue_fill(self, client_order_id: str, fill: Fill, at_ms: int) -> OrderFilled:
        """A fill a live venue reported for a working order (in part or in full): applied to the position
        and the order's trade; the order leaves the book once all of it has filled. KeyError for an order
        that is not working; ValueError for a fill beyond the order's quantity or on the wrong side."""
        order = self.working[client_order_id]
        if fill.side != order.side or not 0 < fill.quantity <= order.remaining:
            raise ValueError(
                f"a fill of {fill.side} {fill.quantity} does not fit order {client_order_id} "
                f"({order.side}, {order.remaining} to fill)"
            )
        if order.remaining == fill.quantity:
            del self.working[client_order_id]
        return self._filled(order, fill, at_ms)

    def cancel(self, client_order_id: str, reason: str) -> OrderCancelled:
        order = self.working.pop(client_order_id, None)
        if order is None:
            raise KeyError(client_order_id)
        return self._cancelled(order, reason)

    def cancel_trade(self, trade_id: uuid.UUID, reason: str) -> list[OrderCancelled]:
        """Cancel the working orders of a trade (`trade_orders`)."""
        return [self.cancel(order.client_order_id, reason) for order in self.trade_orders(trade_id)]

    def trade_orders(self, trade_id: uuid.UUID) -> list[WorkingOrder]:
        """The working orders cancelling a trade cancels, in the order to cancel them. The closing order
        of a flip takes the opening order with it: alone, it would sell into the position it was meant
        to follow. The opening leg goes first, so the closing trade's state is restored last."""
        doomed = {trade_id}
        if self.trade is not None and self.trade.id == trade_id and self.next_trade is not None:
            doomed.add(self.next_trade.id)
        orders = sorted((o for o in self.working.values() if o.trade_id in doomed), key=lambda o: not o.reduce_only)
        return list(reversed(orders))

    def adopt(self, quantity: Decimal, entry_price: Decimal, at_ms: int, trade_id: uuid.UUID) -> Trade:
        """Take over a position the venue holds and the book did not know (reconciliation's adopt): an
        external trade at the venue's entry price, managed from then on like any other. ValueError when
        the book holds a position or a trade already."""
        if self.position.quantity != 0 or self.trade is not None or self.working:
            raise ValueError(f"{self.pair}: the book holds a position or orders already: nothing to adopt into")
        side: TradeSide = "long" if quantity > 0 else "short"
        self.position = Position(quantity, entry_price)
        self.trade = Trade(trade_id, side, abs(quantity), at_ms, entry_price, origin="external")
        self.bars_held = 0
        return self.trade

    def unrealised(self, mark: Decimal) -> Decimal:
        return self.position.unrealised(mark)

    # ---------------------------------------------------------------- funding

    def owe_funding(self, time_ms: int, mark: Decimal) -> None:
        """The position held through the candle holding funding time `time_ms` (after the fills at its
        open and in its range), marked at its close, owes that time's funding; nothing when flat."""
        if self.position.quantity == 0 or self.trade is None:
            return
        if any(due.time_ms == time_ms for due in self.funding_due):
            return
        self.funding_due.append(FundingDue(time_ms, self.position.quantity, mark, self.trade.id))

    def pay_funding(self, rates: dict[int, Decimal]) -> list[FundingPaid]:
        """Pay each due funding time whose rate `rates` holds: `quantity x mark x rate` (a long pays a
        positive rate), on the account and on its trade while the book still holds it."""
        paid: list[FundingPaid] = []
        for due in [d for d in self.funding_due if d.time_ms in rates]:
            rate = rates[due.time_ms]
            payment = funding_payment(due.quantity, due.mark, float(rate))
            self.position.funding += payment
            trade = next((t for t in (self.trade, self.next_trade) if t is not None and t.id == due.trade_id), None)
            if trade is not None:
                trade.funding += payment
            paid.append(FundingPaid(due, rate, payment, trade))
            self.funding_due.remove(due)
        return paid

    # ---------------------------------------------------------------- bookkeeping

    def _trade_of(self, order: WorkingOrder) -> Trade:
        for trade in (self.trade, self.next_trade):
            if trade is not None and trade.id == order.trade_id:
                return trade
        raise AssertionError(f"order {order.client_order_id} belongs to no open trade")

    def _filled(self, order: WorkingOrder, fill: Fill, open_ms: int) -> OrderFilled:
        trade = self._trade_of(order)
        if trade is self.next_trade:  # the closing leg of a flip did not close: the book stays sane
            raise AssertionError("an opening order filled before the trade it follows closed")
        order.filled += fill.quantity
        order.filled_value += fill.quantity * fill.price
        order.fees_paid += fill.fee
        before = self.position.quantity
        realised = self.position.apply(fill)
        after = self.position.quantity
        self.bars_held = bars_after_fill(before, after, self.bars_held)
        trade.fees += fill.fee
        if abs(after) < abs(before) or (before != 0 and after != 0 and (after > 0) != (before > 0)):
            closed = min(abs(before), fill.quantity)
            trade.realised += realised
            trade.exit_quantity += closed
            trade.exit_value += closed * fill.price
        if after == 0:
            trade.status = "closed"
            trade.close_reason = order.reason
            trade.quantity = max(trade.quantity, abs(before))
            self.trade, self.next_trade = self.next_trade, None
        else:
            trade.quantity = abs(after)
            trade.entry_price = self.position.entry_price
        return OrderFilled(order, fill, realised, trade)

    def _cancelled(self, order: WorkingOrder, reason: str) -> OrderCancelled:
        trade = self._trade_of(order)
        orphaned = not any(o.trade_id == trade.id for o in self.working.values())
        if trade is self.next_trade:
            if orphaned:
                trade.status, trade.close_reason = "cancelled", reason
                self.next_trade = None
        elif self.position.quantity == 0 and orphaned:
            trade.status, trade.close_reason = "cancelled", reason
            self.trade, self.next_trade = self.next_trade, None
        elif trade.status == "closing" and order.reduce_only:
            trade.status = "open"
        return OrderCancelled(order, reason, trade)

    def _working_reduction(self) -> Decimal:
        return sum((o.signed_quantity for o in self.working.values() if o.reduce_only), Decimal(0))

    # ---------------------------------------------------------------- checkpoint

    def to_json(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "position": {k: str(v) for k, v in asdict(self.position).items()},
            "working": [_order_json(order) for order in self.working.values()],
            "trade": None if self.trade is None else _trade_json(self.trade),
            "next_trade": None if self.next_trade is None else _trade_json(self.next_trade),
            "bars_held": self.bars_held,
            "last_open_ms": self.last_open_ms,
            "protection": [order.to_json() for order in self.protection.values()],
            "protections_placed": self.protections_placed,
            "funding_due": [due.to_json() for due in self.funding_due],
        }

    @classmethod
    def from_json(cls, pair: str, rules: FillRules, document: dict[str, Any]) -> PaperBook:
        if document.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"paper book checkpoint version {document.get('version')!r} is not {CHECKPOINT_VERSION}")
        position = Position(**{k: Decimal(v) for k, v in document["position"].items()})
        working = [_order_from_json(item) for item in document["working"]]
        trade = None if document["trade"] is None else _trade_from_json(document["trade"])
        following = None if document["next_trade"] is None else _trade_from_json(document["next_trade"])
        return cls(
            pair,
            rules,
            position,
            {order.client_order_id: order for order in working},
            trade,
            following,
            int(document["bars_held"]),
            document["last_open_ms"],
            # Checkpoints from before live trading have no protection.
            {item["client_order_id"]: ProtectiveOrder.from_json(item) for item in document.get("protection", [])},
            int(document.get("protections_placed", 0)),
            # Checkpoints from before runs paid funding owe none.
            [FundingDue.from_json(item) for item in document.get("funding_due", [])],
        )


def _reduces(position: Decimal, side: Side) -> bool:
    return (position > 0 and side == "SELL") or (position < 0 and side == "BUY")


def _order_json(order: WorkingOrder) -> dict[str, Any]:
    return {
        "execution_id": str(order.execution_id),
        "client_order_id": order.client_order_id,
        "side": order.side,
        "quantity": str(order.quantity),
        "reduce_only": order.reduce_only,
        "reason": order.reason,
        "sequence": order.sequence,
        "trade_id": str(order.trade_id),
        "state": order.state,
        "filled": str(order.filled),
        "filled_value": str(order.filled_value),
        "fees_paid": str(order.fees_paid),
        **_limit_json(order),
    }


def _limit_json(order: WorkingOrder) -> dict[str, Any]:
    if order.limit_price is None or order.limit_rules is None:
        return {}
    rules = order.limit_rules
    share = None if rules.volume_share is None else str(rules.volume_share)
    limit = {"trigger": rules.trigger, "candles_left": rules.expiry_bars, "volume_share": share}
    return {"limit_price": str(order.limit_price), "limit": limit, "rested": order.rested}


def _limit_from_json(item: dict[str, Any]) -> LimitRules | None:
    limit = item.get("limit")  # market orders, and checkpoints from before limit entries, have none
    if limit is None:
        return None
    share = limit["volume_share"]
    return LimitRules(limit["trigger"], int(limit["candles_left"]), None if share is None else Decimal(share))


def _order_from_json(item: dict[str, Any]) -> WorkingOrder:
    return WorkingOrder(
        uuid.UUID(item["execution_id"]),
        item["client_order_id"],
        item["side"],
        Decimal(item["quantity"]),
        bool(item["reduce_only"]),
        item["reason"],
        int(item["sequence"]),
        uuid.UUID(item["trade_id"]),
        item["state"],
        Decimal(item.get("filled", "0")),  # checkpoints from before partial fills have none
        Decimal(item.get("filled_value", "0")),
        Decimal(item.get("fees_paid", "0")),
        None if item.get("limit_price") is None else Decimal(item["limit_price"]),
        _limit_from_json(item),
        bool(item.get("rested", False)),
    )


def _trade_json(trade: Trade) -> dict[str, Any]:
    return {
        "id": str(trade.id),
        "side": trade.side,
        "quantity": str(trade.quantity),
        "opened_at_ms": trade.opened_at_ms,
        "entry_price": None if trade.entry_price is None else str(trade.entry_price),
        "fees": str(trade.fees),
        "realised": str(trade.realised),
        "exit_quantity": str(trade.exit_quantity),
        "exit_value": str(trade.exit_value),
        "status": trade.status,
        "close_reason": trade.close_reason,
        "origin": trade.origin,
        "funding": str(trade.funding),
    }


def _trade_from_json(item: dict[str, Any]) -> Trade:
    return Trade(
        uuid.UUID(item["id"]),
        item["side"],
        Decimal(item["quantity"]),
        int(item["opened_at_ms"]),
        None if item["entry_price"] is None else Decimal(item["entry_price"]),
        Decimal(item["fees"]),
        Decimal(item["realised"]),
        Decimal(item["exit_quantity"]),
        Decimal(item["exit_value"]),
        item["status"],
        item["close_reason"],
        item.get("origin", "decision"),  # checkpoints from before adoption have none
        Decimal(item.get("funding", "0")),  # nor from before runs paid funding
    )
