"""The simulated BingX venue inside a nautilus_trader backtest: a perpetual instrument that mirrors the
contract, and market data that makes nautilus fill the way `domain.fills` does.

- **Instrument.** A `CryptoPerpetual` with the contract's tick and step (its precisions), minimum
  quantity and notional, maker/taker fees, and initial margin of one over the leverage.
- **Fees.** Charged by `VenueFees`, which calls `domain.fills.fee`: the same 1e-8 USDT rounding as the
  simulator, paper execution and the training environment.
- **Slippage.** At each bar's open the book is one level a side (an L2 snapshot): the bid and ask are
  where `market_fill` puts a market sell and buy at that open (slipped, then rounded onto the tick
  against the taker). A market order sent on that book fills at exactly the price training charged. The
  levels are deep, so no order walks the book. A resting limit entry the open went through fills on it,
  in full, at its own price, as a maker; a new post-only one that would take there is rejected
  (`domain.limit_orders` step 1).
- **Limit entries** (only when the backtest has a limit fill model): a second snapshot a nanosecond
  after the open holds the candle's range for the resting orders, step 2 of `domain.limit_orders`: an
  ask at the low (`cross`: a tick above it) and a bid at the high (`cross`: a tick below), each as deep
  as the volume share of the candle (all of it without a share). nautilus fills a resting limit the
  level reaches at the limit's price, as a maker; with liquidity consumption on, each snapshot's depth
  fills once, so a candle fills at most its share.
- **Bars** arrive one nanosecond before the next bar's open (their close): the strategy decides on a
  bar, then trades on the next open's book, as the environment and the daemon do.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
from nautilus_trader.backtest.models import FeeModel
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.data import Bar, BarType, BookOrder, OrderBookDepth10
from nautilus_trader.model.enums import CurrencyType, LiquiditySide, OrderSide
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.objects import Currency, Money, Price, Quantity

from domain.candle_columns import CandleColumns
from domain.candles import interval_ms
from domain.fills import FillRules, fee, market_fill, truncate_quantity
from domain.instruments import Contract
from domain.limit_orders import LimitRules

VENUE = Venue("BINGX")
NS_PER_MS = 1_000_000
QUOTE_DEPTH = Decimal(10) ** 11
"""Top-of-book size on both sides: deeper than any order, below nautilus's quantity limit (3.4e13)."""
SNAPSHOT = 32
"""nautilus's F_SNAPSHOT record flag: the snapshot replaces the book and resets consumed liquidity."""
_BAR_SPECS = {60_000: "1-MINUTE", 3_600_000: "1-HOUR", 86_400_000: "1-DAY"}


class VenueFees(FeeModel):  # type: ignore[misc]  # nautilus's Cython base class is untyped
    """Maker/taker fees on the fill's notional, rounded as the venue (and `domain.fills`) rounds them."""

    def __init__(self, rules: FillRules) -> None:
        super().__init__()
        self._rules = rules

    def get_commission(self, order: Any, fill_qty: Quantity, fill_px: Price, instrument: Any) -> Money:
        rate = self._rules.maker_fee if order.liquidity_side == LiquiditySide.MAKER else self._rules.taker_fee
        return Money(fee(fill_qty.as_decimal(), fill_px.as_decimal(), rate), USDT)


def perpetual(contract: Contract, leverage: int) -> CryptoPerpetual:
    base_code = contract.symbol.split("-", 1)[0]
    base = Currency(base_code, min(max(contract.quantity_precision, 8), 9), 0, base_code, CurrencyType.CRYPTO)
    margin = Decimal(1) / Decimal(leverage)
    return CryptoPerpetual(
        instrument_id=instrument_id(contract),
        raw_symbol=Symbol(contract.symbol),
        base_currency=base,
        quote_currency=USDT,
        settlement_currency=USDT,
        is_inverse=False,
        price_precision=contract.price_precision,
        size_precision=contract.quantity_precision,
        price_increment=Price(contract.tick_size, contract.price_precision),
        size_increment=Quantity(contract.step_size, contract.quantity_precision),
        ts_event=0,
        ts_init=0,
        min_quantity=Quantity(contract.min_quantity, contract.quantity_precision),
        min_notional=Money(contract.min_notional, USDT),
        margin_init=margin,
        margin_maint=margin / 2,
        maker_fee=contract.maker_fee_rate,
        taker_fee=contract.taker_fee_rate,
    )


