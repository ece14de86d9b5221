"""Paper trading's book: fills at the next candle's open with the shared fill model, trades that open,
grow, reduce, close and flip, cancellations, and a checkpoint that restores the same book."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.candles import Candle
from domain.fills import Fill
from domain.limit_orders import LimitRules
from domain.messages import OrderIntent
from tests.execution_plans import RULES
from trading.paper import (
    LIMIT_EXPIRED,
    NOTHING_TO_REDUCE,
    POST_ONLY_WOULD_TAKE,
    OrderCancelled,
    OrderFilled,
    PaperBook,
)


def candle(minute: int, open_: float) -> Candle:
    return Candle("BTC-USDT", "1m", minute * 60_000, open_, open_ + 1, open_ - 1, open_, 10.0)


def order(cid: str, side: str, quantity: str, *, reduce_only: bool = False, leg: int = 1) -> OrderIntent:
    return OrderIntent(cid, side, Decimal(quantity), reduce_only, "target", leg)  # type: ignore[arg-type]


def test_an_order_fills_at_the_next_candles_open_and_a_round_trip_books_pnl_after_fees() -> None:
    book = PaperBook("BTC-USDT", RULES)
    _working, trade, created = book.place(order("a", "BUY", "0.5"), 1, 60_000)
    assert created
    assert trade.status == "open"
    assert trade.entry_price is None
    assert book.working_quantity == Decimal("0.5")
    (filled,) = book.on_candle(candle(2, 100.0))
    assert isinstance(filled, OrderFilled)
    assert filled.fill.price == Decimal("100.0")
    assert book.position.quantity == Decimal("0.5")
    assert trade.entry_price == Decimal("100.0")
    assert book.on_candle(candle(2, 100.0)) == []  # the same candle again: nothing fills twice
    book.on_candle(candle(3, 101.0))
    assert book.bars_held == 2
    book.place(order("b", "SELL", "0.5", reduce_only=True, leg=0), 3, 180_000)
    assert trade.status == "closing"
    (closed,) = book.on_candle(candle(4, 110.0))
    assert isinstance(closed, OrderFilled)
    # (110 - 100) * 0.5 = 5 realised; fees 0.5*100*0.0005 + 0.5*110*0.0005 = 0.025 + 0.0275
    assert trade.status == "closed"
    assert trade.realised == Decimal("5.0")
    assert trade.fees == Decimal("0.0525")
    assert trade.net_pnl == Decimal("4.9475")
    assert trade.exit_price == Decimal("110.0")
    assert trade.quantity == Decimal("0.5")
    assert book.trade is None
    assert book.position.quantity == 0
    assert book.bars_held == 0


def test_a_flip_closes_one_trade_and_opens_the_next() -> None:
    book = PaperBook("BTC-USDT", RULES)
    _, long_trade, _ = book.place(order("a", "BUY", "1"), 1, 0)
    book.on_candle(candle(2, 100.0))
    book.place(order("b0", "SELL", "1", reduce_only=True, leg=0), 2, 0)
    _, short_trade, created = book.place(order("b1", "SELL", "0.4"), 2, 0)
    assert created
    assert short_trade is not long_trade
    events = book.on_candle(candle(3, 90.0))
    assert [type(e) for e in events] == [OrderFilled, OrderFilled]
    assert long_trade.status == "closed"
    assert long_trade.realised == Decimal("-10.0")
    assert book.trade is short_trade
    assert short_trade.entry_price == Decimal("90.0")
    assert book.position.quantity == Decimal("-0.4")


def test_a_partial_reduction_keeps_the_trade_open_with_its_exit_so_far() -> None:
    book = PaperBook("BTC-USDT", RULES)
    _, trade, _ = book.place(order("a", "SELL", "1"), 1, 0)
    book.on_candle(candle(2, 100.0))
    book.place(order("b", "BUY", "0.25", reduce_only=True, leg=0), 2, 0)
    book.on_candle(candle(3, 96.0))
    assert trade.status == "open"
    assert trade.quantity == Decimal("0.75")
    assert trade.realised == Decimal("1.000")
    assert trade.exit_price == Decimal("96.0")


def test_a_reduce_only_order_never_grows_the_position() -> None:
    book = PaperBook("BTC-USDT", RULES)
    book.place(order("a", "BUY", "0.5"), 1, 0)
    book.on_candle(candle(2, 100.0))
    book.place(order("b", "SELL", "2", reduce_only=True, leg=0), 2, 0)
    (filled,) = book.on_candle(candle(3, 100.0))
    assert isinstance(filled, OrderFilled)
    assert filled.fill.quantity == Decimal("0.5")
    assert book.position.quantity == 0
    with pytest.raises(ValueError, match=NOTHING_TO_REDUCE):
        book.place(order("c", "SELL", "1", reduce_only=True, leg=0), 3, 0)


def test_cancelling_an_unfilled_opening_order_cancels_its_trade_and_a_flip_is_cancelled_whole() -> None:
    book = PaperBook("BTC-USDT", RULES)
    _, trade, _ = book.place(order("a", "BUY", "0.5"), 1, 0)
    (cancelled,) = book.cancel_trade(trade.id, "operator")
    assert isinstance(cancelled, OrderCancelled)
    assert trade.status == "cancelled"
    assert book.trade is None
    _, trade, _ = book.place(order("b", "BUY", "0.5"), 2, 0)
    book.on_candle(candle(3, 100.0))
    book.place(order("c0", "SELL", "0.5", reduce_only=True, leg=0), 3, 0)
    _, following, _ = book.place(order("c1", "SELL", "0.5"), 3, 0)
    events = book.cancel_trade(trade.id, "operator")
    assert {e.order.client_order_id for e in events} == {"c0", "c1"}
    assert trade.status == "open"
    assert following.status == "cancelled"
    assert book.working == {}
    assert book.trade is trade
    assert book.next_trade is None


def test_the_checkpoint_restores_the_same_book() -> None:
    book = PaperBook("BTC-USDT", RULES)
    book.place(order("a", "BUY", "1"), 1, 0)
    book.on_candle(candle(2, 100.0))
    book.place(order("b0", "SELL", "1", reduce_only=True, leg=0), 2, 0)
    book.place(order("b1", "SELL", "0.5"), 2, 0)
    restored = PaperBook.from_json("BTC-USDT", RULES, book.to_json())
    assert restored == book
    assert restored.on_candle(candle(3, 95.0))
    assert book.on_candle(candle(3, 95.0))
    assert restored == book
    with pytest.raises(ValueError, match="checkpoint version"):
        PaperBook.from_json("BTC-USDT", RULES, {**book.to_json(), "version": 99})


def test_a_live_venue_fills_an_order_in_parts_and_it_leaves_the_book_when_all_has_filled() -> None:
    book = PaperBook("BTC-USDT", RULES)
    book.place(order("a", "BUY", "1.0"), 1, 60_000)
    first = book.venue_fill("a", Fill("BUY", Decimal("0.4"), Decimal("100"), Decimal("0.02"), "taker"), 61_000)
    assert first.order.filled == Decimal("0.4")
    assert book.position.quantity == Decimal("0.4")
    assert book.working_quantity == Decimal("0.6")  # what is still to fill
    assert "a" in book.working
    with pytest.raises(ValueError, match="does not fit"):
        book.venue_fill("a", Fill("BUY", Decimal("0.7"), Decimal("101"), Decimal("0"), "taker"), 62_000)
    with pytest.raises(ValueError, match="does not fit"):
        book.venue_fill("a", Fill("SELL", Decimal("0.1"), Decimal("101"), Decimal("0"), "taker"), 62_000)
    last = book.venue_fill("a", Fill("BUY", Decimal("0.6"), Decimal("101"), Decimal("0.03"), "taker"), 62_000)
    assert "a" not in book.working
    assert (last.order.filled, last.order.average_price, last.order.fees_paid) == (
        Decimal("1.0"),
        Decimal("100.6"),
        Decimal("0.05"),
    )
    assert book.position.entry_price == Decimal("100.6")
    assert last.trade.fees == Decimal("0.05")
    with pytest.raises(KeyError):
        book.venue_fill("a", Fill("BUY", Decimal("0.1"), Decimal("101"), Decimal("0"), "taker"), 63_000)


def test_a_part_filled_order_survives_the_checkpoint_and_an_old_checkpoint_reads_as_unfilled() -> None:
    book = PaperBook("BTC-USDT", RULES)
    book.place(order("a", "BUY", "1.0"), 1, 60_000)
    book.venue_fill("a", Fill("BUY", Decimal("0.25"), Decimal("100"), Decimal("0.01"), "taker"), 61_000)
    document = book.to_json()
    restored = PaperBook.from_json("BTC-USDT", RULES, document)
    assert restored.working["a"].remaining == Decimal("0.75")
    assert restored.to_json() == document
    for item in document["working"]:
        for key in ("filled", "filled_value", "fees_paid"):
            del item[key]
    assert PaperBook.from_json("BTC-USDT", RULES, document).working["a"].filled == 0


def test_a_live_fill_of_an_order_whose_trade_ended_meanwhile_is_counted_in_the_trade_held_now() -> None:
    """On a live venue a trade can end (a stop triggered) while another order of it still works: its fill
    belongs to the trade the position is in then, or opens one; the position stays exact."""
    book = PaperBook("BTC-USDT", RULES)
    book.place(order("open", "BUY", "1"), 1, 60_000)
    book.place(order("more", "BUY", "1"), 1, 60_000)  # a second order of the same trade
    book.venue_fill("open", Fill("BUY", Decimal("1"), Decimal("100"), Decimal("0.05"), "taker"), 61_000)
    first = book.trade
    assert first is not None
    book.place(order("stop", "SELL", "1", reduce_only=True), 2, 62_000)
    book.venue_fill("stop", Fill("SELL", Decimal("1"), Decimal("98"), Decimal("0.05"), "taker"), 62_000)
    assert (book.trade, first.status) == (None, "closed")
    book.relink("more", 63_000)
    filled = book.venue_fill("more", Fill("BUY", Decimal("1"), Decimal("99"), Decimal("0.05"), "taker"), 63_000)
    assert filled.trade is book.trade
    assert filled.trade.id != first.id
    assert (filled.trade.side, book.position.quantity, book.position.entry_price) == ("long", 1, Decimal("99"))


def test_a_flips_legs_heard_in_the_wrong_order_leave_the_same_position_and_the_next_trade_open() -> None:
    book = PaperBook("BTC-USDT", RULES)
    book.place(order("open", "BUY", "1"), 1, 60_000)
    book.venue_fill("open", Fill("BUY", Decimal("1"), Decimal("100"), Decimal("0.05"), "taker"), 61_000)
    first = book.trade
    assert first is not None
    book.place(order("close", "SELL", "1", reduce_only=True, leg=0), 2, 62_000)
    book.place(order("short", "SELL", "1"), 2, 62_000)  # the flip's opening leg: the next trade's
    book.relink("short", 62_500)  # its fill is heard first
    book.venue_fill("short", Fill("SELL", Decimal("1"), Decimal("101"), Decimal("0.05"), "taker"), 62_500)
    assert (book.position.quantity, first.status) == (0, "closed")
    book.relink("close", 62_600)
    book.venue_fill("close", Fill("SELL", Decimal("1"), Decimal("101"), Decimal("0.05"), "taker"), 62_600)
    assert book.position.quantity == -1
    assert book.trade is not None
    assert (book.trade.side, book.trade.status) == ("short", "open")
    assert book.working == {}


def limit_order(cid: str, side: str, quantity: str, price: str) -> OrderIntent:
    return OrderIntent(cid, side, Decimal(quantity), False, "target", 1, Decimal(price))  # type: ignore[arg-type]


def test_a_limit_entry_fills_by_the_limit_fill_model_and_survives_a_checkpoint() -> None:
    """A post-only BUY at 100.0: a candle whose low stays above it fills nothing, a thin one fills its
    volume share (a maker fill at the limit), the checkpoint keeps what is left and its life, and the
    rest expires after the third candle."""
    book = PaperBook("BTC-USDT", RULES)
    with pytest.raises(ValueError, match="no limit fill model"):
        book.place(limit_order("x", "BUY", "1", "100.0"), 1, 0)
    book.place(limit_order("a", "BUY", "1", "100.0"), 1, 0, LimitRules("touch", 3, Decimal("0.25")))
    assert book.working_quantity == 0
    assert book.resting_quantity == Decimal(1)
    assert book.on_candle(Candle("BTC-USDT", "1m", 120_000, 100.5, 101.0, 100.1, 100.8, 10.0)) == []
    (part,) = book.on_candle(Candle("BTC-USDT", "1m", 180_000, 100.5, 101.0, 99.9, 100.2, 2.0))
    assert isinstance(part, OrderFilled)
    assert (part.fill.quantity, part.fill.price, part.fill.liquidity) == (Decimal("0.5"), Decimal("100.0"), "maker")
    assert part.fill.fee == Decimal("0.01000000")  # 0.5 * 100 * 0.0002, the maker fee
    restored = PaperBook.from_json("BTC-USDT", RULES, book.to_json())
    (resting,) = restored.resting_entries()
    assert resting.remaining == Decimal("0.5")
    assert resting.rested
    assert resting.limit_rules == LimitRules("touch", 1, Decimal("0.25"))  # one candle of its three left
    (expired,) = restored.on_candle(Candle("BTC-USDT", "1m", 240_000, 100.5, 101.0, 100.2, 100.8, 10.0))
    assert isinstance(expired, OrderCancelled)
    assert expired.reason == LIMIT_EXPIRED
    assert restored.position.quantity == Decimal("0.5")
    assert not restored.working


def test_a_limit_entry_the_open_goes_through_is_rejected_by_post_only() -> None:
    book = PaperBook("BTC-USDT", RULES)
    _, trade, _ = book.place(limit_order("a", "BUY", "1", "100.0"), 1, 0, LimitRules())
    (rejected,) = book.on_candle(Candle("BTC-USDT", "1m", 120_000, 99.0, 99.5, 98.5, 99.2, 10.0))
    assert isinstance(rejected, OrderCancelled)
    assert rejected.reason == POST_ONLY_WOULD_TAKE
    assert trade.status == "cancelled"
    assert book.trade is None
