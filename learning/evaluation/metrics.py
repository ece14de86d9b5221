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
the final mark); the book keeps it as `open_trade`, marked at the last close with the reason
`end_of_data`, for the exit-reason table, the trade list and the tape. A backtest's segment marks it as
a market exit at that close would (`Segment.exit_rules`: slippage and the taker fee, in `fees`), as
buy-and-hold pays its own exit; a paper run's is marked at the close.

Every trade has an exit reason: the fill's own (a run's trades carry the daemon's: target, stop_loss,
take_profit, operator), else what the fill did: `signal_exit` (the policy's target took the position
to flat) or `signal_flip` (the target crossed to the other side).

Sharpe and Sortino are computed from daily returns: the equity at the close of each UTC day's last bar
over the previous day's (the segment's starting equity for its first day), annualised by the square
root of 365 (crypto trades every day of the year). Under `MIN_SHARPE_DAYS` days of bars they are None:
a handful of daily returns says nothing.

Buy-and-hold (`buy_and_hold`) is the market change a trader compares against: long from the first
bar's open to the last bar's close, at the strategy's exposure, paying the same fees and slippage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from domain.fills import Fill, FillRules, Position, exit_fill, market_fill, rebalance_quantity
from domain.funding import funding_payment

Floats = npt.NDArray[np.float64]
MS_PER_DAY = 86_400_000
DAYS_PER_YEAR = 365
"""Crypto trades every day: daily returns are annualised by the square root of 365, not 252."""
MIN_SHARPE_DAYS = 7
"""Below a week of bars, Sharpe and Sortino are None (n/a)."""
END_OF_DATA = "end_of_data"
SIGNAL_EXIT = "signal_exit"
SIGNAL_FLIP = "signal_flip"
BUY_AND_HOLD = "buy_and_hold"


@dataclass(frozen=True, slots=True)
class TimedFill:
    bar: int
    """Index of the bar (within its segment) during which the order filled."""
    time_ms: int
    fill: Fill
    reason: str | None = None
    """Why the order was sent, when the caller knows (a closing fill's reason becomes its trade's)."""


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
    reason: str = SIGNAL_EXIT
    """Why it closed (`end_of_data` for a position still open at the end, marked at the last close)."""
    funding: Decimal = Decimal(0)
    """Funding paid while it was open (negative: received)."""

    @property
    def net(self) -> Decimal:
        """After fees and funding, as a run's trade row stores its realised PnL."""
        return self.pnl - self.fees - self.funding

    @property
    def holding_ms(self) -> int:
        return self.exit_ms - self.entry_ms


@dataclass(frozen=True)
class Segment:
    initial_equity: Decimal
    close: Floats
    """The close of every bar of the segment."""
    fills: Sequence[TimedFill]
    interval_ms: int
    start_ms: int
    """Open time of the first bar; bar i opens at `start_ms + i * interval_ms`."""
    exit_rules: FillRules | None = None
    """Set: a position still open at the end is marked as a market exit at the last close would leave
    it (slippage and the taker fee), so a backtest does not end on a free exit; None: at the close."""
    funding_rates: Floats | None = None
    """The funding rate charged at each bar's close (`domain.funding`), on the position held through the
    bar; None: none charged."""

    @property
    def end_ms(self) -> int:
        """Close time of the last bar."""
        return self.start_ms + len(self.close) * self.interval_ms


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
    open_trade: Trade | None = None
    """The position still open at the end, as a trade marked at the last close (reason `end_of_data`);
    not counted among `trades`."""
    funding: Decimal = Decimal(0)
    """Funding paid over the segment (negative: received)."""


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
    rates = segment.funding_rates
    if rates is not None and len(rates) != bars:
        raise ValueError("one funding rate per bar")
    funding = Decimal(0)
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
        if rates is not None and rates[bar]:
            paid = funding_payment(position.quantity, mark, float(rates[bar]))
            balance -= paid
            funding += paid
            if open_trade is not None:
                open_trade.funding += paid
        equity[bar] = float(balance + position.unrealised(mark))
        held[bar] = float(position.quantity)
    last = Decimal(repr(float(segment.close[-1]))) if bars else Decimal(0)
    marked = None
    exit_fee = Decimal(0)
    if position.quantity != 0 and segment.exit_rules is not None:
        # The exit a market order at the last close would make: its slipped price and its fee.
        closing = exit_fill(position.quantity, last, segment.exit_rules)
        last, exit_fee = closing.price, closing.fee
        equity[-1] = float(balance + position.unrealised(last) - exit_fee)
    if open_trade is not None and position.quantity != 0:
        # Realised so far on reductions, plus what is left marked at the last close.
        value = open_trade.exit_value + abs(position.quantity) * last
        marked = Trade(
            open_trade.side,
            open_trade.entry_ms,
            segment.end_ms,
            open_trade.entry_price,
            value / (open_trade.exit_quantity + abs(position.quantity)),
            open_trade.quantity,
            open_trade.pnl + position.unrealised(last),
            open_trade.fees + exit_fee,
            END_OF_DATA,
            open_trade.funding,
        )
    return SegmentBook(
        equity,
        held,
        tuple(trades),
        position.fees + exit_fee,
        turnover,
        position.quantity,
        position.unrealised(last),
        marked,
        funding,
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
    funding: Decimal = Decimal(0)


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
        timed.reason or (SIGNAL_EXIT if after == 0 else SIGNAL_FLIP),
        trade.funding,
    )
    if after == 0:
        return None, closed
    opened = _OpenTrade(1 if after > 0 else -1, timed.time_ms, fill.price, abs(after), fees=fill.fee - closing_fee)
    return opened, closed