def instrument_id(contract: Contract) -> InstrumentId:
    return InstrumentId(Symbol(f"{contract.symbol}-PERP"), VENUE)


def bar_type(contract: Contract, candles: CandleColumns) -> BarType:
    step = interval_ms(candles.interval)
    if step in _BAR_SPECS:
        spec = _BAR_SPECS[step]
    elif step % 3_600_000 == 0:
        spec = f"{step // 3_600_000}-HOUR"
    else:
        spec = f"{step // 60_000}-MINUTE"
    return BarType.from_str(f"{instrument_id(contract)}-{spec}-LAST-EXTERNAL")


def market_data(
    contract: Contract, rules: FillRules, candles: CandleColumns, limits: LimitRules | None = None
) -> tuple[list[Bar], list[OrderBookDepth10]]:
    """The bars (stamped at their close, less a nanosecond), the book at every bar's open and, with
    `limits`, the book of each bar's range a nanosecond later (`OPEN_BOOK`, `RANGE_BOOK` in turn)."""
    opens_ns = candles.open_time_ms.astype(np.uint64) * np.uint64(NS_PER_MS)
    closes_ns = opens_ns + np.uint64(interval_ms(candles.interval) * NS_PER_MS - 1)
    bars = Bar.from_raw_arrays_to_list(
        bar_type(contract, candles),
        contract.price_precision,
        contract.quantity_precision,
        np.ascontiguousarray(candles.open, dtype=np.float64),
        np.ascontiguousarray(candles.high, dtype=np.float64),
        np.ascontiguousarray(candles.low, dtype=np.float64),
        np.ascontiguousarray(candles.close, dtype=np.float64),
        np.ascontiguousarray(candles.volume, dtype=np.float64),
        closes_ns,
        closes_ns,
    )
    book = _Books(instrument_id(contract), contract.price_precision, contract.quantity_precision)
    deep = Decimal(QUOTE_DEPTH)
    books = []
    columns = zip(
        candles.open.tolist(),
        candles.low.tolist(),
        candles.high.tolist(),
        candles.volume.tolist(),
        opens_ns.tolist(),
        strict=True,
    )
    for open_price, low, high, volume, ts in columns:
        price = Decimal(repr(open_price))
        bid = market_fill("SELL", Decimal(1), price, rules).price
        ask = market_fill("BUY", Decimal(1), price, rules).price
        books.append(book.snapshot(bid, deep, ask, deep, ts))
        if limits is None:
            continue
        size = (
            deep
            if limits.volume_share is None
            else truncate_quantity(Decimal(repr(volume)) * limits.volume_share, rules)
        )
        offset = rules.tick if limits.trigger == "cross" else Decimal(0)
        if size > 0:
            books.append(book.snapshot(Decimal(repr(high)) - offset, size, Decimal(repr(low)) + offset, size, ts + 1))
        else:  # nothing traded: a range no resting order reaches
            books.append(book.snapshot(rules.tick, deep, Decimal(repr(high)) * 2, deep, ts + 1))
    return bars, books


OPEN_BOOK, RANGE_BOOK = 0, 1
"""The snapshots of a bar, in order (the range only with limit entries)."""


class _Books:
    """One-level L2 snapshots of the instrument's book (a snapshot resets nautilus's liquidity consumption)."""

    def __init__(self, instrument: InstrumentId, price_precision: int, size_precision: int) -> None:
        self._instrument = instrument
        self._price_precision = price_precision
        self._size_precision = size_precision

    def snapshot(self, bid: Decimal, bid_size: Decimal, ask: Decimal, ask_size: Decimal, ts: int) -> OrderBookDepth10:
        bids = [BookOrder(OrderSide.BUY, self._price(bid), self._size(bid_size), 0)]
        asks = [BookOrder(OrderSide.SELL, self._price(ask), self._size(ask_size), 0)]
        return OrderBookDepth10(self._instrument, bids, asks, [1], [1], SNAPSHOT, 0, ts, ts)

    def _price(self, value: Decimal) -> Price:
        return Price(value, self._price_precision)

    def _size(self, value: Decimal) -> Quantity:
        return Quantity(value, self._size_precision)
