"""The metrics against hand-checked figures on a scripted trade list: a long closed by a flip into a
short, the short closed at a loss, then a winning short. Every figure below was worked out by hand
(fees included) in the comments, not by the code under test. Likewise buy-and-hold after fees, the
exit-reason table, holding times, and the daily Sharpe with its n/a."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from domain.fills import Fill, FillRules
from learning.evaluation.metrics import (
    MS_PER_DAY,
    Segment,
    TimedFill,
    buy_and_hold,
    daily_returns,
    exit_reasons,
    max_drawdown,
    metrics,
    replay,
)

MINUTE = 60_000
CLOSES = np.array([100, 102, 101, 99, 103, 104, 103, 101], dtype=np.float64)


def fill(bar: int, side: str, quantity: str, price: str, fee: str, step: int = MINUTE) -> TimedFill:
    return TimedFill(bar, bar * step, Fill(side, Decimal(quantity), Decimal(price), Decimal(fee), "taker"))  # type: ignore[arg-type]


FILLS = [
    fill(1, "BUY", "2", "101", "0.101"),  # long 2 @ 101
    fill(3, "SELL", "4", "99.5", "0.199"),  # closes the long (-3.00), opens short 2 @ 99.5
    fill(5, "BUY", "2", "103.5", "0.1035"),  # closes the short (-8.00)
    fill(6, "SELL", "1", "104", "0.052"),  # short 1 @ 104
    fill(7, "BUY", "1", "101.5", "0.05075"),  # closes it (+2.50)
]
SEGMENT = Segment(Decimal(1000), CLOSES, FILLS, MINUTE, 0)

# bar: balance                          + unrealised at the close      = equity
#  0:  1000                                                            = 1000
#  1:  1000 - 0.101 = 999.899           + 2 * (102 - 101) = 2          = 1001.899
#  2:  999.899                          + 2 * (101 - 101) = 0          = 999.899
#  3:  999.899 - 3 - 0.199 = 996.7      + -2 * (99 - 99.5) = 1         = 997.7
#  4:  996.7                            + -2 * (103 - 99.5) = -7       = 989.7
#  5:  996.7 - 8 - 0.1035 = 988.5965                                   = 988.5965
#  6:  988.5965 - 0.052 = 988.5445      + -1 * (103 - 104) = 1         = 989.5445
#  7:  988.5445 + 2.5 - 0.05075 = 990.99375                            = 990.99375
EQUITY = [1000, 1001.899, 999.899, 997.7, 989.7, 988.5965, 989.5445, 990.99375]


def test_the_equity_curve_marks_every_bar_at_its_close() -> None:
    book = replay(SEGMENT)
    assert book.equity.tolist() == pytest.approx(EQUITY, abs=1e-9)
    assert book.position.tolist() == [0, 2, 2, -2, -2, 0, -1, 0]


def test_trades_run_flat_to_flat_and_a_flip_splits_its_fee() -> None:
    trades = replay(SEGMENT).trades
    assert [(t.side, t.entry_price, t.exit_price, t.quantity) for t in trades] == [
        (1, Decimal("101"), Decimal("99.5"), Decimal("2")),
        (-1, Decimal("99.5"), Decimal("103.5"), Decimal("2")),
        (-1, Decimal("104"), Decimal("101.5"), Decimal("1")),
    ]
    # The flip's fee 0.199 is half closing (2 of 4), half opening.
    assert [t.fees for t in trades] == [Decimal("0.2005"), Decimal("0.2030"), Decimal("0.10275")]
    assert [t.net for t in trades] == [Decimal("-3.2005"), Decimal("-8.2030"), Decimal("2.39725")]


def test_metrics_equal_the_hand_computation() -> None:
    result = metrics([SEGMENT])
    assert result.net_pnl == pytest.approx(-9.00625)  # 990.99375 - 1000 = the sum of the three nets
    assert result.total_return == pytest.approx(-0.00900625)
    assert result.trade_count == 3
    assert result.win_rate == pytest.approx(1 / 3)
    assert (result.wins, result.losses) == (1, 2)
    assert result.average_trade == pytest.approx(-9.00625 / 3)
    assert result.profit_factor == pytest.approx(2.39725 / 11.4035)  # 2.39725 won / (3.2005 + 8.203) lost
    assert result.fees == pytest.approx(0.50625)  # 0.101 + 0.199 + 0.1035 + 0.052 + 0.05075
    assert result.turnover == pytest.approx(1.0125)  # (202 + 398 + 207 + 104 + 101.5) / 1000
    assert result.exposure_time == pytest.approx(5 / 8)  # bars 1, 2, 3, 4, 6 closed in a position
    assert result.max_drawdown == pytest.approx((1001.899 - 988.5965) / 1001.899)  # peak bar 1, trough bar 5
    assert result.open_quantity == 0
    assert result.unrealised_pnl == 0
    # Eight minutes are far from a week of days: no Sharpe, rather than one annualised from minutes.
    assert result.daily_sharpe is None
    assert result.daily_sortino is None
    assert result.days == pytest.approx(8 / 1440)


def test_an_open_position_is_marked_but_is_not_a_trade() -> None:
    segment = Segment(Decimal(1000), CLOSES[:5], FILLS[:2], MINUTE, 0)
    result = metrics([segment])
    assert result.trade_count == 1
    assert result.open_quantity == -2
    assert result.unrealised_pnl == pytest.approx(-7)  # short 2 @ 99.5 marked at 103
    assert result.net_pnl == pytest.approx(989.7 - 1000)
    # The book keeps it as a trade marked at the last close, for the exit reasons, the list and the tape.
    marked = replay(segment).open_trade
    assert marked is not None
    assert (marked.side, marked.entry_price, marked.exit_price, marked.quantity) == (
        -1,
        Decimal("99.5"),
        Decimal("103"),
        Decimal("2"),
    )
    assert marked.fees == Decimal("0.0995")  # the opening half of the flip's 0.199
    assert marked.net == Decimal("-7.0995")
    assert (marked.entry_ms, marked.exit_ms, marked.reason) == (3 * MINUTE, 5 * MINUTE, "end_of_data")
    assert result.reasons["end_of_data"].count == 1
    assert result.reasons["signal_flip"].count == 1


def test_segments_add_up_and_the_worst_drawdown_counts() -> None:
    quiet = Segment(Decimal(1000), np.array([50.0, 51.0, 52.0]), [], MINUTE, 0)
    result = metrics([SEGMENT, quiet])
    assert result.net_pnl == pytest.approx(-9.00625)
    assert result.total_return == pytest.approx(-9.00625 / 2000)
    assert result.trade_count == 3
    assert result.bars == 11
    assert result.exposure_time == pytest.approx(5 / 11)
    assert result.max_drawdown == pytest.approx(metrics([SEGMENT]).max_drawdown)


def test_undefined_figures_are_none_not_made_up() -> None:
    flat = metrics([Segment(Decimal(1000), np.full(10, 100.0), [], MINUTE, 0)])
    assert flat.trade_count == 0
    assert flat.win_rate is None
    assert flat.average_trade is None
    assert flat.profit_factor is None
    assert flat.daily_sharpe is None
    assert flat.daily_sortino is None
    assert flat.average_holding_ms is None
    assert (flat.best_trade, flat.worst_trade) == (None, None)
    assert flat.reasons == {}
    assert flat.net_pnl == 0
    assert flat.max_drawdown == 0


def test_max_drawdown_is_a_fraction_of_the_running_peak() -> None:
    assert max_drawdown(np.array([100.0, 120.0, 90.0, 130.0, 117.0])) == pytest.approx(0.25)


def test_a_fill_outside_the_segment_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        replay(Segment(Decimal(1000), CLOSES[:3], FILLS[:2], MINUTE, 0))


def test_exit_reasons_holding_time_and_best_and_worst_trade() -> None:
    result = metrics([SEGMENT])
    # trade 1: long from bar 1, closed by the flip at bar 3 (2 minutes), net -3.2005;
    # trade 2: short from bar 3, to flat at bar 5 (2 minutes), net -8.2030;
    # trade 3: short from bar 6, to flat at bar 7 (1 minute), net +2.39725.
    assert [t.reason for t in replay(SEGMENT).trades] == ["signal_flip", "signal_exit", "signal_exit"]
    assert result.average_holding_ms == pytest.approx(5 / 3 * MINUTE)
    assert (result.best_trade, result.worst_trade) == (pytest.approx(2.39725), pytest.approx(-8.2030))
    flip, flat = result.reasons["signal_flip"], result.reasons["signal_exit"]
    assert (flip.count, flip.wins, flip.win_rate) == (1, 0, 0.0)
    assert flip.net_pnl == pytest.approx(-3.2005)
    assert flip.average_holding_ms == 2 * MINUTE
    assert (flat.count, flat.wins, flat.win_rate) == (2, 1, 0.5)
    assert flat.net_pnl == pytest.approx(-8.2030 + 2.39725)
    assert flat.average_net == pytest.approx((-8.2030 + 2.39725) / 2)
    assert flat.average_holding_ms == pytest.approx(1.5 * MINUTE)
    assert set(result.to_json()["exit_reasons"]) == {"signal_flip", "signal_exit"}
    assert result.to_json()["average_holding_minutes"] == pytest.approx(5 / 3)


def test_a_fill_that_says_why_names_its_trade_s_exit_reason() -> None:
    stopped = [*FILLS[:2], TimedFill(5, 5 * MINUTE, FILLS[2].fill, "stop_loss"), *FILLS[3:]]
    trades = replay(Segment(Decimal(1000), CLOSES, stopped, MINUTE, 0)).trades
    assert [trade.reason for trade in trades] == ["signal_flip", "stop_loss", "signal_exit"]
    table = exit_reasons(trades)
    assert list(table) == ["signal_flip", "stop_loss", "signal_exit"]
    assert table["stop_loss"].net_pnl == pytest.approx(-8.2030)


RULES = FillRules(
    tick=Decimal("0.1"),
    step=Decimal("0.01"),
    min_quantity=Decimal("0.01"),
    min_notional=Decimal(1),
    maker_fee=Decimal("0.0002"),
    taker_fee=Decimal("0.001"),
    slippage_bps=Decimal(10),
)


def test_buy_and_hold_is_long_from_the_first_open_to_the_last_close_after_fees_and_slippage() -> None:
    opens = np.array([100.0, 101.0, 103.0, 102.0])
    closes = np.array([101.0, 103.0, 102.0, 104.0])
    segment = buy_and_hold(opens, closes, 0, MINUTE, Decimal(1000), 0.5, RULES)
    # Size: 0.5 x 1000 = 500 USDT at the first open 100 -> 5.00 (on the 0.01 step).
    # In: 100 slipped 10 bps = 100.1 (ceil to the 0.1 tick), fee 5 x 100.1 x 0.001 = 0.5005.
    # Out: 104 slipped = 103.896 -> 103.8 (floor to the tick), fee 5 x 103.8 x 0.001 = 0.519.
    # PnL 5 x (103.8 - 100.1) = 18.5; net 18.5 - 0.5005 - 0.519 = 17.4805.
    book = replay(segment)
    assert book.equity.tolist() == pytest.approx([1003.9995, 1013.9995, 1008.9995, 1017.4805], abs=1e-9)
    assert book.open_quantity == 0
    (trade,) = book.trades
    assert (trade.side, trade.quantity, trade.entry_price, trade.exit_price) == (
        1,
        Decimal("5.00"),
        Decimal("100.1"),
        Decimal("103.8"),
    )
    assert trade.fees == Decimal("1.0195")
    assert (trade.reason, trade.entry_ms, trade.exit_ms) == ("end_of_data", 0, 4 * MINUTE)
    figures = metrics([segment])
    assert figures.net_pnl == pytest.approx(17.4805)
    assert figures.total_return == pytest.approx(0.0174805)
    assert figures.fees == pytest.approx(1.0195)
    assert figures.exposure_time == pytest.approx(3 / 4)  # flat again at the last close
    assert figures.max_drawdown == pytest.approx((1013.9995 - 1008.9995) / 1013.9995)


def test_buy_and_hold_too_small_for_the_venue_stays_flat() -> None:
    segment = buy_and_hold(np.array([100.0, 100.0]), np.array([100.0, 120.0]), 0, MINUTE, Decimal(1), 0.5, RULES)
    assert segment.fills == []  # 0.5 USDT is under the 1 USDT minimum notional
    assert metrics([segment]).net_pnl == 0


def test_daily_returns_are_the_equity_at_each_utc_day_s_last_close() -> None:
    half_day = MS_PER_DAY // 2
    # Bars of 12 hours from 12:00 on day 0: day 0 has one bar, days 1 and 2 two each.
    segment = Segment(Decimal(1000), np.ones(5), [], half_day, 20_000 * MS_PER_DAY + half_day)
    equity = np.array([1010.0, 1000.0, 1030.0, 1030.0, 1050.0])
    assert daily_returns(equity, segment).tolist() == pytest.approx([1010 / 1000 - 1, 1030 / 1010 - 1, 1050 / 1030 - 1])


def test_daily_sharpe_is_annualised_by_365_days_and_is_none_under_a_week() -> None:
    closes = np.array([100.0, 110, 105, 120, 115, 125, 130, 128])
    held = [fill(0, "BUY", "1", "100", "0", step=MS_PER_DAY)]  # long 1 @ 100 at the first open, no fee
    # Daily bars from midnight: the equity is 1000 + (close - 100), one return per day.
    equity = [1000, 1010, 1005, 1020, 1015, 1025, 1030, 1028]
    week = metrics([Segment(Decimal(1000), closes, held, MS_PER_DAY, 0)])
    returns = [equity[0] / 1000 - 1] + [equity[i] / equity[i - 1] - 1 for i in range(1, 8)]
    mean = sum(returns) / len(returns)
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    downside = math.sqrt(sum(min(r, 0) ** 2 for r in returns) / len(returns))
    assert week.days == 8
    assert week.daily_sharpe == pytest.approx(mean / std * math.sqrt(365))
    assert week.daily_sortino == pytest.approx(mean / downside * math.sqrt(365))
    six_days = metrics([Segment(Decimal(1000), closes[:6], held, MS_PER_DAY, 0)])
    assert six_days.days == 6
    assert six_days.daily_sharpe is None
    assert six_days.daily_sortino is None
    assert six_days.to_json()["daily_sharpe"] is None
    assert "sharpe" not in week.to_json(), "the per-bar figure is gone, not renamed into a daily one"


def test_a_backtest_s_open_position_at_the_end_is_marked_as_a_market_exit_would_leave_it() -> None:
    closes = np.array([100.0, 104.0])
    entry = TimedFill(0, 0, Fill("BUY", Decimal(5), Decimal("100.1"), Decimal("0.5005"), "taker"))
    marked = replay(Segment(Decimal(1000), closes, [entry], MINUTE, 0))
    # At the close: 5 x (104 - 100.1) = 19.5 unrealised, less the entry fee: 1018.9995.
    assert marked.equity[-1] == pytest.approx(1018.9995)
    exited = replay(Segment(Decimal(1000), closes, [entry], MINUTE, 0, exit_rules=RULES))
    # As a market sell at 104 would leave it: 103.896 floors to 103.8, fee 5 x 103.8 x 0.001 = 0.519;
    # 1000 + 5 x (103.8 - 100.1) - 0.5005 - 0.519 = 1017.4805 (buy-and-hold's figure on these bars).
    assert exited.equity[-1] == pytest.approx(1017.4805)
    assert exited.equity[0] == marked.equity[0]
    assert exited.fees == Decimal("1.0195")
    assert exited.open_quantity == 5
    assert exited.open_trade is not None
    assert exited.open_trade.net == Decimal("17.4805")
