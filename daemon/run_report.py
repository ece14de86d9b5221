"""`tradingd report run RUN_ID`: the tape view of a paper or live run, each pair's candles over the span
it decided with its trades' entries and exits, as a self-contained HTML page (an interactive tape per
pair), PNG charts and the trade list (`trades.csv`).

Beside the run's figures, each pair shows buy-and-hold over the same candles (`metrics.buy_and_hold`:
long from the first decided candle's open to the last one's close at the run's `max_exposure` of its
`initial_equity`, with its slippage and the fee rate its own fills paid; the report reads no venue, so
no contract grid rounds it), and its closed trades by exit reason."""

from __future__ import annotations

import html
import json
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from config import Settings
from daemon import exit_codes
from domain.candle_columns import CandleColumns
from domain.candles import interval_ms, iso_minute
from domain.fills import FillRules
from domain.market import parse_interval
from learning.evaluation import charts, interactive
from learning.evaluation.metrics import Trade, buy_and_hold, exit_reasons, metrics
from learning.evaluation.report import (
    BUY_AND_HOLD_LABEL,
    TradeListRow,
    duration,
    exit_reason_table,
    format_metric,
    image_tag,
    table_html,
    write_page,
    write_trades_csv,
)
from observability.progress import track
from storage.candles import CandleStore
from storage.database import Database
from storage.records import TradeRow
from storage.run_history import RunHistory
from storage.runs import Run, RunStore

TABLE_ROWS = 100
GRID = Decimal("0.00000001")
"""Without the contract, buy-and-hold's prices and quantity are kept to 1e-8."""


async def write_run_report(settings: Settings, database: Database, run_id: uuid.UUID, out: Path | None) -> int:
    run = await RunStore(database.pool).get(run_id)
    if run is None:
        print(f"tradingd: no run {run_id}", file=sys.stderr)
        return exit_codes.DATA_ERROR
    directory = out or settings.storage.resolved_data_dir() / "reports" / f"run-{run.id}"
    directory.mkdir(parents=True, exist_ok=True)
    history = RunHistory(database.pool)
    candles_store = CandleStore.of(database)
    interval = parse_interval(run.interval)
    all_trades = await history.trades(run.id)
    sections = [
        f"<p>{html.escape(run.mode)} run of {html.escape(run.policy)} on {html.escape(', '.join(run.pairs))} "
        f"({html.escape(run.interval)}), {html.escape(run.status)}, started {run.started_at:%Y-%m-%d %H:%M} UTC. "
        f'Every trade is in <a href="trades.csv">trades.csv</a> beside this page (times in UTC).</p>'
    ]
    summary: dict[str, Any] = {}
    listed: list[TradeListRow] = []
    for pair in track(run.pairs, "report: pairs", "pair"):
        trades = [trade for trade in all_trades if trade.pair == pair]
        listed += [_listed(trade) for trade in trades]
        span = await history.decided_span(run.id, pair, run.interval)
        closed = [trade for trade in trades if trade.status == "closed" and trade.exit_price is not None]
        figures = _figures(trades, closed)
        summary[pair] = figures | {"decided_from_ms": None if span is None else span[0]}
        if span is None:
            sections.append(f"<section><h2>{html.escape(pair)}</h2><p>No decision recorded yet.</p></section>")
            continue
        candles = await candles_store.read_columns(pair, interval, span[0], span[1] + interval_ms(interval))
        opened = [trade for trade in trades if trade.status in ("open", "closing") and trade.entry_price is not None]
        if len(candles):
            held = _buy_and_hold(run, candles, await history.fee_rate(run.id, pair))
            figures["buy_and_hold"] = held
            summary[pair]["buy_and_hold"] = held
        chart = directory / f"tape-{pair}.png"
        overlays = [_overlay(trade) for trade in closed]
        charts.candles_with_trades(
            chart,
            candles,
            overlays,
            f"{pair} {run.interval}",
            open_entries=[(trade.opened_at_ms, float(trade.entry_price or 0), _side(trade)) for trade in opened],
        )
        summary[pair]["chart"] = str(chart)
        tape = (
            interactive.tape(
                f"tape-{pair}",
                candles,
                overlays,
                precision=interactive.decimals(candles.close[-1000:]),
                open_positions=[
                    interactive.OpenPosition(
                        trade.opened_at_ms, float(trade.entry_price or 0), _side(trade), str(trade.quantity)
                    )
                    for trade in opened
                ],
                summary=f"{pair}: {len(closed):,} closed trades, {len(opened)} open",
            )
            if len(candles)
            else "<p>No stored candles over the decided span.</p>"
        )
        sections.append(_pair_section(pair, figures, chart, trades, overlays, tape))
    csv_path = write_trades_csv(directory / "trades.csv", listed)
    page = write_page(directory / "index.html", f"Run {run.id}", sections, interactive_charts=True)
    print(
        json.dumps(
            {
                "run_id": str(run.id),
                "report": page.resolve().as_uri(),
                "trades_csv": str(csv_path.resolve()),
                "pairs": summary,
            },
            indent=2,
        )
    )
    return exit_codes.OK


