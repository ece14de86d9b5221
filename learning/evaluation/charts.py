"""PNG charts for reports (matplotlib, headless): equity and drawdown beside buy-and-hold, and the
tape view, candles with the trades' entries and exits, open positions and fold boundaries overlaid.

The tape view of a long span merges consecutive candles so that at most `max_candles` are drawn (a
month of minutes would otherwise be a grey smear); trades are drawn at their own times and prices. Past
`JOIN_LIMIT` trades the entry-to-exit lines are left out and the markers shrink: the page's interactive
tape (`interactive.py`) is the one to read then, this PNG is the overview.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes

from domain.candle_columns import CandleColumns
from learning.evaluation.metrics import END_OF_DATA, Trade

Floats = npt.NDArray[np.float64]
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
DPI = 110
JOIN_LIMIT = 200
BENCHMARK_COLOUR = "#424242"
OPEN_COLOUR = "#ff8f00"


@dataclass(frozen=True, eq=False)
class Curve:
    name: str
    times_ms: npt.NDArray[np.int64]
    values: Floats


def equity_and_drawdown(
    path: Path,
    curves: Sequence[Curve],
    drawdown: Curve,
    boundaries_ms: Sequence[int],
    title: str,
    benchmark: Curve | None = None,
) -> None:
    """Cumulative PnL of each policy over time (and of buy-and-hold, dashed), and the first policy's
    drawdown below it."""
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": (3, 1)}, layout="constrained"
    )
    try:
        for index, curve in enumerate(curves):
            width = 1.8 if index == 0 else 1.0
            top.plot(_dates(curve.times_ms), curve.values, label=curve.name, linewidth=width, color=_colour(index))
        if benchmark is not None:
            top.plot(
                _dates(benchmark.times_ms),
                benchmark.values,
                label=benchmark.name,
                linewidth=1.2,
                linestyle="--",
                color=BENCHMARK_COLOUR,
            )
        for boundary in boundaries_ms:
            for axis in (top, bottom):
                axis.axvline(_dates(np.array([boundary]))[0], color="#999999", linewidth=0.8, linestyle="--")
        top.axhline(0, color="#444444", linewidth=0.6)
        top.set_ylabel("cumulative PnL (USDT)")
        top.set_title(title)
        top.legend(loc="upper left", fontsize=8)
        bottom.fill_between(_dates(drawdown.times_ms), -100 * drawdown.values, 0, color="#d62728", alpha=0.35)
        bottom.set_ylabel(f"drawdown %\n{drawdown.name}")
        _date_axis(bottom)
        figure.savefig(path, dpi=DPI)
    finally:
        plt.close(figure)


def candles_with_trades(
    path: Path,
    candles: CandleColumns,
    trades: Sequence[Trade],
    title: str,
    max_candles: int = 400,
    open_entries: Sequence[tuple[int, float, int]] = (),
    boundaries_ms: Sequence[int] = (),
) -> None:
    """The tape view: candles (merged to at most `max_candles`), entries as triangles (up: long, down:
    short), exits as crosses, each trade's entry and exit joined (green: won, red: lost) while there are
    at most `JOIN_LIMIT` trades. A trade whose reason is `end_of_data` was still open where its span
    ended (marked there): drawn orange, its mark a square. `open_entries`: (time ms, price, side) of
    trades still open with no exit, drawn as orange entries with a dotted line at their price.
    `boundaries_ms`: fold boundaries, dashed."""
    merged = merge_candles(candles, max_candles)
    many = len(trades) > JOIN_LIMIT
    figure, axis = plt.subplots(figsize=(12, 5.5), layout="constrained")
    try:
        if len(merged.open_time_ms):
            step_days = (merged.span_ms / 86_400_000) * 0.7
            opens_d = _dates(merged.open_time_ms) + (merged.span_ms / 86_400_000) / 2
            rising = merged.close >= merged.open
            colours = np.where(rising, "#26a69a", "#ef5350")
            axis.vlines(opens_d, merged.low, merged.high, colors=list(colours), linewidth=0.7)
            bottoms = np.minimum(merged.open, merged.close)
            heights = np.maximum(np.abs(merged.close - merged.open), 1e-12)
            axis.bar(opens_d, heights, bottom=bottoms, width=step_days, color=colours, linewidth=0)
        for boundary in boundaries_ms:
            axis.axvline(_dates(np.array([boundary]))[0], color="#616161", linewidth=0.9, linestyle="--")
        if trades:
            _draw_trades(axis, trades, many)
        for time_ms, price, side in open_entries:
            when = _dates(np.array([time_ms]))[0]
            axis.scatter([when], [price], marker="^" if side > 0 else "v", s=40, color=OPEN_COLOUR, zorder=4)
            axis.axhline(price, color=OPEN_COLOUR, linewidth=0.7, linestyle=":")
        still_open = len(open_entries) + sum(1 for trade in trades if trade.reason == END_OF_DATA)
        closed = sum(1 for trade in trades if trade.reason != END_OF_DATA)
        opened = f", {still_open} open" if still_open else ""
        axis.set_title(f"{title} ({len(candles)} candles, {closed} trades{opened})")
        axis.set_ylabel("price")
        _date_axis(axis)
        figure.savefig(path, dpi=DPI)
    finally:
        plt.close(figure)


def _draw_trades(axis: Axes, trades: Sequence[Trade], many: bool) -> None:
    entries = _dates(np.array([trade.entry_ms for trade in trades]))
    exits = _dates(np.array([trade.exit_ms for trade in trades]))
    entry_prices = np.array([float(trade.entry_price) for trade in trades])
    exit_prices = np.array([float(trade.exit_price) for trade in trades])
    marked = np.array([trade.reason == END_OF_DATA for trade in trades])
    longs = np.array([trade.side > 0 for trade in trades])
    if not many:
        for index, trade in enumerate(trades):
            colour = OPEN_COLOUR if marked[index] else ("#2e7d32" if trade.net > 0 else "#c62828")
            axis.plot(
                [entries[index], exits[index]],
                [entry_prices[index], exit_prices[index]],
                color=colour,
                linewidth=0.8,
                alpha=0.8,
            )
    size = 10 if many else 28
    for side, marker in ((longs, "^"), (~longs, "v")):
        for group, colour in ((side & ~marked, "#1565c0"), (side & marked, OPEN_COLOUR)):
            if group.any():
                axis.scatter(entries[group], entry_prices[group], marker=marker, s=size, color=colour, zorder=3)
    if (~marked).any():
        axis.scatter(exits[~marked], exit_prices[~marked], marker="x", s=size * 0.8, color="#212121", zorder=3)
    if marked.any():
        axis.scatter(exits[marked], exit_prices[marked], marker="s", s=size, color=OPEN_COLOUR, zorder=4)


@dataclass(frozen=True, eq=False)
class MergedCandles:
    open_time_ms: npt.NDArray[np.int64]
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    span_ms: float


def merge_candles(candles: CandleColumns, max_candles: int) -> MergedCandles:
    """Consecutive candles merged in groups of equal size (open of the first, extremes, close of the last)."""
    count = len(candles)
    group = max(1, -(-count // max_candles))
    starts = np.arange(0, count, group)
    ends = np.minimum(starts + group, count) - 1
    step = float(np.median(np.diff(candles.open_time_ms))) if count > 1 else 60_000.0
    return MergedCandles(
        candles.open_time_ms[starts],
        candles.open[starts],
        np.maximum.reduceat(candles.high, starts) if count else candles.high,
        np.minimum.reduceat(candles.low, starts) if count else candles.low,
        candles.close[ends],
        step * group,
    )


def merge_curves(parts: Mapping[str, Sequence[Curve]]) -> list[Curve]:
    """Each policy's fold curves joined end to end."""
    return [
        Curve(name, np.concatenate([c.times_ms for c in curves]), np.concatenate([c.values for c in curves]))
        for name, curves in parts.items()
    ]


def _dates(times_ms: npt.NDArray[np.int64]) -> Floats:
    """Matplotlib's date numbers: days since its epoch, 1970-01-01."""
    return np.asarray(times_ms, dtype=np.float64) / 86_400_000.0


def _date_axis(axis: Axes) -> None:
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _colour(index: int) -> str:
    return COLOURS[index % len(COLOURS)]
