"""An evaluation's report from real nautilus backtests over three walk-forward folds of a policy that
trades about 560 times: the trade list (CSV) has its columns and one row per trade, the page is
self-contained with the interactive tape (the vendored library inlined, fold boundaries, positions
still open where a fold ended), buy-and-hold beside the policies, one fold table, the daily Sharpe's
n/a, and the in/out-of-sample banner."""

from __future__ import annotations

import csv
import json
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from domain.candle_columns import CandleColumns
from domain.fills import FillRules
from domain.instruments import Contract
from learning.evaluation.backtest import BacktestSettings
from learning.evaluation.folds import FoldSpec, walk_forward_folds
from learning.evaluation.report import TRADE_COLUMNS, market_change, write_evaluation_report
from learning.evaluation.sample import TrainingSpan, backtest_sample, walk_forward_sample
from learning.evaluation.walk_forward import Evaluation, FixedPolicy, evaluate_folds
from policies.baselines import Decision, HoldPolicy

CONTRACT = Contract(
    "BTC-USDT", 1, 4, Decimal("0.0001"), Decimal("2"), Decimal("0.0002"), Decimal("0.0005"), 125, 125, 1, True
)
RULES = FillRules.of(CONTRACT, Decimal(2))
SETTINGS = BacktestSettings(CONTRACT, RULES, Decimal(10_000), max_exposure=1.0, leverage=5)
MINUTE = 60_000
ROWS = 3_000


class Alternating:
    """Long while the first feature is positive, short otherwise: a flip every few bars."""

    name = "alternating"

    def decide(self, market_features: npt.NDArray[np.float64], state: npt.NDArray[np.float64]) -> Decision:
        return Decision(1.0 if market_features[0] > 0 else -1.0, 1.0)