@dataclass(frozen=True)
class ExitReasonFigures:
    """The trades that closed for one reason."""

    count: int
    wins: int
    net_pnl: float
    average_holding_ms: float

    @property
    def win_rate(self) -> float:
        return self.wins / self.count

    @property
    def average_net(self) -> float:
        return self.net_pnl / self.count

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "wins": self.wins,
            "win_rate": self.win_rate,
            "average_net_pnl": self.average_net,
            "net_pnl": self.net_pnl,
            "average_holding_minutes": self.average_holding_ms / 60_000,
        }


def exit_reasons(trades: Sequence[Trade]) -> dict[str, ExitReasonFigures]:
    """Per exit reason, in the order the reasons first occur: count, wins, net PnL, holding time."""
    grouped: dict[str, list[Trade]] = {}
    for trade in trades:
        grouped.setdefault(trade.reason, []).append(trade)
    return {
        reason: ExitReasonFigures(
            len(members),
            sum(1 for trade in members if trade.net > 0),
            float(sum((trade.net for trade in members), Decimal(0))),
            sum(trade.holding_ms for trade in members) / len(members),
        )
        for reason, members in grouped.items()
    }


@dataclass(frozen=True)
class Metrics:
    """The figures an evaluation reports (and the promotion gates read). Ratios are fractions; money
    is in the quote currency (USDT). None where a figure is undefined (no trades, no losing trade, no
    variation, too few days for a Sharpe)."""

    net_pnl: float
    total_return: float
    """Net PnL over the starting equity (summed over segments)."""
    win_rate: float | None
    trade_count: int
    max_drawdown: float
    daily_sharpe: float | None
    """Mean daily return over its standard deviation, times the square root of 365 (UTC days)."""
    daily_sortino: float | None
    days: float
    """The span's length in days (bars times the interval), which decides whether a Sharpe is given."""
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
    average_holding_ms: float | None = None
    """Mean time from entry to exit of the closed trades."""
    best_trade: float | None = None
    """The closed trade with the highest net PnL (its net PnL)."""
    worst_trade: float | None = None
    reasons: dict[str, ExitReasonFigures] = field(default_factory=dict)
    """Closed trades by exit reason, and the positions still open at the end under `end_of_data`."""
    funding: float = 0.0
    """Funding paid (negative: received); in the net PnL, like fees."""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        document = {
            "net_pnl": self.net_pnl,
            "return": self.total_return,
            "win_rate": self.win_rate,
            "trade_count": self.trade_count,
            "max_drawdown": self.max_drawdown,
            "daily_sharpe": self.daily_sharpe,
            "daily_sortino": self.daily_sortino,
            "days": self.days,
            "exposure_time": self.exposure_time,
            "turnover": self.turnover,
            "average_trade": self.average_trade,
            "profit_factor": self.profit_factor,
            "fees": self.fees,
            "funding": self.funding,
            "bars": self.bars,
            "wins": self.wins,
            "losses": self.losses,
            "open_quantity": self.open_quantity,
            "unrealised_pnl": self.unrealised_pnl,
            "average_holding_minutes": None if self.average_holding_ms is None else self.average_holding_ms / 60_000,
            "best_trade": self.best_trade,
            "worst_trade": self.worst_trade,
            "exit_reasons": {reason: figures.to_json() for reason, figures in self.reasons.items()},
        }
        return document | self.extra


