"""Replay series from `PAIR:INTERVAL:FILE` specifications (the `tradingd sim --candles` flag and the
daemon's `replay.candles`), with longer intervals aggregated from each file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from domain.market import Interval, parse_interval
from exchange.sim.candle_file import aggregate, load_candle_file
from exchange.sim.replay import ReplaySeries


def series_from_spec(spec: str, derive: Sequence[Interval] = (), base_dir: Path | None = None) -> list[ReplaySeries]:
    """The series a specification names (relative files from `base_dir`), then one per derived
    interval. Raises ValueError, CandleFileError or OSError with the reason."""
    try:
        pair, interval_text, file = spec.split(":", 2)
    except ValueError:
        raise ValueError("expected PAIR:INTERVAL:FILE") from None
    interval = parse_interval(interval_text)
    path = Path(file).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    rows = load_candle_file(path)
    series = [ReplaySeries(pair, interval, rows)]
    for derived in derive:
        made = aggregate(rows, interval, derived)
        if not made:
            raise ValueError(f"the file holds no complete {derived} candle")
        series.append(ReplaySeries(pair, derived, made))
    return series