@pytest.fixture(scope="module")
def evaluated() -> tuple[CandleColumns, Evaluation]:
    generator = np.random.default_rng(7)
    close = 30_000 * np.exp(np.cumsum(generator.normal(0, 0.001, ROWS)))
    open_ = np.concatenate([[30_000.0], close[:-1]])
    spread = np.abs(generator.normal(0, 5, ROWS))
    times = (1_735_689_600_000 + MINUTE * np.arange(ROWS)).astype(np.int64)  # 2025-01-01 00:00 UTC
    candles = CandleColumns(
        "BTC-USDT",
        "1m",
        times,
        np.round(open_, 1),
        np.round(np.maximum(open_, close) + spread, 1),
        np.round(np.minimum(open_, close) - spread, 1),
        np.round(close, 1),
        np.ones(ROWS),
        np.full(ROWS, np.nan),
    )
    # Flip every 4 bars, except a long stretch at the end of fold 2 so that it ends holding a position.
    signal = np.where((np.arange(ROWS) // 4) % 2 == 0, 1.0, -1.0)
    signal[1_400:1_500] = 1.0
    features = signal.reshape(-1, 1)
    folds = walk_forward_folds(ROWS, FoldSpec(3, 0, 0, 1, False))
    makers = [FixedPolicy(Alternating()), FixedPolicy(HoldPolicy())]
    return candles, evaluate_folds(candles, features, folds, makers, SETTINGS)


def write(directory: Path, candles: CandleColumns, evaluation: Evaluation, training: TrainingSpan | None) -> str:
    spans = [candles.open_time_ms[o.fold.test_start : o.fold.test_end] for o in evaluation.evaluated]
    sample = (
        walk_forward_sample(spans)
        if training is None
        else backtest_sample("alternating", "BTC-USDT", MINUTE, spans, training)
    )
    page = write_evaluation_report(
        directory,
        title="alternating on BTC-USDT 1m",
        subject="alternating",
        evaluation=evaluation,
        candles=candles,
        parameters={"dataset": {"pair": "BTC-USDT"}, "world": SETTINGS.to_json()},
        sample=sample,
        market=market_change(evaluation, candles, SETTINGS),
        price_decimals=1,
    )
    return page.read_text(encoding="utf-8")


def test_the_trade_list_has_its_columns_and_one_row_per_trade(
    evaluated: tuple[CandleColumns, Evaluation], tmp_path: Path
) -> None:
    candles, evaluation = evaluated
    write(tmp_path, candles, evaluation, None)
    with (tmp_path / "trades.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == TRADE_COLUMNS
    books = [outcome.results["alternating"].book for outcome in evaluation.evaluated]
    closed = sum(len(book.trades) for book in books)
    still_open = sum(book.open_trade is not None for book in books)
    assert closed == evaluation.aggregate["alternating"].trade_count
    assert closed > 500, "the tape must stay readable with 500+ trades"
    assert still_open >= 1
    assert len(rows) - 1 == closed + still_open
    records = [dict(zip(TRADE_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert {record["reason"] for record in records} <= {"signal_flip", "signal_exit", "end_of_data"}
    assert sum(record["status"] == "open" for record in records) == still_open
    assert all(re.fullmatch(r"2025-01-0\dT\d\d:\d\d:00Z", record["entry_time"]) for record in records)
    assert {record["fold"] for record in records} == {"1", "2", "3"}
    first = records[0]
    assert Decimal(first["pnl"]) - Decimal(first["fees"]) - Decimal(first["funding"]) == pytest.approx(
        Decimal(first["net_pnl"]), abs=Decimal("1e-9")
    )
    net = sum(Decimal(record["net_pnl"]) for record in records if record["status"] == "closed")
    assert float(net) == pytest.approx(sum(float(t.net) for book in books for t in book.trades), abs=1e-6)


def test_the_page_is_self_contained_with_the_interactive_tape_and_one_fold_table(
    evaluated: tuple[CandleColumns, Evaluation], tmp_path: Path
) -> None:
    candles, evaluation = evaluated
    page = write(tmp_path, candles, evaluation, None)
    assert {path.name for path in tmp_path.iterdir()} == {"index.html", "equity.png", "tape.png", "trades.csv"}
    # The library is inlined (the page opens offline), with its licence banner and the attribution.
    assert "TradingView Lightweight Charts™ v5.2.1" in page
    assert "TradingView Lightweight Charts Copyright (c) 2023 TradingView, Inc." in page
    assert not re.search(r"<script[^>]+src=", page), "no script is loaded from elsewhere"
    assert page.count('data-tape="tape-evaluation"') == 1
    data = json.loads(re.search(r'<script type="application/json" id="tape-evaluation">(.*?)</script>', page, re.S)[1])  # type: ignore[index]
    assert [boundary["label"] for boundary in data["boundaries"]] == ["fold 2", "fold 3"]
    boundary_times = [boundary["time"] * 1000 for boundary in data["boundaries"]]
    assert boundary_times == [int(candles.open_time_ms[o.fold.test_start]) for o in evaluation.evaluated[1:]]
    assert len(data["trades"]) > 500
    assert any(trade["open"] for trade in data["trades"]), "a position open where a fold ended is on the tape"
    assert len(data["t"]) == 2_250, "the test spans' candles, not merged below 20,000"
    # One fold table (no PNG copy of it), with buy-and-hold and the market change per fold.
    assert page.count("<h2>Folds</h2>") == 1
    assert page.count("<th>train rows</th>") == 1
    assert "folds.png" not in page
    assert page.count("<th>buy &amp; hold</th>") == 1
    assert "<td>buy &amp; hold</td>" in page, "buy-and-hold is a row of the metrics table"
    assert page.count("data:image/png;base64,") == 2  # equity (with buy-and-hold) and the static tape
    # Sharpe from daily returns: 2,250 minutes are under a week, so n/a, and the page says how.
    assert "<th>Sharpe (daily)</th>" in page
    assert "annualised by the square root of 365" in page
    metrics_table = page[page.index("Metrics over the test spans") : page.index("Equity and drawdown")]
    assert "n/a" in metrics_table
    assert "signal flip (target reversed)" in page
    assert "end of data (still open" in page
    assert 'href="trades.csv"' in page
    assert 'data-sample="out_of_sample"' in page
    assert "Risk limits: none (no stop-loss or take-profit exits" in page, "these backtests had no limit set"


def test_an_in_sample_evaluation_says_so_at_the_top(
    evaluated: tuple[CandleColumns, Evaluation], tmp_path: Path
) -> None:
    candles, evaluation = evaluated
    everything = TrainingSpan("d", "BTC-USDT", MINUTE, int(candles.open_time_ms[0]), int(candles.open_time_ms[-1]))
    page = write(tmp_path, candles, evaluation, everything)
    body = page[page.index("<body>") :]
    assert body.index('data-sample="in_sample"') < body.index("<h2>"), "the banner comes before any section"
    assert "In-sample (100% of the evaluated rows)" in page
    assert "Out-of-sample" not in page