def _side(trade: TradeRow) -> int:
    return 1 if trade.side == "long" else -1


def _overlay(trade: TradeRow) -> Trade:
    assert trade.entry_price is not None
    assert trade.exit_price is not None
    net = trade.realized_pnl if trade.realized_pnl is not None else Decimal(0)
    return Trade(
        _side(trade),
        trade.opened_at_ms,
        trade.closed_at_ms if trade.closed_at_ms is not None else trade.opened_at_ms,
        trade.entry_price,
        trade.exit_price,
        trade.quantity,
        net + trade.fees + trade.funding,  # the stored realised PnL is net of fees and funding
        trade.fees,
        trade.close_reason or "unknown",
        trade.funding,
    )


def _listed(trade: TradeRow) -> TradeListRow:
    net = trade.realized_pnl if trade.status == "closed" else None
    return TradeListRow(
        trade.pair,
        None,
        trade.status,
        trade.side,
        trade.quantity,
        trade.opened_at_ms,
        trade.closed_at_ms,
        trade.entry_price,
        trade.exit_price,
        trade.fees,
        trade.funding,
        None if net is None else net + trade.fees + trade.funding,
        net,
        trade.close_reason or "",
    )


def _buy_and_hold(run: Run, candles: CandleColumns, fee_rate: Decimal | None) -> dict[str, Any]:
    initial = Decimal(str(run.settings.get("initial_equity", "10000")))
    rate = Decimal(0) if fee_rate is None else fee_rate
    rules = FillRules(GRID, GRID, Decimal(0), Decimal(0), rate, rate, Decimal(str(run.settings.get("slippage_bps", 0))))
    segment = buy_and_hold(
        candles.open,
        candles.close,
        int(candles.open_time_ms[0]),
        interval_ms(candles.interval),
        initial,
        float(run.settings.get("max_exposure", 1)),
        rules,
    )
    figures = metrics([segment])
    return {
        "net_pnl": figures.net_pnl,
        "return": figures.total_return,
        "fees": figures.fees,
        "max_drawdown": figures.max_drawdown,
        "fee_rate": None if fee_rate is None else float(fee_rate),
        "price_change": float(candles.close[-1] / candles.open[0] - 1.0),
        "initial_equity": float(initial),
    }


def _figures(trades: list[TradeRow], closed: list[TradeRow]) -> dict[str, Any]:
    nets = [trade.realized_pnl or Decimal(0) for trade in closed]
    overlays = [_overlay(trade) for trade in closed]
    holding = [trade.holding_ms for trade in overlays]
    return {
        "trades": len(trades),
        "closed": len(closed),
        "open": sum(1 for trade in trades if trade.status in ("open", "closing")),
        "wins": sum(1 for net in nets if net > 0),
        "net_pnl": float(sum(nets, Decimal(0))),
        "fees": float(sum((trade.fees for trade in trades), Decimal(0))),
        "funding": float(sum((trade.funding for trade in trades), Decimal(0))),
        "best_trade": float(max(nets)) if nets else None,
        "worst_trade": float(min(nets)) if nets else None,
        "average_holding_minutes": sum(holding) / len(holding) / 60_000 if holding else None,
        "exit_reasons": {reason: figures.to_json() for reason, figures in exit_reasons(overlays).items()},
    }


