"""The simulator's trading account: one-way position mode (positionSide BOTH), USDT margin.

Market orders fill at once at the last replayed price moved against the taker by `slippage_bps` and
rounded onto the tick grid against the taker too (so any slippage costs at least a tick), paying
the taker fee; limit orders rest until the replayed price crosses them and fill at their price, paying
the maker fee (with `limit_volume_share`, at most that share of each candle's volume: a big order on thin
candles fills partially, PARTIALLY_FILLED, over several). A limit that is marketable when it is placed (a
market order on its side at the last price, slippage included, would pay no more than it: the one rule of
`domain.limit_orders.opens_through`) takes liquidity: a `GTC` one fills at once as that market order
(taker), a `PostOnly` one is refused (101215) and not booked. Venue rules enforced with BingX's codes:
quantity truncated to the step size, minimum quantity and notional (101400), reduce-only that would open
or grow a position (101290), insufficient margin (101204), client order id 1-40 characters, lower-cased,
unique (101481).

Conditional orders (STOP_MARKET, TAKE_PROFIT_MARKET) rest until the replayed price reaches their
`stopPrice` (a stop sells when the price falls to it and buys when it rises to it; a take-profit the other
way round), then fill as a market order from the stop price. With `closePosition` they close the whole
position at that moment, and a reduce-only one is clipped to it; one with nothing left to reduce is
cancelled. Like the venue, they carry no client order id (ids are for LIMIT and MARKET only, API.md 7.1):
a client finds its stops by order id. They trigger on the replayed (last) price: the simulator has no
separate mark price.

Account settings as the venue keeps them (API.md 6.1, 6.9): leverage per symbol (one value for side
BOTH in one-way mode; 1 to the contract's maximum), margin type per symbol (CROSSED, ISOLATED,
SEPARATE_ISOLATED; changed only with no position and no open order on it), and the position mode (one-way;
hedge mode is not simulated, and asking for it is refused). Margin is checked per symbol at its leverage;
the margin type is recorded and reported, and margin is pooled across symbols whatever it says.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from domain.fills import Fill, FillRules, Position, Side, below_minimum, limit_fill, market_fill, truncate_quantity
from domain.limit_orders import opens_through

OrderType = Literal["MARKET", "LIMIT", "STOP_MARKET", "TAKE_PROFIT_MARKET"]
CONDITIONAL: tuple[OrderType, ...] = ("STOP_MARKET", "TAKE_PROFIT_MARKET")
MarginType = Literal["CROSSED", "ISOLATED", "SEPARATE_ISOLATED"]
MARGIN_TYPES: tuple[MarginType, ...] = ("CROSSED", "ISOLATED", "SEPARATE_ISOLATED")
Status = Literal["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELLED"]
TimeInForce = Literal["GTC", "PostOnly"]
"""What the simulator honours of API.md 6.2's `timeInForce` (IOC and FOK are refused, 109400)."""


class AccountError(Exception):
    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass
class SimOrder:
    order_id: int
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    price: Decimal | None
    reduce_only: bool
    time_ms: int
    status: Status = "NEW"
    stop_price: Decimal | None = None
    close_position: bool = False
    time_in_force: TimeInForce = "GTC"
    executed: Decimal = Decimal(0)
    last_realised: Decimal = Decimal(0)
    """The realised PnL of its latest fill (for the stream's `rp`)."""
    history: list[tuple[int, Status, Decimal, Decimal, Decimal]] = field(default_factory=list)
    """(wall ms, status, executed, cum_quote, commission) after each change: what a lagging read shows."""
    candle_fills: tuple[int, Decimal] = (0, Decimal(0))
    """(candle open time, quantity filled in it): a limit's share of a thin candle (`limit_volume_share`)."""
    cum_quote: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    update_ms: int = 0

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed if self.executed else Decimal(0)

    def as_of(self, wall_ms: int) -> SimOrder:
        """The order as it stood at `wall_ms` (its first state, if it was placed after): a lagging read."""
        past = [state for state in self.history if state[0] <= wall_ms] or self.history[:1]
        if not past or past[-1] == self.history[-1]:
            return self
        _, status, executed, cum_quote, commission = past[-1]
        return dataclasses.replace(self, status=status, executed=executed, cum_quote=cum_quote, commission=commission)


