"""Self-contained HTML reports: one file that opens anywhere (its charts embedded as data URIs, the
interactive tape's library inlined), with the PNG charts and the trade list (CSV) beside it.

An evaluation's report: whether its spans are in or out of sample (a banner at the top), the policies'
aggregate metrics beside buy-and-hold, equity and drawdown over the test spans, the evaluated policy's
exit reasons and trades, the interactive tape with fold boundaries and open positions, the per-fold
table, and the parameters that produced it.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from domain.candle_columns import CandleColumns
from domain.candles import iso_minute
from learning.evaluation import charts, interactive
from learning.evaluation.backtest import BacktestSettings, market_segment
from learning.evaluation.holdout import STOOD_ASIDE
from learning.evaluation.metrics import (
    BUY_AND_HOLD,
    END_OF_DATA,
    MIN_SHARPE_DAYS,
    ExitReasonFigures,
    Metrics,
    Segment,
    SegmentBook,
    Trade,
    metrics,
    replay,
)
from learning.evaluation.sample import Sample
from learning.evaluation.walk_forward import Evaluation

BUY_AND_HOLD_LABEL = "buy & hold"
METRIC_COLUMNS = (
    ("net_pnl", "net PnL", "{:,.2f}"),
    ("return", "return", "{:+.2%}"),
    ("trade_count", "trades", "{:d}"),
    ("win_rate", "win rate", "{:.1%}"),
    ("average_trade", "avg trade", "{:,.2f}"),
    ("best_trade", "best trade", "{:,.2f}"),
    ("worst_trade", "worst trade", "{:,.2f}"),
    ("average_holding_minutes", "avg holding", "duration"),
    ("max_drawdown", "max DD", "{:.2%}"),
    ("daily_sharpe", "Sharpe (daily)", "{:.2f}"),
    ("daily_sortino", "Sortino (daily)", "{:.2f}"),
    ("exposure_time", "exposure", "{:.1%}"),
    ("turnover", "turnover", "{:.1f}x"),
    ("profit_factor", "profit factor", "{:.2f}"),
    ("fees", "fees", "{:,.2f}"),
)
NOT_AVAILABLE = {"daily_sharpe", "daily_sortino"}
"""Shown as `n/a` when missing (too few days), rather than `-`."""
REASON_LABELS = {
    "signal_exit": "signal exit (target flat)",
    "signal_flip": "signal flip (target reversed)",
    END_OF_DATA: "end of data (still open, marked at the last close; not counted as a trade)",
    "target": "target (the policy's decision)",
    "stop_loss": "stop loss",
    "take_profit": "take profit",
    "operator": "operator close",
}
TRADE_COLUMNS = (
    "pair",
    "fold",
    "status",
    "side",
    "quantity",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "fees",
    "funding",
    "pnl",
    "net_pnl",
    "reason",
)
"""The trade list's columns: times in UTC ISO 8601; `pnl` before fees and funding, `net_pnl` after them,
`funding` what the trade paid while open (negative: received; USDT)."""
SHARPE_NOTE = (
    f"Sharpe and Sortino are computed from daily returns of equity (UTC days, the equity at each day's last "
    f"close over the previous day's), annualised by the square root of 365 (crypto trades every day), with no "
    f"risk-free rate; n/a under {MIN_SHARPE_DAYS} days of bars or without variation."
)
PAGE_STYLE = (
    """
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.85rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
img {{ max-width: 100%; }}
pre {{ background: #f6f6f6; padding: 0.75rem; overflow-x: auto; font-size: 0.8rem; }}
.note {{ font-size: 0.8rem; color: #555; }}
.sample {{ padding: 0.75rem 1rem; border-radius: 4px; margin: 0 0 1rem; font-size: 1rem; }}
.sample-in_sample, .sample-partly_in_sample {{ background: #fdecea; border: 2px solid #c62828; }}
.sample-unknown {{ background: #fff4e5; border: 2px solid #ef6c00; }}
.sample-out_of_sample {{ background: #edf7ed; border: 1px solid #2e7d32; }}
"""
    + interactive.STYLE
)


@dataclass(frozen=True, eq=False)
class MarketChange:
    """Buy-and-hold over each evaluated span: what the market did at the strategy's exposure."""

    segments: tuple[Segment, ...]
    books: tuple[SegmentBook, ...]
    metrics: Metrics
    price_changes: tuple[float, ...]
    """Each span's close over its first open, less one (before fees and slippage)."""

    def to_json(self) -> dict[str, Any]:
        figures = self.metrics
        return {
            "net_pnl": figures.net_pnl,
            "return": figures.total_return,
            "max_drawdown": figures.max_drawdown,
            "daily_sharpe": figures.daily_sharpe,
            "fees": figures.fees,
            "price_changes": list(self.price_changes),
        }


def market_change(evaluation: Evaluation, candles: CandleColumns, settings: BacktestSettings) -> MarketChange:
    """`metrics.buy_and_hold` over every evaluated fold's test span, in the evaluation's world (funding
    included)."""
    segments = []
    changes = []
    for outcome in evaluation.evaluated:
        span = candles.take(np.arange(outcome.fold.test_start, outcome.fold.test_end))
        segments.append(market_segment(span, settings))
        changes.append(float(span.close[-1] / span.open[0] - 1.0))
    books = [replay(segment) for segment in segments]
    return MarketChange(tuple(segments), tuple(books), metrics(segments, books), tuple(changes))


def write_evaluation_report(
    directory: Path,
    *,
    title: str,
    subject: str,
    evaluation: Evaluation,
    candles: CandleColumns,
    parameters: Mapping[str, Any],
    sample: Sample,
    market: MarketChange,
    price_decimals: int,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    evaluated = evaluation.evaluated
    names = list(evaluation.aggregate)
    curves: dict[str, list[charts.Curve]] = {name: [] for name in [*names, BUY_AND_HOLD]}
    offsets = dict.fromkeys(curves, 0.0)
    drawdowns: list[charts.Curve] = []
    for index, outcome in enumerate(evaluated):
        times = candles.open_time_ms[outcome.fold.test_start : outcome.fold.test_end]
        booked = {name: (outcome.results[name].segment, outcome.results[name].book) for name in names}
        booked[BUY_AND_HOLD] = (market.segments[index], market.books[index])
        for name, (segment, book) in booked.items():
            start = float(segment.initial_equity)
            curves[name].append(charts.Curve(name, times, book.equity - start + offsets[name]))
            offsets[name] += float(book.equity[-1]) - start
            if name == subject:
                peaks = np.maximum.accumulate(book.equity)
                drawdowns.append(charts.Curve(name, times, (peaks - book.equity) / peaks))
    boundaries = [int(candles.open_time_ms[outcome.fold.test_start]) for outcome in evaluated[1:]]
    merged_drawdown = charts.merge_curves({subject: drawdowns})[0]
    joined = charts.merge_curves(curves)
    benchmark = charts.Curve(BUY_AND_HOLD_LABEL, joined[-1].times_ms, joined[-1].values)
    charts.equity_and_drawdown(
        directory / "equity.png",
        joined[:-1],
        merged_drawdown,
        boundaries,
        f"{sample.headline} PnL over the test spans, beside buy-and-hold",
        benchmark,
    )
    first = evaluated[0].fold.test_start
    last = evaluated[-1].fold.test_end
    subject_books = [outcome.results[subject].book for outcome in evaluated]
    trades = [trade for book in subject_books for trade in book.trades]
    marked = [book.open_trade for book in subject_books if book.open_trade is not None]
    tape_candles = candles.take(np.arange(first, last))
    charts.candles_with_trades(
        directory / "tape.png",
        tape_candles,
        [*trades, *marked],
        f"{subject}: entries and exits",
        boundaries_ms=boundaries,
    )
    pair = str(parameters.get("dataset", {}).get("pair", candles.pair))
    trade_rows = [
        trade_row(trade, pair, outcome.fold.index)
        for outcome in evaluated
        for trade in sorted(_book_trades(outcome.results[subject].book), key=lambda t: t.entry_ms)
    ]
    write_trades_csv(directory / "trades.csv", trade_rows)
    aggregate = evaluation.aggregate[subject]
    fold_header, fold_rows = _fold_table(evaluation, subject, candles, market)
    labels = [outcome.fold.index for outcome in evaluated[1:]]
    tape = interactive.tape(
        "tape-evaluation",
        tape_candles,
        [*trades, *marked],
        precision=price_decimals,
        boundaries=[(time_ms, f"fold {label}") for time_ms, label in zip(boundaries, labels, strict=True)],
        summary=f"{subject}: {len(trades):,} trades, {len(marked)} still open where a span ended",
    )
    sections = [
        sample_banner(sample),
        _section(
            "Metrics over the test spans",
            table_html(*metrics_table({**evaluation.aggregate, BUY_AND_HOLD_LABEL: market.metrics}))
            + _market_note(market, parameters)
            + _risk_note(parameters)
            + f'<p class="note">{html.escape(SHARPE_NOTE)}</p>',
        ),
        _section("Equity and drawdown", image_tag(directory / "equity.png", "equity and drawdown")),
        _section(
            f"Exits and trades of {subject}",
            table_html(*exit_reason_table(aggregate.reasons)) + _trades_note(aggregate, len(trade_rows), len(marked)),
        ),
        _section(
            "Trades on the candles",
            tape
            + "<details><summary>Static overview (PNG)</summary>"
            + image_tag(directory / "tape.png", "candles with entries and exits")
            + "</details>",
        ),
        _section("Folds", table_html(fold_header, fold_rows)),
        _section("Parameters", f"<pre>{html.escape(json.dumps(parameters, indent=2, default=str))}</pre>"),
    ]
    return write_page(directory / "index.html", title, sections, interactive_charts=True)


def write_page(path: Path, title: str, sections: Sequence[str], *, interactive_charts: bool = False) -> Path:
    body = "\n".join(sections)
    scripts = interactive.scripts() if interactive_charts else ""
    path.write_text(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{PAGE_STYLE.format()}</style></head>
<body><h1>{html.escape(title)}</h1>
{body}
{scripts}
</body></html>
""",
        encoding="utf-8",
    )
    return path


def sample_banner(sample: Sample) -> str:
    share = f" ({sample.in_sample_share:.0%} of the evaluated rows)" if sample.in_sample_rows else ""
    return (
        f'<div class="sample sample-{sample.label}" id="sample" data-sample="{sample.label}">'
        f"<strong>{html.escape(sample.headline)}{html.escape(share)}</strong>: {html.escape(sample.detail)}.</div>"
    )


def format_metric(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a" if key in NOT_AVAILABLE else "-"
    pattern = next((p for k, _, p in METRIC_COLUMNS if k == key), "{}")
    if pattern == "duration":
        return duration(float(value) * 60_000)
    return pattern.format(int(value) if pattern == "{:d}" else value)


def duration(milliseconds: float) -> str:
    """`2d 3h`, `3h 12m`, `12m` or `40s`."""
    seconds = round(milliseconds / 1000)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


def metrics_table(aggregate: Mapping[str, Metrics]) -> tuple[list[str], list[list[str]]]:
    header = ["policy", *(label for _, label, _ in METRIC_COLUMNS)]
    rows = []
    for name, figures in aggregate.items():
        document = figures.to_json()
        rows.append([name, *(format_metric(key, document.get(key)) for key, _, _ in METRIC_COLUMNS)])
    return header, rows


def exit_reason_table(reasons: Mapping[str, ExitReasonFigures]) -> tuple[list[str], list[list[str]]]:
    header = ["exit reason", "count", "win rate", "avg net PnL", "net PnL", "avg holding"]
    rows = [
        [
            REASON_LABELS.get(reason, reason),
            str(figures.count),
            format_metric("win_rate", figures.win_rate),
            format_metric("average_trade", figures.average_net),
            format_metric("net_pnl", figures.net_pnl),
            duration(figures.average_holding_ms),
        ]
        for reason, figures in reasons.items()
    ]
    return header, rows or [["no trades", "0", "-", "-", "-", "-"]]


@dataclass(frozen=True)
class TradeListRow:
    pair: str
    fold: int | None
    status: str
    side: str
    quantity: Decimal
    entry_time_ms: int | None
    exit_time_ms: int | None
    entry_price: Decimal | None
    exit_price: Decimal | None
    fees: Decimal
    funding: Decimal
    pnl: Decimal | None
    net_pnl: Decimal | None
    reason: str

    def cells(self) -> list[str]:
        return [
            self.pair,
            "" if self.fold is None else str(self.fold),
            self.status,
            self.side,
            str(self.quantity),
            iso_utc(self.entry_time_ms),
            iso_utc(self.exit_time_ms),
            _text(self.entry_price),
            _text(self.exit_price),
            str(self.fees),
            str(self.funding),
            _text(self.pnl),
            _text(self.net_pnl),
            self.reason,
        ]


def trade_row(trade: Trade, pair: str, fold: int | None) -> TradeListRow:
    """A booked trade as a line of the trade list; one still open at the end is `open`, marked."""
    return TradeListRow(
        pair,
        fold,
        "open" if trade.reason == END_OF_DATA else "closed",
        "long" if trade.side > 0 else "short",
        trade.quantity,
        trade.entry_ms,
        trade.exit_ms,
        trade.entry_price,
        _rounded(trade.exit_price),
        trade.fees,
        trade.funding,
        _rounded(trade.pnl),
        _rounded(trade.net),
        trade.reason,
    )


def write_trades_csv(path: Path, rows: Iterable[TradeListRow]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(TRADE_COLUMNS)
        writer.writerows(row.cells() for row in rows)
    return path


def iso_utc(time_ms: int | None) -> str:
    """`2025-01-27T12:42:00Z` for a time in milliseconds; empty for none."""
    if time_ms is None:
        return ""
    return str(np.datetime64(int(time_ms), "ms").astype("datetime64[s]")) + "Z"


def _book_trades(book: SegmentBook) -> list[Trade]:
    return [*book.trades, *([book.open_trade] if book.open_trade is not None else [])]


def _rounded(value: Decimal) -> Decimal:
    """Averages of Decimals carry 28 digits; 10 decimals are more than any price or PnL needs."""
    return value.quantize(Decimal("1e-10")).normalize()


def _text(value: Decimal | None) -> str:
    return "" if value is None else f"{value:f}"


def _market_note(market: MarketChange, parameters: Mapping[str, Any]) -> str:
    world = parameters.get("world", {})
    changes = ", ".join(f"{change:+.2%}" for change in market.price_changes)
    return (
        f'<p class="note">{BUY_AND_HOLD_LABEL}: long from each span\'s first open to its last close at the '
        f"strategy's exposure (max_exposure {html.escape(str(world.get('max_exposure')))} of the starting equity "
        f"{html.escape(str(world.get('initial_equity')))}), paying the taker fee and the slippage on the way in "
        f"and out. Market change (price, before costs): {html.escape(changes)}.</p>"
    )


def _risk_note(parameters: Mapping[str, Any]) -> str:
    """The limit set every backtest traded under (the daemon's `[risk]` settings), as live trading does."""
    risk = parameters.get("world", {}).get("risk")
    if risk is None:
        return '<p class="note">Risk limits: none (no stop-loss or take-profit exits, no order limits).</p>'
    figures = ", ".join(
        f"{key} {risk.get(key)}"
        for key in ("stop_loss_pct", "take_profit_pct", "max_order_notional", "max_position_notional", "max_leverage")
    )
    return (
        f'<p class="note">Risk limits: the <code>{html.escape(str(risk.get("name")))}</code> limit set '
        f"({html.escape(figures)}): its stop-loss and take-profit exits and its limits applied to every "
        "backtest, as in live trading.</p>"
    )


def _trades_note(aggregate: Metrics, rows: int, marked: int) -> str:
    best = format_metric("best_trade", aggregate.best_trade)
    worst = format_metric("worst_trade", aggregate.worst_trade)
    holding = format_metric("average_holding_minutes", aggregate.to_json()["average_holding_minutes"])
    return (
        f"<p>{aggregate.trade_count:,} closed trades: best {best}, worst {worst} USDT net, average holding "
        f"{holding}. {marked} position(s) still open where a span ended (marked, not trades). "
        f'The trade list, {rows:,} rows, is <a href="trades.csv">trades.csv</a> beside this page '
        "(times in UTC).</p>"
    )


def _fold_table(
    evaluation: Evaluation, subject: str, candles: CandleColumns, market: MarketChange
) -> tuple[list[str], list[list[str]]]:
    others = [name for name in evaluation.aggregate if name != subject]
    header = [
        "fold",
        "train rows",
        "test from",
        "test to",
        subject,
        *others,
        BUY_AND_HOLD_LABEL,
        "market",
        "trades",
        "win rate",
        "note",
    ]
    rows = []
    evaluated = iter(range(len(market.segments)))
    for outcome in evaluation.folds:
        fold = outcome.fold
        span = [
            iso_minute(candles.open_time_ms[fold.test_start]),
            iso_minute(candles.open_time_ms[fold.test_end - 1]),
        ]
        if fold.skipped is not None:
            rows.append([str(fold.index), str(fold.train_bars), *span, *["-"] * (len(others) + 5), "skipped"])
            continue
        index = next(evaluated)
        mine = outcome.results[subject].metrics
        held = float(market.books[index].equity[-1]) - float(market.segments[index].initial_equity)
        rows.append(
            [
                str(fold.index),
                str(fold.train_bars),
                *span,
                format_metric("net_pnl", mine.net_pnl),
                *(format_metric("net_pnl", outcome.results[name].metrics.net_pnl) for name in others),
                format_metric("net_pnl", held),
                f"{market.price_changes[index]:+.2%}",
                str(mine.trade_count),
                format_metric("win_rate", mine.win_rate),
                _stood_aside(outcome.training.get(subject, {})),
            ]
        )
    return header, rows


def _stood_aside(training: Mapping[str, Any]) -> str:
    """The note of a fold whose agent stood aside (`promotion_gates.walk_forward_holdout`)."""
    why = training.get(STOOD_ASIDE)
    return f"stood aside: {why}" if isinstance(why, str) else ""


def _section(heading: str, content: str) -> str:
    return f"<section><h2>{html.escape(heading)}</h2>\n{content}\n</section>"


def table_html(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def image_tag(path: Path, alt: str) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}"></p>'
