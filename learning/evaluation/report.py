"""Self-contained HTML reports: one file that opens anywhere (its charts embedded as data URIs), with
the same charts beside it as PNG files.

An evaluation's report: the policies' aggregate metrics, equity and drawdown over the test spans, the
per-fold table, the tape view of the evaluated policy's trades, and the parameters that produced it.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from domain.candle_columns import CandleColumns
from learning.evaluation import charts
from learning.evaluation.metrics import Metrics
from learning.evaluation.walk_forward import Evaluation

METRIC_COLUMNS = (
    ("net_pnl", "net PnL", "{:,.2f}"),
    ("return", "return", "{:+.2%}"),
    ("win_rate", "win rate", "{:.1%}"),
    ("trade_count", "trades", "{:d}"),
    ("max_drawdown", "max DD", "{:.2%}"),
    ("sharpe", "Sharpe", "{:.2f}"),
    ("sortino", "Sortino", "{:.2f}"),
    ("exposure_time", "exposure", "{:.1%}"),
    ("turnover", "turnover", "{:.1f}x"),
    ("average_trade", "avg trade", "{:,.2f}"),
    ("profit_factor", "profit factor", "{:.2f}"),
    ("fees", "fees", "{:,.2f}"),
)


def write_evaluation_report(
    directory: Path,
    *,
    title: str,
    subject: str,
    evaluation: Evaluation,
    candles: CandleColumns,
    parameters: Mapping[str, Any],
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    evaluated = evaluation.evaluated
    names = list(evaluation.aggregate)
    curves: dict[str, list[charts.Curve]] = {name: [] for name in names}
    offsets = dict.fromkeys(names, 0.0)
    drawdowns: list[charts.Curve] = []
    for outcome in evaluated:
        times = candles.open_time_ms[outcome.fold.test_start : outcome.fold.test_end]
        for name in names:
            book = outcome.results[name].book
            start = float(outcome.results[name].segment.initial_equity)
            curves[name].append(charts.Curve(name, times, book.equity - start + offsets[name]))
            offsets[name] += float(book.equity[-1]) - start
            if name == subject:
                peaks = np.maximum.accumulate(book.equity)
                drawdowns.append(charts.Curve(name, times, (peaks - book.equity) / peaks))
    boundaries = [int(candles.open_time_ms[outcome.fold.test_start]) for outcome in evaluated[1:]]
    merged_drawdown = charts.merge_curves({subject: drawdowns})[0]
    charts.equity_and_drawdown(
        directory / "equity.png", charts.merge_curves(curves), merged_drawdown, boundaries, "Out-of-sample PnL"
    )
    fold_header, fold_rows = _fold_table(evaluation, subject, candles)
    charts.table(directory / "folds.png", fold_header, fold_rows, "Folds (net PnL in USDT)")
    first = evaluated[0].fold.test_start
    last = evaluated[-1].fold.test_end
    trades = [trade for outcome in evaluated for trade in outcome.results[subject].book.trades]
    charts.candles_with_trades(
        directory / "tape.png", candles.take(np.arange(first, last)), trades, f"{subject}: entries and exits"
    )
    sections = [
        _section("Metrics over the test spans", table_html(*_metrics_table(evaluation.aggregate))),
        _section("Equity and drawdown", image_tag(directory / "equity.png", "equity and drawdown")),
        _section("Folds", table_html(fold_header, fold_rows) + image_tag(directory / "folds.png", "fold table")),
        _section("Trades on the candles", image_tag(directory / "tape.png", "candles with entries and exits")),
        _section("Parameters", f"<pre>{html.escape(json.dumps(parameters, indent=2, default=str))}</pre>"),
    ]
    return write_page(directory / "index.html", title, sections)


def write_page(path: Path, title: str, sections: Sequence[str]) -> Path:
    body = "\n".join(sections)
    path.write_text(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.85rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
img {{ max-width: 100%; }}
pre {{ background: #f6f6f6; padding: 0.75rem; overflow-x: auto; font-size: 0.8rem; }}
</style></head>
<body><h1>{html.escape(title)}</h1>
{body}
</body></html>
""",
        encoding="utf-8",
    )
    return path


def format_metric(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    pattern = next((p for k, _, p in METRIC_COLUMNS if k == key), "{}")
    return pattern.format(int(value) if pattern == "{:d}" else value)


def _metrics_table(aggregate: Mapping[str, Metrics]) -> tuple[list[str], list[list[str]]]:
    header = ["policy", *(label for _, label, _ in METRIC_COLUMNS)]
    rows = []
    for name, figures in aggregate.items():
        document = figures.to_json()
        rows.append([name, *(format_metric(key, document.get(key)) for key, _, _ in METRIC_COLUMNS)])
    return header, rows


def _fold_table(evaluation: Evaluation, subject: str, candles: CandleColumns) -> tuple[list[str], list[list[str]]]:
    others = [name for name in evaluation.aggregate if name != subject]
    header = ["fold", "train rows", "test from", "test to", subject, *others, "trades", "win rate", "note"]
    rows = []
    for outcome in evaluation.folds:
        fold = outcome.fold
        span = [
            charts.iso_minute(candles.open_time_ms[fold.test_start]),
            charts.iso_minute(candles.open_time_ms[fold.test_end - 1]),
        ]
        if fold.skipped is not None:
            rows.append([str(fold.index), str(fold.train_bars), *span, *["-"] * (len(others) + 3), "skipped"])
            continue
        mine = outcome.results[subject].metrics
        rows.append(
            [
                str(fold.index),
                str(fold.train_bars),
                *span,
                format_metric("net_pnl", mine.net_pnl),
                *(format_metric("net_pnl", outcome.results[name].metrics.net_pnl) for name in others),
                str(mine.trade_count),
                format_metric("win_rate", mine.win_rate),
                "",
            ]
        )
    return header, rows


def _section(heading: str, content: str) -> str:
    return f"<section><h2>{html.escape(heading)}</h2>\n{content}\n</section>"


def table_html(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def image_tag(path: Path, alt: str) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}"></p>'
