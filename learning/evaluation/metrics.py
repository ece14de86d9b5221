"""Performance metrics computed from fills and closes alone, the same way for a backtest, a walk-forward
fold, their aggregate and a paper run.

A *segment* is a span of consecutive bars traded from flat with a starting equity. Its equity curve has
one point per bar: the balance (realised PnL less fees) plus the open position marked at the bar's
close. A fill belongs to the bar during which it happened (backtest fills happen at the bar's open, so
the bar's close already marks them).

A *trade* runs from flat to flat. A fill that flips the position closes the trade with the part that
brings it to zero and opens the next one with the rest; its fee is split between them in proportion.
A trade's net PnL is its realised PnL less all its fees. A position still open at the segment's end is
not a trade (it is reported as `open_quantity` and `unrealised_pnl`, and it is in the net PnL through
the final mark).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from domain.fills import Fill, Position

Floats = npt.NDArray[np.float64]
MS_PER_YEAR = 365 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TimedFill:
    bar: int
    """Index of the bar (within its segment) during which the order filled."""
    time_ms: int
    fill: Fill


@dataclass(frozen=True, slots=True)
class Trade:
    side: int
    """1 long, -1 short."""
    entry_ms: int
    exit_ms: int
    entry_price: Decimal
    """Average entry price."""
    exit_price: Decimal
    """Average price of the fills that reduced and closed it."""
    quantity: Decimal
    """The largest size the position reached."""
    pnl: Decimal
    """Realised, before fees."""
    fees: Decimal

    @property
    def net(self) -> Decimal:
        return self.pnl - self.fees


@dataclass(frozen=True)
class Segment:
    initial_equity: Decimal
    close: Floats
    """The close of every bar of the segment."""
    fills: Sequence[TimedFill]
    interval_ms: int


@dataclass(frozen=True, eq=False)
class SegmentBook:
    """What a segment's fills did: its equity curve, position per bar and trades."""

    equity: Floats
    position: Floats
    """The position's signed quantity at each bar's close."""
    trades: tuple[Trade, ...]
    fees: Decimal
    turnover: Decimal
    """Traded notional."""
    open_quantity: Decimal
    unrealised: Decimal


def replay(segment: Segment) -> SegmentBook:
    """Book the fills bar by bar: the independent accounting every metric is computed from."""
    position = Position()
    balance = segment.initial_equity
    bars = len(segment.close)
    equity = np.empty(bars)
    held = np.empty(bars)
    trades: list[Trade] = []
    open_trade: _OpenTrade | None = None
    turnover = Decimal(0)
    fills = sorted(segment.fills, key=lambda timed: (timed.bar, timed.time_ms))
    if fills and not 0 <= fills[0].bar <= fills[-1].bar < bars:
        raise ValueError("a fill lies outside the segment's bars")
    cursor = 0
    for bar in range(bars):
        while cursor < len(fills) and fills[cursor].bar == bar:
            timed = fills[cursor]
            cursor += 1
            before = position.quantity
            pnl = position.apply(timed.fill)
            balance += pnl - timed.fill.fee
            turnover += timed.fill.quantity * timed.fill.price
            open_trade, closed = _book_trade(open_trade, before, position.quantity, timed, pnl)
            if closed is not None:
                trades.append(closed)
        mark = Decimal(repr(float(segment.close[bar])))
        equity[bar] = float(balance + position.unrealised(mark))
        held[bar] = float(position.quantity)
    last = Decimal(repr(float(segment.close[-1]))) if bars else Decimal(0)
    return SegmentBook(
        equity, held, tuple(trades), position.fees, turnover, position.quantity, position.unrealised(last)
    )


@dataclass
class _OpenTrade:
    side: int
    entry_ms: int
    entry_price: Decimal
    quantity: Decimal
    pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    exit_value: Decimal = Decimal(0)
    exit_quantity: Decimal = Decimal(0)


def _book_trade(
    trade: _OpenTrade | None, before: Decimal, after: Decimal, timed: TimedFill, pnl: Decimal
) -> tuple[_OpenTrade | None, Trade | None]:
    fill = timed.fill
    if trade is None:  # flat before: the fill opens a trade
        side = 1 if after > 0 else -1
        return _OpenTrade(side, timed.time_ms, fill.price, abs(after), fees=fill.fee), None
    if (after > 0) == (before > 0) and after != 0:  # added to or reduced, same side
        trade.fees += fill.fee
        if abs(after) > abs(before):
            trade.quantity = max(trade.quantity, abs(after))
        else:
            trade.pnl += pnl
            trade.exit_value += fill.quantity * fill.price
            trade.exit_quantity += fill.quantity
        return trade, None
    closing = abs(before)
    closing_fee = fill.fee if after == 0 else (fill.fee * closing / fill.quantity)
    trade.fees += closing_fee
    trade.pnl += pnl
    trade.exit_value += closing * fill.price
    trade.exit_quantity += closing
    closed = Trade(
        trade.side,
        trade.entry_ms,
        timed.time_ms,
        trade.entry_price,
        trade.exit_value / trade.exit_quantity,
        trade.quantity,
        trade.pnl,
        trade.fees,
    )
    if after == 0:
        return None, closed
    opened = _OpenTrade(1 if after > 0 else -1, timed.time_ms, fill.price, abs(after), fees=fill.fee - closing_fee)
    return opened, closed


