"""The metrics against hand-checked figures on a scripted trade list: a long closed by a flip into a
short, the short closed at a loss, then a winning short. Every figure below was worked out by hand
(fees included) in the comments, not by the code under test."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from domain.fills import Fill
from learning.evaluation.metrics import Segment, TimedFill, max_drawdown, metrics, replay

MINUTE = 60_000
CLOSES = np.array([100, 102, 101, 99, 103, 104, 103, 101], dtype=np.float64)


def fill(bar: int, side: str, quantity: str, price: str, fee: str) -> TimedFill:
    return TimedFill(bar, bar * MINUTE, Fill(side, Decimal(quantity), Decimal(price), Decimal(fee), "taker"))  # type: ignore[arg-type]


FILLS = [
    fill(1, "BUY", "2", "101", "0.101"),  # long 2 @ 101
    fill(3, "SELL", "4", "99.5", "0.199"),  # closes the long (-3.00), opens short 2 @ 99.5
    fill(5, "BUY", "2", "103.5", "0.1035"),  # closes the short (-8.00)
    fill(6, "SELL", "1", "104", "0.052"),  # short 1 @ 104
    fill(7, "BUY", "1", "101.5", "0.05075"),  # closes it (+2.50)
]
SEGMENT = Segment(Decimal(1000), CLOSES, FILLS, MINUTE)

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
    # Sharpe and Sortino from the per-bar returns, annualised over a year of minutes.
    returns = [EQUITY[i] / EQUITY[i - 1] - 1 for i in range(1, len(EQUITY))]
    mean = sum(returns) / len(returns)
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    downside = math.sqrt(sum(min(r, 0) ** 2 for r in returns) / len(returns))
    assert result.sharpe == pytest.approx(mean / std * math.sqrt(525_600))
    assert result.sortino == pytest.approx(mean / downside * math.sqrt(525_600))


def test_an_open_position_is_marked_but_is_not_a_trade() -> None:
    segment = Segment(Decimal(1000), CLOSES[:5], FILLS[:2], MINUTE)
    result = metrics([segment])
    assert result.trade_count == 1
    assert result.open_quantity == -2
    assert result.unrealised_pnl == pytest.approx(-7)  # short 2 @ 99.5 marked at 103
    assert result.net_pnl == pytest.approx(989.7 - 1000)


def test_segments_add_up_and_the_worst_drawdown_counts() -> None:
    quiet = Segment(Decimal(1000), np.array([50.0, 51.0, 52.0]), [], MINUTE)
    result = metrics([SEGMENT, quiet])
    assert result.net_pnl == pytest.approx(-9.00625)
    assert result.total_return == pytest.approx(-9.00625 / 2000)
    assert result.trade_count == 3
    assert result.bars == 11
    assert result.exposure_time == pytest.approx(5 / 11)
    assert result.max_drawdown == pytest.approx(metrics([SEGMENT]).max_drawdown)


def test_undefined_figures_are_none_not_made_up() -> None:
    flat = metrics([Segment(Decimal(1000), np.full(10, 100.0), [], MINUTE)])
    assert flat.trade_count == 0
    assert flat.win_rate is None
    assert flat.average_trade is None
    assert flat.profit_factor is None
    assert flat.sharpe is None
    assert flat.sortino is None
    assert flat.net_pnl == 0
    assert flat.max_drawdown == 0


def test_max_drawdown_is_a_fraction_of_the_running_peak() -> None:
    assert max_drawdown(np.array([100.0, 120.0, 90.0, 130.0, 117.0])) == pytest.approx(0.25)


def test_a_fill_outside_the_segment_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        replay(Segment(Decimal(1000), CLOSES[:3], FILLS[:2], MINUTE))
