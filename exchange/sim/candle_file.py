"""Candle files in the format of ../shared/data/candles: `open_time_ms,open,high,low,close,volume`.

Values are kept as the text written in the file, so the simulator serves exactly what the file holds
and a test can compare stored candles with the file bit for bit.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby
from pathlib import Path

from domain.candle_columns import CandleColumns
from domain.candles import Candle, interval_ms
from domain.market import Interval
from exchange.bingx.wire import MAX_OPEN_TIME_MS

HEADER = ("open_time_ms", "open", "high", "low", "close", "volume")
OPEN_TIME = re.compile(r"[0-9]{1,20}")
NUMBER = re.compile(r"-?[0-9]{1,40}(\.[0-9]{1,40})?([eE][-+]?[0-9]{1,3})?")
"""Plain decimal text, served as written: no underscores, spaces, signs on open times or `nan`."""


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
    """The file's candles, or `CandleFileError` naming the line at fault: a file that is not UTF-8 CSV
    (a NUL byte, an oversized field), a wrong header or field count, a value that is not a finite
    number, an open time off the venue's range, or open times that do not ascend."""
    rows: list[FileCandle] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None or tuple(header) != HEADER:
                raise CandleFileError(f"{path}: line 1: expected header {','.join(HEADER)}")
            for record in reader:
                rows.append(_row(path, reader.line_num, record, rows[-1] if rows else None))
        except UnicodeDecodeError:
            raise CandleFileError(f"{path}: line {reader.line_num + 1}: not UTF-8 text") from None
        except csv.Error as error:
            raise CandleFileError(f"{path}: line {reader.line_num}: {error}") from None
    if not rows:
        raise CandleFileError(f"{path}: no candles")
    return rows


def _row(path: Path, number: int, record: list[str], previous: FileCandle | None) -> FileCandle:
    if len(record) != len(HEADER):
        raise CandleFileError(f"{path}: line {number}: expected {len(HEADER)} fields, found {len(record)}")
    if not OPEN_TIME.fullmatch(record[0]) or not all(NUMBER.fullmatch(value) for value in record[1:]):
        raise CandleFileError(f"{path}: line {number}: not a number")
    open_time = int(record[0])
    if not all(math.isfinite(float(value)) for value in record[1:]):
        raise CandleFileError(f"{path}: line {number}: not a finite number")
    if open_time > MAX_OPEN_TIME_MS:
        raise CandleFileError(f"{path}: line {number}: open time {open_time} is after {MAX_OPEN_TIME_MS}")
    if previous is not None and open_time <= previous.open_time_ms:
        raise CandleFileError(f"{path}: line {number}: open times must ascend without duplicates")
    return FileCandle(open_time, *record[1:])


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