def _pair_section(
    pair: str, figures: dict[str, Any], chart: Path, trades: list[TradeRow], overlays: list[Trade], tape: str
) -> str:
    win_rate = f"{figures['wins'] / figures['closed']:.1%}" if figures["closed"] else "-"
    lines = (
        f"<p>{figures['closed']} closed trades (win rate {win_rate}), {figures['open']} open; "
        f"net PnL {figures['net_pnl']:,.2f} USDT after {figures['fees']:,.2f} fees and {figures['funding']:,.2f} "
        "funding.</p>"
    )
    compared = ["", "net PnL", "return", "closed trades", "win rate", "best", "worst", "avg holding", "fees"]
    held = figures.get("buy_and_hold")
    initial = held["initial_equity"] if held else None
    rows = [
        [
            "run",
            format_metric("net_pnl", figures["net_pnl"]),
            "-" if initial is None else format_metric("return", figures["net_pnl"] / initial),
            str(figures["closed"]),
            win_rate,
            format_metric("best_trade", figures["best_trade"]),
            format_metric("worst_trade", figures["worst_trade"]),
            format_metric("average_holding_minutes", figures["average_holding_minutes"]),
            format_metric("fees", figures["fees"]),
        ]
    ]
    note = ""
    if held is not None:
        rows.append(
            [
                BUY_AND_HOLD_LABEL,
                format_metric("net_pnl", held["net_pnl"]),
                format_metric("return", held["return"]),
                "1",
                "-",
                "-",
                "-",
                "-",
                format_metric("fees", held["fees"]),
            ]
        )
        rate = "no fee (the run has no fill to read a fee rate from)"
        if held["fee_rate"] is not None:
            rate = f"the fee rate the run's fills paid ({held['fee_rate']:.4%})"
        note = (
            f'<p class="note">{BUY_AND_HOLD_LABEL}: long over the decided candles (market change '
            f"{held['price_change']:+.2%}) at the run's max_exposure of its initial equity, with its slippage and "
            f"{html.escape(rate)}.</p>"
        )
    header = ["opened (UTC)", "closed (UTC)", "side", "quantity", "entry", "exit", "net PnL", "fees", "status"]
    header.append("reason")
    listed = [
        [
            iso_minute(trade.opened_at_ms),
            "-" if trade.closed_at_ms is None else iso_minute(trade.closed_at_ms),
            trade.side,
            str(trade.quantity),
            "-" if trade.entry_price is None else str(trade.entry_price),
            "-" if trade.exit_price is None else f"{trade.exit_price:.2f}",
            "-" if trade.realized_pnl is None else f"{trade.realized_pnl:,.4f}",
            f"{trade.fees:.4f}",
            trade.status,
            trade.close_reason or "",
        ]
        for trade in trades[-TABLE_ROWS:]
    ]
    reasons = exit_reason_table(exit_reasons(overlays))
    holding = (
        ""
        if not overlays
        else f"<p>Average holding {duration(sum(t.holding_ms for t in overlays) / len(overlays))}.</p>"
    )
    return (
        f"<section><h2>{html.escape(pair)}</h2>\n{lines}\n{table_html(compared, rows)}{note}\n"
        f"<h3>Exit reasons</h3>\n{table_html(*reasons)}{holding}\n"
        f"<h3>Trades on the candles</h3>\n{tape}\n"
        f"<details><summary>Static overview (PNG)</summary>{image_tag(chart, f'{pair} candles and trades')}</details>\n"
        f"<h3>Last {min(len(trades), TABLE_ROWS)} trades</h3>\n{table_html(header, listed)}</section>"
    )