def metrics(segments: Sequence[Segment], books: Sequence[SegmentBook] | None = None) -> Metrics:
    """The metrics of one segment (a backtest) or of several (walk-forward folds, each traded from its
    own starting equity): PnL, fees, turnover and trades add up; the drawdown is the worst segment's;
    Sharpe and Sortino are annualised from the daily returns of all segments. `books`: the segments'
    replays when the caller has them already."""
    if not segments:
        raise ValueError("metrics need at least one segment")
    if books is None:
        books = [replay(segment) for segment in segments]
    elif len(books) != len(segments):
        raise ValueError("one book per segment")
    returns = np.concatenate(
        [daily_returns(book.equity, segment) for book, segment in zip(books, segments, strict=True)]
    )
    trades = [trade for book in books for trade in book.trades]
    still_open = [book.open_trade for book in books if book.open_trade is not None]
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
    days = sum(len(segment.close) * segment.interval_ms for segment in segments) / MS_PER_DAY
    enough = days >= MIN_SHARPE_DAYS
    return Metrics(
        net_pnl=net_pnl,
        total_return=net_pnl / initial,
        win_rate=wins / len(trades) if trades else None,
        trade_count=len(trades),
        max_drawdown=max(max_drawdown(book.equity) for book in books),
        daily_sharpe=_ratio(returns, float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0) if enough else None,
        daily_sortino=_ratio(returns, _downside_deviation(returns)) if enough else None,
        days=days,
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
        average_holding_ms=sum(trade.holding_ms for trade in trades) / len(trades) if trades else None,
        best_trade=max(nets) if nets else None,
        worst_trade=min(nets) if nets else None,
        reasons=exit_reasons([*trades, *still_open]),
        funding=float(sum((book.funding for book in books), Decimal(0))),
    )


def daily_returns(equity: Floats, segment: Segment) -> Floats:
    """One return per UTC day the segment has bars in: the equity at the close of the day's last bar
    over the previous day's (over the starting equity for the first day). Partial first and last days
    count as they are."""
    if not len(equity):
        return np.empty(0)
    days = (segment.start_ms + np.arange(len(equity), dtype=np.int64) * segment.interval_ms) // MS_PER_DAY
    last_of_day = np.flatnonzero(np.diff(days, append=days[-1] + 1))
    closes = equity[last_of_day]
    previous = np.concatenate([[float(segment.initial_equity)], closes[:-1]])
    return np.asarray(closes / previous - 1.0, dtype=np.float64)


def buy_and_hold(
    open_: Floats,
    close: Floats,
    start_ms: int,
    interval_ms: int,
    initial_equity: Decimal,
    max_exposure: float,
    rules: FillRules,
    funding_rates: Floats | None = None,
) -> Segment:
    """The market change as a segment to book like any other (`replay`, `metrics`): a market buy at
    the first bar's open sized as a full target position (`max_exposure` times the starting equity,
    as `rebalance_quantity` sizes a strategy's order), held, and a market sell at the last bar's close,
    both slipped and charged the taker fee as every order is, and the funding of `funding_rates` while it is
    held. No fills (a flat line) when the size falls below the venue's minimums."""
    if len(close) < 1 or len(open_) != len(close):
        raise ValueError("buy-and-hold needs bars with an open and a close each")
    first = Decimal(repr(float(open_[0])))
    quantity = rebalance_quantity(1.0, initial_equity * Decimal(repr(max_exposure)), first, Decimal(0), rules)
    fills: list[TimedFill] = []
    if quantity > 0:
        last_bar = len(close) - 1
        fills = [
            TimedFill(0, start_ms, market_fill("BUY", quantity, first, rules)),
            TimedFill(
                last_bar,
                start_ms + len(close) * interval_ms,
                market_fill("SELL", quantity, Decimal(repr(float(close[-1]))), rules),
                END_OF_DATA,
            ),
        ]
    return Segment(initial_equity, close, fills, interval_ms, start_ms, funding_rates=funding_rates)


def max_drawdown(equity: Floats) -> float:
    """The largest fall from a running peak, as a fraction of that peak."""
    if not len(equity):
        return 0.0
    peaks = np.maximum.accumulate(equity)
    return float(np.max((peaks - equity) / peaks))


def _downside_deviation(returns: Floats) -> float:
    """The root mean square of the losing returns, over all returns (Sortino's denominator)."""
    return float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2))) if len(returns) else 0.0


def _ratio(returns: Floats, deviation: float) -> float | None:
    if len(returns) < 2 or not deviation > 0 or not math.isfinite(deviation):
        return None
    return float(np.mean(returns)) / deviation * math.sqrt(DAYS_PER_YEAR)
