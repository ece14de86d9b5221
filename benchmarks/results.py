"""The results page (docs/evaluation.md, "Results"): the example agent (config/agents/example.toml) as
shipped, evaluated walk-forward on the development candles in ../shared/data, fold by fold beside flat,
buy-and-hold and the baselines, with its in-sample fit, at each decision interval, and how long it took.

    uv run python -m benchmarks.results [--write] [--cases btc-1m:5m,eth-1h:1h] [--folds 5] [--iterations N]
                                        [--doc docs/evaluation.md]

Each case is a development file and a decision interval: 5m and 15m candles are aggregated from the 1m
files exactly as `candles import --derive` does; 1h uses the 1h files (a year: the 1m files hold too few
hourly candles after v2's 1,000-candle warm-up). Every fold trains the agent from scratch on the rows before
its test span (walk-forward, out of sample), in the agent's world on the offline contract preset, under
the daemon's default `[risk]` limits, paying the offline funding preset (0.01% every 8 hours). The in-sample
fit is the fold's artifact backtested on the rows it was trained on. `--iterations` overrides the agent's
(a quicker, shorter training: the page says so). `--write` replaces each measured case's block in the
section between the markers as soon as the case ends, and keeps the blocks of the cases not measured.
"""

from __future__ import annotations

import argparse
import platform
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import write_section
from config import load_settings
from daemon.risk_limits import risk_limits
from domain.candle_columns import CandleColumns
from domain.candles import interval_ms, iso_minute
from domain.funding import base_rate_schedule
from domain.market import Interval, parse_interval
from exchange.sim.candle_file import aggregate, as_columns, load_candle_file
from features.definitions import V2
from features.engine import FeatureEngine
from learning.agent_config import AgentConfig, load_agent_config
from learning.code_version import code_version
from learning.datasets import preset_contract
from learning.evaluation.folds import FoldSpec, walk_forward_folds
from learning.evaluation.holdout import HOLDOUT, IN_SAMPLE, STOOD_ASIDE
from learning.evaluation.metrics import BUY_AND_HOLD, MS_PER_DAY, max_drawdown
from learning.evaluation.report import market_change
from learning.evaluation.service import FoldTrainer
from learning.evaluation.walk_forward import Evaluation, FixedPolicy, PolicyMaker, evaluate_folds
from learning.evaluation.world import agent_world, backtest_settings
from policies.baselines import baseline

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "candles"
EXAMPLE = ROOT / "config" / "agents" / "example.toml"
EVALUATION_DOC = ROOT / "docs" / "evaluation.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
FILES = {
    "btc-1m": ("BINANCE_BTCUSDT_1m.csv", "BTC-USDT", "1m"),
    "eth-1m": ("BINANCE_ETHUSDT_1m.csv", "ETH-USDT", "1m"),
    "btc-1m-2025-01": ("BINANCE_BTCUSDT_1m_2025-01.csv", "BTC-USDT", "1m"),
    "eth-1m-2025-01": ("BINANCE_ETHUSDT_1m_2025-01.csv", "ETH-USDT", "1m"),
    "btc-1h": ("BINANCE_BTCUSDT_1h.csv", "BTC-USDT", "1h"),
    "eth-1h": ("BINANCE_ETHUSDT_1h.csv", "ETH-USDT", "1h"),
}
DEFAULT_CASES = (
    *(
        f"{name}:{interval}"
        for name in ("btc-1m", "eth-1m", "btc-1m-2025-01", "eth-1m-2025-01")
        for interval in ("5m", "15m")
    ),
    "btc-1h:1h",
    "eth-1h:1h",
)
BASELINES = ("momentum", "ema_cross")
AGENT = "agent"
DAYS_PER_MONTH = 30


@dataclass(frozen=True)
class Case:
    name: str
    file: str
    pair: str
    interval: Interval

    @property
    def key(self) -> str:
        return f"{self.name}:{self.interval}"

    @property
    def label(self) -> str:
        return f"{self.file} at {self.interval}"


def parse_case(text: str) -> Case:
    name, _, interval = text.partition(":")
    if name not in FILES or not interval:
        raise argparse.ArgumentTypeError(f"{text!r}: a case is FILE:INTERVAL, FILE one of {', '.join(FILES)}")
    file, pair, _ = FILES[name]
    return Case(name, file, pair, parse_interval(interval))


def candles_of(case: Case) -> CandleColumns:
    file, _, base = FILES[case.name]
    rows = load_candle_file(DATA / file)
    if case.interval != base:
        rows = aggregate(rows, parse_interval(base), case.interval)
    return as_columns(rows, case.pair, case.interval)