@dataclass(frozen=True)
class Metrics:
    """The figures an evaluation reports (and the promotion gates read). Ratios are fractions; money
    is in the quote currency (USDT). None where a figure is undefined (no trades, no losing trade, no
    variation)."""

    net_pnl: float
    total_return: float
    """Net PnL over the starting equity (summed over segments)."""
    win_rate: float | None
    trade_count: int
    max_drawdown: float
    sharpe: float | None
    sortino: float | None
    exposure_time: float
    """Fraction of bars that closed with a position open."""
    turnover: float
    """Traded notional over the starting equity."""
    average_trade: float | None
    profit_factor: float | None
    fees: float
    bars: int
    wins: int
    losses: int
    open_quantity: float
    unrealised_pnl: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        document = {
            "net_pnl": self.net_pnl,
            "return": self.total_return,
            "win_rate": self.win_rate,
            "trade_count": self.trade_count,
            "max_drawdown": self.max_drawdown,
            "sharpe": self.sharpe,
            "sortino": self.sortino,
            "exposure_time": self.exposure_time,
            "turnover": self.turnover,
            "average_trade": self.average_trade,
            "profit_factor": self.profit_factor,
            "fees": self.fees,
            "bars": self.bars,
            "wins": self.wins,
            "losses": self.losses,
            "open_quantity": self.open_quantity,
            "unrealised_pnl": self.unrealised_pnl,
        }
        return document | self.extra


def metrics(segments: Sequence[Segment], books: Sequence[SegmentBook] | None = None) -> Metrics:
    """The metrics of one segment (a backtest) or of several (walk-forward folds, each traded from its
    own starting equity): PnL, fees, turnover and trades add up; the drawdown is the worst segment's;
    Sharpe and Sortino are annualised from the per-bar returns of all segments. `books`: the segments'
    replays when the caller has them already."""
    if not segments:
        raise ValueError("metrics need at least one segment")
    if books is None:
        books = [replay(segment) for segment in segments]
    elif len(books) != len(segments):
        raise ValueError("one book per segment")
    returns = np.concatenate([book.equity[1:] / book.equity[:-1] - 1.0 for book in books])
    trades = [trade for book in books for trade in book.trades]
    nets = [float(trade.net) for trade in trades]
    wins = sum(1 for net in nets if net > 0)
    losses = sum(1 for net in nets if net < 0)
    gross_win = sum(net for net in nets if net > 0)
    gross_loss = -sum(net for net in nets if net < 0)
    initial = sum(float(segment.initial_equity) for segment in segments)
    net_pnl = sum(
        float(book.equity[-1]) - float(segment.initial_equity) for book, segment in zip(books, segments, strict=True)
    )
    bars = sum(len(book.equity) for book in books)
    per_year = MS_PER_YEAR / segments[0].interval_ms
    return Metrics(
        net_pnl=net_pnl,
        total_return=net_pnl / initial,
        win_rate=wins / len(trades) if trades else None,
        trade_count=len(trades),
        max_drawdown=max(max_drawdown(book.equity) for book in books),
        sharpe=_ratio(returns, float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0, per_year),
        sortino=_ratio(returns, _downside_deviation(returns), per_year),
        exposure_time=sum(int(np.count_nonzero(book.position)) for book in books) / bars,
        turnover=float(sum((book.turnover for book in books), Decimal(0))) / initial,
        average_trade=sum(nets) / len(nets) if nets else None,
        profit_factor=gross_win / gross_loss if gross_loss > 0 else None,
        fees=float(sum((book.fees for book in books), Decimal(0))),
        bars=bars,
        wins=wins,
        losses=losses,
        open_quantity=float(sum((book.open_quantity for book in books), Decimal(0))),
        unrealised_pnl=float(sum((book.unrealised for book in books), Decimal(0))),
    )


def max_drawdown(equity: Floats) -> float:
    """The largest fall from a running peak, as a fraction of that peak."""
    if not len(equity):
        return 0.0
    peaks = np.maximum.accumulate(equity)
    return float(np.max((peaks - equity) / peaks))


def _downside_deviation(returns: Floats) -> float:
    """The root mean square of the losing returns, over all returns (Sortino's denominator)."""
    return float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2))) if len(returns) else 0.0


def _ratio(returns: Floats, deviation: float, per_year: float) -> float | None:
    if len(returns) < 2 or not deviation > 0 or not math.isfinite(deviation):
        return None
    return float(np.mean(returns)) / deviation * math.sqrt(per_year)
