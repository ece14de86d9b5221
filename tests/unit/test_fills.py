"""The one fill model: slippage onto the tick grid against the taker, fees to 1e-8, net positions."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from domain.fills import FillRules, Position, below_minimum, limit_fill, market_fill, truncate_quantity

RULES = FillRules(
    tick=Decimal("0.1"),
    step=Decimal("0.001"),
    min_quantity=Decimal("0.001"),
    min_notional=Decimal(5),
    maker_fee=Decimal("0.0002"),
    taker_fee=Decimal("0.0005"),
    slippage_bps=Decimal(2),
)


def test_market_fills_slip_against_the_taker_onto_the_tick_grid() -> None:
    buy = market_fill("BUY", Decimal("0.5"), Decimal(100), RULES)
    # 100 * 1.0002 = 100.02, up to the 0.1 grid: 100.1; fee 0.5 * 100.1 * 0.0005 = 0.025025
    assert (buy.price, buy.fee, buy.liquidity) == (Decimal("100.1"), Decimal("0.02502500"), "taker")
    sell = market_fill("SELL", Decimal("0.5"), Decimal(100), RULES)
    assert (sell.price, sell.fee) == (Decimal("99.9"), Decimal("0.02497500"))
    exact = market_fill("BUY", Decimal(1), Decimal(100), replace(RULES, slippage_bps=Decimal(0)))
    assert exact.price == Decimal(100)
    maker = limit_fill("SELL", Decimal(2), Decimal("101.5"), RULES)
    assert (maker.price, maker.fee, maker.liquidity) == (Decimal("101.5"), Decimal("0.04060000"), "maker")


def test_quantities_truncate_to_the_step_and_minimums_hold() -> None:
    assert truncate_quantity(Decimal("0.12345"), RULES) == Decimal("0.123")
    assert below_minimum(Decimal("0.0009"), Decimal(100_000), RULES)
    assert below_minimum(Decimal("0.04"), Decimal(100), RULES)  # 4 USDT < 5
    assert not below_minimum(Decimal("0.05"), Decimal(100), RULES)


def test_a_position_opens_adds_reduces_flips_and_closes_with_average_entry_accounting() -> None:
    position = Position()
    assert position.apply(market_fill("BUY", Decimal(1), Decimal(100), RULES)) == 0  # long 1 @ 100.1
    assert position.apply(market_fill("BUY", Decimal(1), Decimal(110), RULES)) == 0  # 110.022 -> 110.1
    assert (position.quantity, position.entry_price) == (Decimal(2), Decimal("105.1"))
    assert position.unrealised(Decimal("106.1")) == Decimal(2)
    # Sell 3 at 120 (slipped to 119.97 -> 119.9): closes 2 for +29.6, opens 1 short at 119.9.
    assert position.apply(market_fill("SELL", Decimal(3), Decimal(120), RULES)) == Decimal("29.6")
    assert (position.quantity, position.entry_price) == (Decimal(-1), Decimal("119.9"))
    # Buy 1 at 100 (100.1): the short gains 19.8 and is flat.
    assert position.apply(market_fill("BUY", Decimal(1), Decimal(100), RULES)) == Decimal("19.8")
    assert (position.quantity, position.entry_price, position.realised) == (0, 0, Decimal("49.4"))
    # Fees: 0.0500500 + 0.0550500 + 0.1798500 + 0.0500500
    assert position.fees == Decimal("0.33500000")