def run_case(case: Case, agent: AgentConfig, folds: int) -> dict[str, Any]:
    """The walk-forward of one case, with per-fold figures of every policy and buy-and-hold."""
    began = time.monotonic()
    candles = candles_of(case)
    engine = FeatureEngine(V2, candles.take(np.arange(V2.warmup_bars)))
    rows = candles.take(np.arange(V2.warmup_bars, len(candles)))
    features = engine.run(rows)
    step = interval_ms(case.interval)
    funding = base_rate_schedule(int(rows.open_time_ms[0]) + 1, int(rows.open_time_ms[-1]) + step + 1)
    settings = backtest_settings(preset_contract(case.pair), agent_world(agent), risk_limits(load_settings()), funding)
    layout = walk_forward_folds(len(rows), FoldSpec(folds))
    makers: list[PolicyMaker] = [
        FoldTrainer(AGENT, agent, V2, settings, {"agent": agent.name, "version": "results"}),
        *(FixedPolicy(baseline(name, V2)) for name in BASELINES),
    ]
    evaluation = evaluate_folds(rows, features, layout, makers, settings)
    market = market_change(evaluation, rows, settings)
    return {
        "case": case,
        "rows": len(rows),
        "from_ms": int(rows.open_time_ms[0]),
        "to_ms": int(rows.open_time_ms[-1]),
        "folds": fold_rows(evaluation, market.books, market.segments, step),
        "seconds": time.monotonic() - began,
    }


def fold_rows(evaluation: Evaluation, books: Any, segments: Any, step: int) -> list[dict[str, Any]]:
    out = []
    for outcome, book, segment in zip(evaluation.evaluated, books, segments, strict=True):
        agent = outcome.results[AGENT].metrics
        training = outcome.training.get(AGENT, {})
        fit = training[IN_SAMPLE]["metrics"] if IN_SAMPLE in training else None
        holdout = training[HOLDOUT]["metrics"]["net_pnl"] if HOLDOUT in training else None
        held = float(book.equity[-1]) - float(segment.initial_equity)

        out.append(
            {
                "fold": outcome.fold.index,
                "days": outcome.fold.test_bars * step / MS_PER_DAY,
                "train_rows": outcome.fold.train_bars,
                "agent": agent.net_pnl,
                "trades": agent.trade_count,
                "turnover": agent.turnover,
                "drawdown": agent.max_drawdown,
                "fees": agent.fees,
                BUY_AND_HOLD: held,
                "buy_and_hold_drawdown": max_drawdown(book.equity),
                **{name: outcome.results[name].metrics.net_pnl for name in BASELINES},
                IN_SAMPLE: None if fit is None else fit["net_pnl"],
                "in_sample_return": None if fit is None else fit["return"],
                HOLDOUT: holdout,
                STOOD_ASIDE: STOOD_ASIDE in training,
            }
        )
    return out


def money(value: float) -> str:
    return f"{value:+,.0f}"


CASE_MARK = "<!-- results:case {} -->"
CASE_PATTERN = re.compile(r"<!-- results:case (\S+) -->")
PREAMBLE = (
    "Each case below says when, at which commit and with how much training it was measured: "
    "`uv run python -m benchmarks.results --write --cases CASE` measures one again and leaves the others. "
    "The agent is `{agent}` from config/agents/example.toml, trained from scratch on each walk-forward fold; "
    "every figure below the in-sample column is out of sample, in USDT of a 10,000 starting equity, after "
    "fees, slippage and funding."
)


