"""Funding, hand-checked: which bar a funding time is charged at, who pays, the offline preset's times,
and a segment's equity and figures with it."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from domain.fills import Fill, FillRules
from domain.funding import FUNDING_INTERVAL_MS, FundingSchedule, base_rate_schedule, funding_payment
from learning.evaluation.metrics import Segment, TimedFill, buy_and_hold, metrics, replay

MINUTE = 60_000
HOUR = 3_600_000
RULES = FillRules(Decimal("0.1"), Decimal("0.01"), Decimal("0.01"), Decimal(1), Decimal("0.0002"), Decimal("0.001"))


def test_a_funding_time_is_charged_at_the_close_of_the_bar_whose_span_holds_it() -> None:
    opens = np.arange(0, 10 * MINUTE, MINUTE, dtype=np.int64) + 8 * HOUR - 5 * MINUTE  # 07:55 ... 08:04
    schedule = FundingSchedule(np.array([8 * HOUR], np.int64), np.array([0.0003]), "test")
    rates = schedule.per_bar(opens, MINUTE)
    # 08:00 is the close of the bar opening at 07:59 (the 5th), not the bar opening at 08:00.
    assert rates.tolist() == [0, 0, 0, 0, 0.0003, 0, 0, 0, 0, 0]
    hourly = np.array([7 * HOUR, 8 * HOUR], np.int64)  # 1h bars: 08:00 closes the 07:00 bar
    assert schedule.per_bar(hourly, HOUR).tolist() == [0.0003, 0.0]
    # A funding time outside the bars is not charged; two in one bar add up.
    daily = FundingSchedule(np.array([0, 8 * HOUR, 16 * HOUR], np.int64), np.array([0.1, 0.2, 0.4]), "test")
    assert daily.per_bar(np.array([0], np.int64), 24 * HOUR).tolist() == [pytest.approx(0.6)]


def test_a_long_pays_a_positive_rate_and_a_short_receives_it() -> None:
    # 0.5 BTC at 100,000 x 0.0001 = 5 USDT.
    assert funding_payment(Decimal("0.5"), Decimal(100_000), 0.0001) == Decimal("5.00000000")
    assert funding_payment(Decimal("-0.5"), Decimal(100_000), 0.0001) == Decimal("-5.00000000")
    assert funding_payment(Decimal("0.5"), Decimal(100_000), -0.0002) == Decimal("-10.00000000")
    assert funding_payment(Decimal(0), Decimal(100_000), 0.0001) == 0


def test_the_offline_preset_charges_the_base_rate_at_00_08_and_16_utc() -> None:
    day = 20_000 * 24 * HOUR
    schedule = base_rate_schedule(day + HOUR, day + 24 * HOUR + 1)
    assert (schedule.times_ms - day).tolist() == [8 * HOUR, 16 * HOUR, 24 * HOUR]
    assert schedule.rates.tolist() == [0.0001] * 3
    assert np.all(schedule.times_ms % FUNDING_INTERVAL_MS == 0)
    assert FundingSchedule.from_json(schedule.to_json()).times_ms.tolist() == schedule.times_ms.tolist()


def test_a_segment_pays_funding_on_the_position_held_through_the_bar() -> None:
    closes = np.array([100.0, 110.0, 90.0, 95.0])
    buy = TimedFill(1, MINUTE, Fill("BUY", Decimal(2), Decimal(100), Decimal("0.2"), "taker"))
    rates = np.array([0.01, 0.01, -0.02, 0.0])
    book = replay(Segment(Decimal(1000), closes, [buy], MINUTE, 0, funding_rates=rates))
    # Bar 0: flat, nothing paid. Bar 1 (bought at its open): 2 x 110 x 0.01 = 2.2 paid. Bar 2: 2 x 90 x
    # -0.02 = -3.6, received. Equity: 1000, 1000 - 0.2 - 2.2 + 2 x 10 = 1017.6, 1000 - 0.2 - 2.2 + 3.6 - 20 =
    # 981.2, then 981.2 + 2 x 5 = 991.2.
    assert book.equity.tolist() == pytest.approx([1000.0, 1017.6, 981.2, 991.2])
    assert book.funding == Decimal("-1.4")
    figures = metrics([Segment(Decimal(1000), closes, [buy], MINUTE, 0, funding_rates=rates)])
    assert figures.funding == pytest.approx(-1.4)
    assert figures.net_pnl == pytest.approx(-8.8)


def test_buy_and_hold_pays_funding_while_it_holds() -> None:
    opens = np.array([100.0, 100.0, 100.0])
    closes = np.array([100.0, 100.0, 100.0])
    plain = metrics([buy_and_hold(opens, closes, 0, MINUTE, Decimal(1000), 0.5, RULES)])
    rates = np.array([0.0, 0.001, 0.0])
    funded = metrics([buy_and_hold(opens, closes, 0, MINUTE, Decimal(1000), 0.5, RULES, rates)])
    # 5.00 held (500 USDT at the first open, 100) x 100 x 0.001 at bar 1's close; at the last bar it is sold.
    assert funded.funding == pytest.approx(0.5)
    assert funded.net_pnl == pytest.approx(plain.net_pnl - 0.5)


def test_each_trade_carries_the_funding_it_paid_while_open_and_its_net_is_after_it() -> None:
    closes = np.array([100.0, 110.0, 90.0, 95.0, 95.0])
    buy = TimedFill(1, MINUTE, Fill("BUY", Decimal(2), Decimal(100), Decimal("0.2"), "taker"))
    # Bar 3 opens by selling 3: the long closes and a short of 1 opens, each with its share of the fee.
    flip = TimedFill(3, 3 * MINUTE, Fill("SELL", Decimal(3), Decimal(90), Decimal("0.3"), "taker"))
    rates = np.array([0.01, 0.01, -0.02, 0.0, 0.01])
    book = replay(Segment(Decimal(1000), closes, [buy, flip], MINUTE, 0, funding_rates=rates))
    (long,) = book.trades
    # The long paid 2 x 110 x 0.01 = 2.2 at bar 1 and received 2 x 90 x 0.02 = 3.6 at bar 2.
    assert long.funding == Decimal("-1.4")
    # Realised 2 x (90 - 100) = -20, fees 0.2 + 0.3 x 2/3 = 0.4: net -20 - 0.4 + 1.4 = -19.
    assert long.net == Decimal("-19.0")
    # The short, still open, received 1 x 95 x 0.01 = 0.95 at bar 4, the last.
    assert book.open_trade is not None
    assert book.open_trade.funding == Decimal("-0.95")
    # The trades' nets add up to the equity's change, funding included.
    assert float(long.net + book.open_trade.net) == pytest.approx(book.equity[-1] - 1000)
