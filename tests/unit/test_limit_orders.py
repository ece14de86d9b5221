"""The limit fill model, by hand: where an entry rests, when the open rejects or fills it, what the range
fills (touch or cross, the volume share), and when it expires."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.fills import FillRules
from domain.limit_orders import LimitRules, opens_through, range_fill, reaches, touch_price
from domain.messages import OrderIntent
from trading.resting import RestingEntry, step_candle

RULES = FillRules(Decimal("0.1"), Decimal("0.001"), Decimal("0.001"), Decimal(2), Decimal("0.0002"), Decimal("0.0005"))
D = Decimal


def test_an_entry_rests_at_the_touch_of_the_decision_close() -> None:
    assert touch_price("BUY", D("100.07"), RULES) == D("100.0")
    assert touch_price("SELL", D("100.07"), RULES) == D("100.1")
    assert touch_price("BUY", D("100.1"), RULES) == touch_price("SELL", D("100.1"), RULES) == D("100.1")


def test_the_open_goes_through_an_entry_when_a_market_order_there_would_pay_no_more() -> None:
    # A market buy at 99.97 pays 99.97 * 1.0002 = 99.989..., rounded up to 100.0: at the limit.
    assert opens_through("BUY", D("100.0"), D("99.97"), RULES)
    assert not opens_through("BUY", D("100.0"), D("99.99"), RULES)  # 100.009... -> 100.1
    # A market sell at 100.03 gets 100.03 * 0.9998 = 100.0099..., rounded down to 100.0.
    assert opens_through("SELL", D("100.0"), D("100.03"), RULES)
    assert not opens_through("SELL", D("100.0"), D("100.01"), RULES)


def test_touch_fills_at_the_price_and_cross_only_beyond_it() -> None:
    assert reaches("BUY", D(100), D(100), "touch")
    assert not reaches("BUY", D(100), D(100), "cross")
    assert reaches("BUY", D(100), D("99.9"), "cross")
    assert reaches("SELL", D(100), D(100), "touch")
    assert not reaches("SELL", D(100), D(100), "cross")
    assert not reaches("SELL", D(100), D("99.9"), "touch")


def test_the_range_fills_all_or_the_volume_share() -> None:
    whole = LimitRules("touch", 1, None)
    share = LimitRules("touch", 1, D("0.25"))
    assert range_fill("BUY", D(100), D(2), D(99), D(101), D(3), whole, RULES) == D(2)
    assert range_fill("BUY", D(100), D(2), D(99), D(101), D(3), share, RULES) == D("0.75")
    assert range_fill("BUY", D(100), D(2), D("100.1"), D(101), D(3), share, RULES) == 0  # the low stayed above
    assert range_fill("SELL", D(100), D(2), D(99), D("99.9"), D(3), whole, RULES) == 0  # the high stayed below
    assert range_fill("BUY", D(100), D(2), D(99), D(101), D("0.0001"), share, RULES) == 0  # below a step


def test_the_rules_refuse_what_cannot_be() -> None:
    with pytest.raises(ValueError, match="at least one candle"):
        LimitRules("touch", 0)
    with pytest.raises(ValueError, match="volume_share"):
        LimitRules("touch", 1, D(0))


def entry(quantity: str = "2", expiry: int = 2) -> RestingEntry:
    intent = OrderIntent("c1", "BUY", D(quantity), False, "target", 1, D(100))
    return RestingEntry.of(intent, LimitRules("touch", expiry, D("0.25")))


def test_a_new_entry_the_open_goes_through_is_rejected_a_rested_one_fills_in_full() -> None:
    rules = LimitRules("touch", 2, D("0.25"))
    fresh = step_candle(entry(), D("99.9"), D("99.5"), D(100), D(1), RULES, rules)
    assert (fresh.fill, fresh.resting, fresh.ended) == (None, None, "rejected")
    first = step_candle(entry(), D("100.5"), D("100.2"), D(101), D(1), RULES, rules)
    assert first.fill is None
    assert first.resting is not None
    assert first.resting.rested
    rested = step_candle(first.resting, D("99.9"), D("99.5"), D(100), D(1), RULES, rules)
    assert rested.ended == "filled"
    assert rested.fill is not None
    assert (rested.fill.quantity, rested.fill.price, rested.fill.liquidity) == (D(2), D(100), "maker")
    assert rested.fill.fee == D("0.04000000")  # 2 * 100 * 0.0002, the maker fee


def test_a_partial_fill_waits_and_what_is_left_expires() -> None:
    rules = LimitRules("touch", 2, D("0.25"))
    first = step_candle(entry(), D("100.5"), D("99.8"), D(101), D(4), RULES, rules)
    assert first.fill is not None
    assert first.fill.quantity == D(1)
    assert first.resting is not None
    assert first.resting.remaining == D(1)
    assert first.resting.signed == D(1)
    last = step_candle(first.resting, D("100.5"), D("99.8"), D(101), D(2), RULES, rules)
    assert last.fill is not None
    assert last.fill.quantity == D("0.5")
    assert (last.resting, last.ended) == (None, "expired")


def test_a_market_intent_is_not_an_entry() -> None:
    with pytest.raises(ValueError, match="market order"):
        RestingEntry.of(OrderIntent("c1", "BUY", D(1), False, "target", 1), LimitRules())