def case_block(result: dict[str, Any], agent: AgentConfig, iterations: int, folds: int) -> str:
    """One case's subsection, opened by its marker, with its own date, commit and training."""
    case, rows = result["case"], result["folds"]
    h = agent.hyperparameters
    gated = agent.promotion_gates.walk_forward_holdout
    lines = [
        CASE_MARK.format(case.key),
        f"### {case.label} ({result['rows']:,} rows, {iso_minute(result['from_ms'])} to "
        f"{iso_minute(result['to_ms'])}; {result['seconds'] / 60:,.1f} min)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} at `{code_version()}` on {platform.machine()} "
        f"({platform.python_version()}): {iterations} iteration{'' if iterations == 1 else 's'} of "
        f"{h.train_batch_size:,} env steps "
        f"({iterations * h.train_batch_size:,} steps per fold"
        f"{'' if iterations == h.iterations else ', fewer than the shipped ' + str(h.iterations)}), {folds} folds.",
        "",
        "| fold | days | agent | trades | turnover | drawdown | flat | buy & hold | B&H drawdown | momentum "
        "| ema_cross | in-sample fit |" + (" its holdout |" if gated else ""),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if gated else ""),
    ]
    for row in rows:
        fit = "-" if row[IN_SAMPLE] is None else f"{money(row[IN_SAMPLE])} ({row['in_sample_return']:+.1%})"
        holdout = "-" if row[HOLDOUT] is None else money(row[HOLDOUT])
        lines.append(
            f"| {row['fold']} | {row['days']:.1f} | {money(row['agent'])}{' (aside)' if row[STOOD_ASIDE] else ''} | "
            f"{row['trades']} | {row['turnover']:.1f}x | {row['drawdown']:.1%} | 0 | {money(row[BUY_AND_HOLD])} | "
            f"{row['buy_and_hold_drawdown']:.1%} | {money(row['momentum'])} | {money(row['ema_cross'])} | "
            f"{fit} |" + (f" {holdout} |" if gated else "")
        )
    days = sum(row["days"] for row in rows)
    net = sum(row["agent"] for row in rows)
    monthly = net / 10_000 / (days / DAYS_PER_MONTH)  # the folds follow each other, 10,000 each
    over_flat = sum(1 for row in rows if row["agent"] > 0)
    over_market = sum(1 for row in rows if row["agent"] > row[BUY_AND_HOLD])
    within = sum(1 for row in rows if row["drawdown"] <= row["buy_and_hold_drawdown"])
    fits = sum(1 for row in rows if row[IN_SAMPLE] is not None and row[IN_SAMPLE] > 0)
    aside = sum(1 for row in rows if row[STOOD_ASIDE])
    lines += [
        "",
        f"Out of sample: {money(net)} over {days:.0f} days, {monthly:+.2%} of equity a month (each fold "
        f"trades its own 10,000); above flat in {over_flat} of {len(rows)} folds, above buy-and-hold in "
        f"{over_market}, drawdown within buy-and-hold's in {within}. In sample, profitable after costs in "
        f"{fits} of {len(rows)} folds."
        + (
            f" Trained on the first {1 - agent.promotion_gates.holdout_share:.0%} of each fold's training rows, "
            f"it stood aside in {aside} of {len(rows)} folds, where its holdout (the rest) failed the holdout gate."
            if gated
            else ""
        ),
        "",
    ]
    return "\n".join(lines)


def case_blocks(section: str) -> dict[str, str]:
    """The blocks of a results section by case key (the text from one case marker to the next)."""
    marks = list(CASE_PATTERN.finditer(section))
    ends = [mark.start() for mark in marks[1:]] + [section.find(END) if END in section else len(section)]
    ends = ends[: len(marks)]  # no mark: no block
    return {
        mark.group(1): section[mark.start() : end].rstrip("\n") + "\n" for mark, end in zip(marks, ends, strict=True)
    }


def merged_section(previous: str, blocks: dict[str, str], agent: AgentConfig) -> str:
    """The section with `blocks` measured now in place of their old ones, every other case kept, in the
    order of the default cases (any other case after them)."""
    kept = {**case_blocks(previous), **blocks}
    order = [key for key in DEFAULT_CASES if key in kept] + sorted(key for key in kept if key not in DEFAULT_CASES)
    body = "\n".join(kept[key] for key in order)
    return f"{START}\n\n{PREAMBLE.format(agent=agent.name)}\n\n{body}\n{END}"


def current_section(doc: Path) -> str:
    text = doc.read_text() if doc.exists() else ""
    if START not in text:
        return ""
    return START + text.partition(START)[2].partition(END)[0] + END


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--cases", type=lambda text: [parse_case(part) for part in text.split(",")], default=None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--doc", type=Path, default=EVALUATION_DOC, help="the page to write (docs/evaluation.md)")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"the development candles are not at {DATA}: the results page needs them")
    agent = load_agent_config(EXAMPLE)
    if args.iterations is not None:
        agent = agent.with_choices({"hyperparameters.iterations": args.iterations})
    cases = args.cases or [parse_case(text) for text in DEFAULT_CASES]
    iterations = agent.hyperparameters.iterations
    for case in cases:
        result = run_case(case, agent, args.folds)
        block = case_block(result, agent, iterations, args.folds)
        print(block, flush=True)
        if args.write:  # each case as it ends: a long run interrupted keeps what it measured
            section = merged_section(current_section(args.doc), {case.key: block}, agent)
            write_section(START, END, section, heading="Results", doc=args.doc)


if __name__ == "__main__":
    main()