@dataclass
class SimAccount:
    rules: dict[str, FillRules]
    balance: Decimal = Decimal(10_000)
    leverage: Decimal = Decimal(5)
    """The leverage of a symbol never set (`set_leverage`)."""
    max_leverage: dict[str, int] = field(default_factory=dict)
    """The contract's maximum per symbol (none: 125)."""
    leverages: dict[str, int] = field(default_factory=dict)
    margin_types: dict[str, MarginType] = field(default_factory=dict)
    orders: dict[int, SimOrder] = field(default_factory=dict)
    by_client_id: dict[str, int] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    limit_volume_share: Decimal | None = None
    """A resting limit fills at most this share of a candle's volume (None: whatever it needs)."""
    on_change: Callable[[SimOrder, str, Fill | None], None] | None = None
    """Told of every order change: (order, "NEW" | "TRADE" | "CANCELED", the fill of a TRADE)."""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1_735_119_588_833_849_344))

    def place(
        self,
        symbol: str,
        side: Side,
        order_type: OrderType,
        quantity: Decimal,
        price: Decimal | None,
        client_order_id: str,
        reduce_only: bool,
        last_price: Decimal,
        now_ms: int,
        *,
        stop_price: Decimal | None = None,
        close_position: bool = False,
        time_in_force: TimeInForce = "GTC",
    ) -> SimOrder:
        rules = self.rules.get(symbol)
        if rules is None:
            raise AccountError(109425, f"symbol {symbol} does not exist")
        if order_type in CONDITIONAL:
            return self._place_conditional(
                symbol, side, order_type, quantity, stop_price, reduce_only, close_position, rules, now_ms
            )
        client_order_id = client_order_id.lower()
        if client_order_id and not 1 <= len(client_order_id) <= 40:
            raise AccountError(109400, "clientOrderId must be 1 to 40 characters")
        if client_order_id and client_order_id in self.by_client_id:
            raise AccountError(101481, f"clientOrderID {client_order_id} already used")
        quantity = truncate_quantity(quantity, rules)
        takes = False
        if order_type == "LIMIT":
            if price is None or price <= 0:
                raise AccountError(109400, "price is required for LIMIT orders")
            price = price.quantize(rules.tick, rounding=ROUND_DOWN)
            takes = opens_through(side, price, last_price, rules)
            if takes and time_in_force == "PostOnly":
                raise AccountError(101215, "PostOnly order would have taken liquidity, so it was cancelled")
        elif time_in_force == "PostOnly":
            raise AccountError(109400, "timeInForce PostOnly is for LIMIT orders")
        reference = price if order_type == "LIMIT" and price is not None else last_price
        if below_minimum(quantity, reference, rules):
            raise AccountError(101400, f"order below the minimum ({rules.min_quantity} / {rules.min_notional} USDT)")
        position = self.positions.setdefault(symbol, Position())
        signed = quantity if side == "BUY" else -quantity
        if reduce_only and (
            position.quantity == 0 or (position.quantity > 0) == (signed > 0) or abs(signed) > abs(position.quantity)
        ):
            raise AccountError(101290, "reduce-only order would open or increase a position")
        if not reduce_only and not self._margin_ok(symbol, signed, reference):
            raise AccountError(101204, "insufficient margin")
        order = SimOrder(
            next(self._ids),
            client_order_id,
            symbol,
            side,
            order_type,
            quantity,
            price,
            reduce_only,
            now_ms,
            time_in_force=time_in_force,
            update_ms=now_ms,
        )
        self.orders[order.order_id] = order
        if client_order_id:
            self.by_client_id[client_order_id] = order.order_id
        self._changed(order, "NEW", None)
        if order_type == "MARKET" or takes:  # a marketable GTC limit takes at the market price (at most its own)
            self._fill(order, market_fill(side, quantity, last_price, rules), now_ms)
        return order

    def _place_conditional(
        self,
        symbol: str,
        side: Side,
        order_type: OrderType,
        quantity: Decimal,
        stop_price: Decimal | None,
        reduce_only: bool,
        close_position: bool,
        rules: FillRules,
        now_ms: int,
    ) -> SimOrder:
        if stop_price is None or stop_price <= 0:
            raise AccountError(109400, f"stopPrice is required for {order_type}")
        stop_price = stop_price.quantize(rules.tick, rounding=ROUND_DOWN)
        position = self.positions.setdefault(symbol, Position())
        closing = side == ("SELL" if position.quantity > 0 else "BUY")
        if close_position:
            quantity = Decimal(0)
        else:
            quantity = truncate_quantity(quantity, rules)
            if below_minimum(quantity, stop_price, rules):
                raise AccountError(
                    101400, f"order below the minimum ({rules.min_quantity} / {rules.min_notional} USDT)"
                )
        if (close_position or reduce_only) and (position.quantity == 0 or not closing):
            raise AccountError(101290, "reduce-only order would open or increase a position")
        order = SimOrder(
            next(self._ids),
            "",
            symbol,
            side,
            order_type,
            quantity,
            None,
            reduce_only or close_position,
            now_ms,
            stop_price=stop_price,
            close_position=close_position,
            update_ms=now_ms,
        )
        self.orders[order.order_id] = order
        self._changed(order, "NEW", None)
        return order

    def on_price(
        self,
        symbol: str,
        low: Decimal,
        high: Decimal,
        now_ms: int,
        candle: tuple[int, Decimal] | None = None,
    ) -> list[SimOrder]:
        """Fill the resting orders that the price range [low, high] reaches, in the order they were placed:
        limits at their price (maker), triggered conditionals from their stop price (taker). `candle`: the
        (open time, volume so far) of the candle the range is from; with `limit_volume_share` set, a limit
        fills at most that share of it, over the candle (partially, when the candle is thin)."""
        filled = []
        for order in self.open_orders(symbol):
            if order.type in CONDITIONAL:
                if self._trigger(order, low, high, now_ms):
                    filled.append(order)
                continue
            assert order.price is not None
            crossed = low <= order.price if order.side == "BUY" else high >= order.price
            quantity = self._fillable(order, candle) if crossed else Decimal(0)
            if quantity > 0:
                self._fill(order, limit_fill(order.side, quantity, order.price, self.rules[symbol]), now_ms)
                filled.append(order)
        return filled

    def _fillable(self, order: SimOrder, candle: tuple[int, Decimal] | None) -> Decimal:
        remaining = order.quantity - order.executed
        if self.limit_volume_share is None or candle is None:
            return remaining
        open_time, volume = candle
        if order.candle_fills[0] != open_time:
            order.candle_fills = (open_time, Decimal(0))
        allowed = truncate_quantity(volume * self.limit_volume_share, self.rules[order.symbol])
        quantity = min(remaining, max(Decimal(0), allowed - order.candle_fills[1]))
        order.candle_fills = (open_time, order.candle_fills[1] + quantity)
        return quantity

    def _trigger(self, order: SimOrder, low: Decimal, high: Decimal, now_ms: int) -> bool:
        assert order.stop_price is not None
        rising = order.side == "BUY" if order.type == "STOP_MARKET" else order.side == "SELL"
        if not (high >= order.stop_price if rising else low <= order.stop_price):
            return False
        position = self.positions.get(order.symbol, Position())
        quantity = order.quantity
        if order.reduce_only:
            closable = abs(position.quantity) if order.side == ("SELL" if position.quantity > 0 else "BUY") else 0
            quantity = Decimal(closable) if order.close_position else min(quantity, Decimal(closable))
        signed = quantity if order.side == "BUY" else -quantity
        if quantity <= 0 or (not order.reduce_only and not self._margin_ok(order.symbol, signed, order.stop_price)):
            order.status = "CANCELLED"  # nothing left to reduce, or no margin for the entry it would open
            order.update_ms = now_ms
            self._changed(order, "CANCELED", None)
            return False
        order.quantity = quantity
        self._fill(order, market_fill(order.side, quantity, order.stop_price, self.rules[order.symbol]), now_ms)
        return True

    def find(self, order_id: int | None, client_order_id: str | None) -> SimOrder:
        if order_id is not None and order_id in self.orders:
            return self.orders[order_id]
        if client_order_id and client_order_id.lower() in self.by_client_id:
            return self.orders[self.by_client_id[client_order_id.lower()]]
        raise AccountError(109421, "order does not exist")

    def cancel(self, order: SimOrder, now_ms: int) -> SimOrder:
        if order.status == "FILLED":
            raise AccountError(80018, "order already filled")
        if order.status == "CANCELLED":
            raise AccountError(109421, "order does not exist")
        order.status = "CANCELLED"
        order.update_ms = now_ms
        self._changed(order, "CANCELED", None)
        return order

    def open_orders(self, symbol: str | None = None) -> list[SimOrder]:
        return [
            o
            for o in self.orders.values()
            if o.status in ("NEW", "PARTIALLY_FILLED") and (symbol is None or o.symbol == symbol)
        ]

    def close_all(self, symbol: str | None, prices: dict[str, Decimal], now_ms: int) -> list[int]:
        closed = []
        for name, position in sorted(self.positions.items()):
            if position.quantity == 0 or (symbol is not None and name != symbol):
                continue
            side: Side = "SELL" if position.quantity > 0 else "BUY"
            order = self.place(name, side, "MARKET", abs(position.quantity), None, "", True, prices[name], now_ms)
            closed.append(order.order_id)
        return closed

    def leverage_of(self, symbol: str) -> int:
        return self.leverages.get(symbol, int(self.leverage))

    def margin_type_of(self, symbol: str) -> MarginType:
        return self.margin_types.get(symbol, "CROSSED")

    def set_leverage(self, symbol: str, side: str, leverage: int) -> int:
        """One-way mode: side BOTH (LONG or SHORT is hedge mode's, 109400)."""
        self.require_symbol(symbol)
        if side != "BOTH":
            raise AccountError(109400, "side must be BOTH in one-way position mode")
        ceiling = self.max_leverage.get(symbol, 125)
        if leverage > ceiling:
            raise AccountError(101414, f"leverage above the maximum of {ceiling}")
        if leverage < 1:
            raise AccountError(109400, "leverage must be at least 1")
        self.leverages[symbol] = leverage
        return leverage

    def set_margin_type(self, symbol: str, margin_type: str) -> None:
        self.require_symbol(symbol)
        if margin_type not in MARGIN_TYPES:
            raise AccountError(109400, "marginType must be ISOLATED, CROSSED or SEPARATE_ISOLATED")
        if margin_type == self.margin_type_of(symbol):
            return
        if self.positions.get(symbol, Position()).quantity != 0 or self.open_orders(symbol):
            raise AccountError(109400, "the margin type cannot be changed with a position or open orders")
        self.margin_types[symbol] = margin_type

    def set_dual_side(self, dual: bool) -> None:
        """Hedge mode is not simulated: only one-way (false) is accepted, and like the venue only with no
        position and no open order (104103)."""
        if any(p.quantity != 0 for p in self.positions.values()) or self.open_orders():
            raise AccountError(104103, "the position mode cannot be changed with positions or open orders")
        if dual:
            raise AccountError(109400, "the simulator runs one-way position mode only (dualSidePosition=false)")

    def require_symbol(self, symbol: str) -> None:
        if symbol not in self.rules:
            raise AccountError(109425, f"symbol {symbol} does not exist")

    def unrealised(self, symbol: str, mark: Decimal) -> Decimal:
        position = self.positions.get(symbol, Position())
        return (mark - position.entry_price) * position.quantity

    def _margin_ok(self, symbol: str, signed: Decimal, price: Decimal) -> bool:
        """The margin of every position at its symbol's leverage, with this order's growth, within the balance."""
        position = self.positions.get(symbol, Position())
        used = sum(
            (abs(p.quantity) * p.entry_price / self.leverage_of(name) for name, p in self.positions.items()), Decimal(0)
        )
        growth = max(Decimal(0), abs(position.quantity + signed) - abs(position.quantity)) * price
        return used + growth / self.leverage_of(symbol) <= self.balance

    def _fill(self, order: SimOrder, fill: Fill, now_ms: int) -> None:
        order.executed += fill.quantity
        order.cum_quote += fill.quantity * fill.price
        order.commission -= fill.fee  # BingX reports commission as a negative number
        order.status = "FILLED" if order.executed >= order.quantity else "PARTIALLY_FILLED"
        order.update_ms = now_ms
        position = self.positions.setdefault(order.symbol, Position())
        order.last_realised = position.apply(fill)
        self.balance += order.last_realised - fill.fee
        self._changed(order, "TRADE", fill)

    def _changed(self, order: SimOrder, execution: str, fill: Fill | None) -> None:
        order.history.append(
            (time.time_ns() // 1_000_000, order.status, order.executed, order.cum_quote, order.commission)
        )
        if self.on_change is not None:
            self.on_change(order, execution, fill)
