"""The interactive tape of a report page: candles with every trade's entry and exit, positions still
open, and fold boundaries, drawn in the browser by TradingView's Lightweight Charts.

A static PNG of 500 trades is a smear; a chart the reader zooms and pans stays readable at any count.
The library (Apache-2.0, vendored unchanged in `vendor/lightweight_charts/` with its LICENSE and NOTICE)
and `tape.js` are inlined into the page, so the report stays one self-contained file that opens offline.
A long span is merged to at most `MAX_CANDLES` candles (markers snap to the merged candle they fall in).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from domain.candle_columns import CandleColumns
from domain.candles import iso_minute
from learning.evaluation.charts import merge_candles
from learning.evaluation.metrics import END_OF_DATA, Trade

HERE = Path(__file__).parent
LIBRARY = HERE / "vendor" / "lightweight_charts" / "lightweight-charts.standalone.production.js"
NOTICE = HERE / "vendor" / "lightweight_charts" / "NOTICE"
SCRIPT = HERE / "tape.js"
MAX_CANDLES = 20_000
BUSY_TRADES = 100
"""With more trades than this, the chart opens on the first `WINDOW` candles rather than all of them."""
WINDOW = 360
ATTRIBUTION = (
    '<p class="attribution">Interactive charts: TradingView Lightweight Charts&trade; '
    '(<a href="https://www.tradingview.com/">https://www.tradingview.com/</a>), Apache License 2.0. '
    "{notice}</p>"
)


@dataclass(frozen=True)
class OpenPosition:
    """A position open at the report's end with no exit yet (a run's open trade)."""

    time_ms: int
    price: float
    side: int
    quantity: str


def tape(
    element_id: str,
    candles: CandleColumns,
    trades: Sequence[Trade],
    *,
    precision: int,
    boundaries: Sequence[tuple[int, str]] = (),
    open_positions: Sequence[OpenPosition] = (),
    summary: str = "",
) -> str:
    """The chart's placeholder and its data. Trades with the reason `end_of_data` are positions still
    open at the end of their span, marked there. `boundaries`: (open time ms, label) of the first
    candle of each fold after the first. The page must end with `scripts()`."""
    merged = merge_candles(candles, MAX_CANDLES)
    times = merged.open_time_ms

    def bar(time_ms: int) -> int:
        index = int(np.clip(np.searchsorted(times, time_ms, side="right") - 1, 0, len(times) - 1))
        return int(times[index]) // 1000

    def price(value: float) -> float:
        return round(float(value), precision + 2)

    document: dict[str, Any] = {
        "t": [int(t) // 1000 for t in times],
        "o": [price(v) for v in merged.open],
        "h": [price(v) for v in merged.high],
        "l": [price(v) for v in merged.low],
        "c": [price(v) for v in merged.close],
        "precision": precision,
        "trades": [
            {
                "side": trade.side,
                "quantity": str(trade.quantity),
                "entry_bar": bar(trade.entry_ms),
                "exit_bar": bar(trade.exit_ms),
                "entry": iso_minute(trade.entry_ms),
                "exit": iso_minute(trade.exit_ms),
                "entry_price": float(trade.entry_price),
                "exit_price": float(trade.exit_price),
                "net": float(trade.net),
                "reason": trade.reason,
                "open": trade.reason == END_OF_DATA,
            }
            for trade in trades
        ]
        if len(times)
        else [],
        "open_positions": [
            {
                "bar": bar(position.time_ms),
                "price": position.price,
                "side": position.side,
                "title": f"open {'long' if position.side > 0 else 'short'} {position.quantity}",
            }
            for position in open_positions
        ]
        if len(times)
        else [],
        "boundaries": [{"time": bar(time_ms), "label": label} for time_ms, label in boundaries] if len(times) else [],
        "summary": summary,
        "merged": len(candles) != len(times),
        "window": WINDOW if len(trades) > BUSY_TRADES else None,
    }
    data = json.dumps(document, separators=(",", ":")).replace("</", "<\\/")
    caption = (
        f"{len(candles):,} candles merged to {len(times):,}"
        if len(candles) != len(times)
        else f"{len(candles):,} candles"
    )
    if document["window"] and len(times) > WINDOW:
        caption += f", opened on the first {WINDOW} (zoom out to see them all)"
    return (
        f'<div class="tape" data-tape="{html.escape(element_id)}">'
        f'<pre class="tape-legend"></pre><div class="tape-chart"></div>'
        f'<p class="tape-caption">{html.escape(caption)}; wheel to zoom, drag to pan, hover for the trades. '
        "Entries: arrows at their price (up long, down short); exits: dots above the candle (green won, red lost); "
        "orange: still open "
        "(a square where the span ended and the position was marked); grey bars: fold boundaries. Times in UTC.</p>"
        f'</div>\n<script type="application/json" id="{html.escape(element_id)}">{data}</script>'
    )


def scripts() -> str:
    """The library and the tape script, inlined (once per page, after every `tape`)."""
    notice = html.escape(" ".join(NOTICE.read_text(encoding="utf-8").split()))
    library = LIBRARY.read_text(encoding="utf-8")
    ours = SCRIPT.read_text(encoding="utf-8")
    return ATTRIBUTION.format(notice=notice) + f"\n<script>{library}</script>\n<script>{ours}</script>"


STYLE = """
.tape {{ margin: 0.5rem 0 1rem; }}
.tape-chart {{ height: 480px; width: 100%; }}
.tape-legend {{ min-height: 3.2em; margin: 0 0 0.25rem; background: none; padding: 0; white-space: pre-wrap; }}
.tape-caption, .attribution {{ font-size: 0.75rem; color: #666; }}
"""
"""CSS for the tape (braces doubled: it goes into the page's format string)."""


def decimals(values: Sequence[float] | np.ndarray, limit: int = 8) -> int:
    """The fewest decimals that show every price as it is (for a chart without a contract's tick)."""
    array = np.asarray(values, dtype=np.float64)
    for places in range(limit + 1):
        if np.allclose(np.round(array, places), array, rtol=0, atol=10.0 ** -(limit + 1)):
            return places
    return limit
