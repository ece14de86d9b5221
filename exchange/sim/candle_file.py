"""Candle files in the format of ../shared/data/candles: `open_time_ms,open,high,low,close,volume`.

Values are kept as the text written in the file, so the simulator serves exactly what the file holds
and a test can compare stored candles with the file bit for bit.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby
from pathlib import Path

from domain.candle_columns import CandleColumns
from domain.candles import Candle, interval_ms
from domain.market import Interval

HEADER = ("open_time_ms", "open", "high", "low", "close", "volume")


class CandleFileError(ValueError):
    """The file is not a valid candle file; the message names the line."""


@dataclass(frozen=True, slots=True)
class FileCandle:
    open_time_ms: int
    open: str
    high: str
    low: str
    close: str
    volume: str


def as_candles(rows: list[FileCandle], pair: str, interval: Interval) -> list[Candle]:
    """File rows as the candles the venue would give for them."""
    return [
        Candle(
            pair, interval, r.open_time_ms, float(r.open), float(r.high), float(r.low), float(r.close), float(r.volume)
        )
        for r in rows
    ]


def as_columns(rows: list[FileCandle], pair: str, interval: Interval) -> CandleColumns:
    return CandleColumns.from_candles(as_candles(rows, pair, interval))


def load_candle_file(path: Path) -> list[FileCandle]:
    rows: list[FileCandle] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(header) != HEADER:
            raise CandleFileError(f"{path}: line 1: expected header {','.join(HEADER)}")
        for number, record in enumerate(reader, start=2):
            if len(record) != len(HEADER):
                raise CandleFileError(f"{path}: line {number}: expected {len(HEADER)} fields, found {len(record)}")
            try:
                open_time = int(record[0])
                for value in record[1:]:
                    float(value)
            except ValueError:
                raise CandleFileError(f"{path}: line {number}: not a number") from None
            if rows and open_time <= rows[-1].open_time_ms:
                raise CandleFileError(f"{path}: line {number}: open times must ascend without duplicates")
            rows.append(FileCandle(open_time, *record[1:]))
    if not rows:
        raise CandleFileError(f"{path}: no candles")
    return rows


def write_candle_file(path: Path, rows: list[FileCandle]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        for row in rows:
            writer.writerow((row.open_time_ms, row.open, row.high, row.low, row.close, row.volume))


def aggregate(rows: list[FileCandle], interval: Interval, into: Interval) -> list[FileCandle]:
    """The `into` candles a venue would publish for these `interval` rows: first open, highest high,
    lowest low, last close, summed volume (exact, in decimal). Buckets missing a row are left out,
    as the venue's candle for them is unknown."""
    step, size = interval_ms(into), interval_ms(interval)
    if step <= size or step % size:
        raise ValueError(f"{into} candles cannot be made from {interval} ones")
    out: list[FileCandle] = []
    for bucket, members in groupby(rows, key=lambda row: row.open_time_ms // step):
        group = list(members)
        if len(group) != step // size:
            continue
        out.append(
            FileCandle(
                bucket * step,
                group[0].open,
                max((row.high for row in group), key=Decimal),
                min((row.low for row in group), key=Decimal),
                group[-1].close,
                format(sum((Decimal(row.volume) for row in group), Decimal(0)), "f"),
            )
        )
    return out
