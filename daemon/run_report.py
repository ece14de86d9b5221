"""`tradingd report run RUN_ID`: the tape view of a paper or live run, each pair's candles over the span
it decided with its trades' entries and exits, as a self-contained HTML page and PNG charts."""

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
from domain.candles import interval_ms
from domain.market import parse_interval
from learning.evaluation import charts
from learning.evaluation.metrics import Trade
from learning.evaluation.report import image_tag, table_html, write_page
from observability.progress import track
from storage.candles import CandleStore
from storage.database import Database
from storage.run_history import RunHistory
from storage.trading import RunStore, TradeRow

TABLE_ROWS = 100


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
        f"({html.escape(run.interval)}), {html.escape(run.status)}, started {run.started_at:%Y-%m-%d %H:%M} UTC</p>"
    ]
    summary: dict[str, Any] = {}
    for pair in track(run.pairs, "report: pairs", "pair"):
        trades = [trade for trade in all_trades if trade.pair == pair]
        span = await history.decided_span(run.id, pair, run.interval)
        closed = [trade for trade in trades if trade.status == "closed" and trade.exit_price is not None]
        figures = _figures(trades, closed)
        summary[pair] = figures | {"decided_from_ms": None if span is None else span[0]}
        if span is None:
            sections.append(f"<section><h2>{html.escape(pair)}</h2><p>No decision recorded yet.</p></section>")
            continue
        candles = await candles_store.read_columns(pair, interval, span[0], span[1] + interval_ms(interval))
        chart = directory / f"tape-{pair}.png"
        charts.candles_with_trades(
            chart,
            candles,
            [_overlay(trade) for trade in closed],
            f"{pair} {run.interval}",
            open_entries=[
                (trade.opened_at_ms, float(trade.entry_price), 1 if trade.side == "long" else -1)
                for trade in trades
                if trade.status in ("open", "closing") and trade.entry_price is not None
            ],
        )
        summary[pair]["chart"] = str(chart)
        sections.append(_pair_section(pair, figures, chart, trades))
    page = write_page(directory / "index.html", f"Run {run.id}", sections)
    print(json.dumps({"run_id": str(run.id), "report": page.resolve().as_uri(), "pairs": summary}, indent=2))
    return exit_codes.OK


def _overlay(trade: TradeRow) -> Trade:
    assert trade.entry_price is not None
    assert trade.exit_price is not None
    net = trade.realized_pnl if trade.realized_pnl is not None else Decimal(0)
    return Trade(
        1 if trade.side == "long" else -1,
        trade.opened_at_ms,
        trade.closed_at_ms if trade.closed_at_ms is not None else trade.opened_at_ms,
        trade.entry_price,
        trade.exit_price,
        trade.quantity,
        net + trade.fees,  # the stored realised PnL is net of fees
        trade.fees,
    )


def _figures(trades: list[TradeRow], closed: list[TradeRow]) -> dict[str, Any]:
    nets = [trade.realized_pnl or Decimal(0) for trade in closed]
    return {
        "trades": len(trades),
        "closed": len(closed),
        "open": sum(1 for trade in trades if trade.status in ("open", "closing")),
        "wins": sum(1 for net in nets if net > 0),
        "net_pnl": float(sum(nets, Decimal(0))),
        "fees": float(sum((trade.fees for trade in trades), Decimal(0))),
    }


def _pair_section(pair: str, figures: dict[str, Any], chart: Path, trades: list[TradeRow]) -> str:
    win_rate = f"{figures['wins'] / figures['closed']:.1%}" if figures["closed"] else "-"
    lines = (
        f"<p>{figures['closed']} closed trades (win rate {win_rate}), {figures['open']} open; "
        f"net PnL {figures['net_pnl']:,.2f} USDT after {figures['fees']:,.2f} fees.</p>"
    )
    header = ["opened", "side", "quantity", "entry", "exit", "net PnL", "fees", "status", "reason"]
    rows = [
        [
            charts.iso_minute(trade.opened_at_ms),
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
    return (
        f"<section><h2>{html.escape(pair)}</h2>\n{lines}\n{image_tag(chart, f'{pair} candles and trades')}\n"
        f"<h3>Last {min(len(trades), TABLE_ROWS)} trades</h3>\n{table_html(header, rows)}</section>"
    )
