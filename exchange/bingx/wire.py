"""Parsers for BingX swap wire messages (../shared/bingx/API.md). Pure functions: bytes and JSON in,
domain values or domain errors out. Where the spec marks a shape uncertain, every listed variant is
accepted.
"""

from __future__ import annotations

import functools
import gzip
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final

import msgspec
import numpy as np

from domain.candle_columns import CandleColumns
from domain.candles import Candle
from domain.errors import (
    DuplicateClientOrderIdError,
    FatalVenueError,
    OrderNotFoundError,
    RateLimitedError,
    RejectedError,
    TemporaryVenueError,
    UnknownOutcomeError,
    UnknownSymbolError,
    VenueError,
    WireFormatError,
)
from domain.instruments import Contract
from domain.market import Interval

FATAL_CODES: Final = frozenset({100001, 100412, 100413, 100004, 100419})
RATE_LIMIT_CODES: Final = frozenset({100410, 109429})
TEMPORARY_CODES: Final = frozenset({80012, 100500, 109500, 110500, 100421})
"""100421 (timestamp mismatch) is temporary: the client re-syncs its clock and retries."""
ORDER_NOT_FOUND_CODES: Final = frozenset({80016, 109421, 109414})
DUPLICATE_CLIENT_ORDER_ID: Final = 101481
UNKNOWN_SYMBOL: Final = 109425
INVALID_PARAMETER: Final = 109400
"""109400 also covers "symbol not exist" (API.md 2.4): told apart by its message."""
TIMESTAMP_MISMATCH: Final = 100421
PING: Final = "Ping"
PONG: Final = "Pong"


def error_for_code(code: int, message: str, http_status: int | None = None) -> VenueError:
    """The error family of a non-zero envelope `code` (API.md 2.4; old and new numbering)."""
    text = f"BingX error {code}: {message}" if message else f"BingX error {code}"
    if code in FATAL_CODES:
        return FatalVenueError(text, code=code, http_status=http_status)
    if code in RATE_LIMIT_CODES:
        return RateLimitedError(text, code=code, http_status=http_status, retry_after_sec=5.0)
    if code in TEMPORARY_CODES:
        return TemporaryVenueError(text, code=code, http_status=http_status)
    if code in ORDER_NOT_FOUND_CODES:
        return OrderNotFoundError(text, code=code, http_status=http_status)
    if code == DUPLICATE_CLIENT_ORDER_ID:
        return DuplicateClientOrderIdError(text, code=code, http_status=http_status)
    if code == UNKNOWN_SYMBOL or (code == INVALID_PARAMETER and _names_unknown_symbol(message)):
        return UnknownSymbolError(text, code=code, http_status=http_status)
    return RejectedError(text, code=code, http_status=http_status)


def _names_unknown_symbol(message: str) -> bool:
    lowered = message.lower()
    return "symbol" in lowered and ("not exist" in lowered or "does not exist" in lowered)


def error_for_status(status: int, body: str) -> VenueError:
    """The error family of a non-200 HTTP status without a usable envelope (API.md 2.3)."""
    text = f"HTTP {status}: {body[:200]}"
    if status == 429:
        return RateLimitedError(text, http_status=status, retry_after_sec=5.0)
    if status in (418, 403):
        # 418: banned after ignoring 429s; 403: WAF ban. Both last about five minutes.
        return RateLimitedError(text, http_status=status, retry_after_sec=300.0)
    if status == 401:
        return FatalVenueError(text, http_status=status)
    if status == 504:
        return UnknownOutcomeError(text, http_status=status)
    if status >= 500:
        return TemporaryVenueError(text, http_status=status)
    return RejectedError(text, http_status=status)


def parse_envelope(status: int, body: bytes) -> Any:
    """`data` of a `{code, msg, data}` response, or the matching `VenueError`."""
    text = body.decode("utf-8", errors="replace")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than any real answer
        if status != 200:
            raise error_for_status(status, text) from None
        raise WireFormatError(f"response is not JSON: {text[:200]}", http_status=status) from None
    if isinstance(document, dict) and "code" in document:
        code = _int(document["code"], "code")
        if code != 0:
            raise error_for_code(code, str(document.get("msg") or ""), status)
        if status != 200:
            raise error_for_status(status, text)
        return document.get("data")
    if status != 200:
        raise error_for_status(status, text)
    raise WireFormatError(f"response has no envelope: {text[:200]}", http_status=status)


@dataclass(frozen=True, slots=True)
class RejectedRow:
    raw: Any
    reason: str


@dataclass(frozen=True, eq=False)
class KlineBatch:
    """Candles in ascending open time without duplicates, and the rows that could not be parsed."""

    columns: CandleColumns
    rejected: list[RejectedRow]
    unsorted: bool
    duplicates: int

    @functools.cached_property
    def candles(self) -> list[Candle]:
        return self.columns.to_candles()


MAX_OPEN_TIME_MS: Final = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: an open time beyond it is no candle (and would overflow the int64 columns)."""


class _RestKline(msgspec.Struct):
    open: float
    high: float
    low: float
    close: float
    volume: float
    time: Annotated[int, msgspec.Meta(ge=0, le=MAX_OPEN_TIME_MS)]
    """Bounded here (an open time past int64 overflowed the column build): the general path rejects it."""


class _RestKlineEnvelope(msgspec.Struct):
    code: int
    data: list[_RestKline] | None = None


# Lax decoding turns the wire's numeric strings into numbers; anything it cannot type (arrays, a single
# object, a malformed row, an error envelope) goes to the general path below, row by row.
_REST_KLINES = msgspec.json.Decoder(_RestKlineEnvelope, strict=False)


def parse_kline_response(status: int, body: bytes, pair: str, interval: Interval) -> KlineBatch:
    """A whole GET /openApi/swap/v3/quote/klines response. The usual shape (a 200 with `code` 0 and a
    list of kline objects) is decoded straight into columns, about ten times faster than building a
    `Candle` per row; every other shape takes `parse_envelope` and `parse_rest_klines`."""
    if status == 200:
        try:
            document = _REST_KLINES.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):  # the slow path says why
            document = None
        if document is not None and document.code == 0:
            rows = document.data or []
            size = len(rows)
            if size == 0:
                return order_and_dedupe(CandleColumns.empty(pair, interval))
            columns = CandleColumns(
                pair,
                interval,
                np.fromiter((r.time for r in rows), np.int64, size),
                np.fromiter((r.open for r in rows), np.float64, size),
                np.fromiter((r.high for r in rows), np.float64, size),
                np.fromiter((r.low for r in rows), np.float64, size),
                np.fromiter((r.close for r in rows), np.float64, size),
                np.fromiter((r.volume for r in rows), np.float64, size),
                np.full(size, np.nan),
            )
            return order_and_dedupe(columns)
    return parse_rest_klines(parse_envelope(status, body), pair, interval)


def parse_rest_klines(data: Any, pair: str, interval: Interval) -> KlineBatch:
    """`data` of GET /openApi/swap/v3/quote/klines: a list of objects (`open, close, high, low,
    volume, time`), or of Binance-style arrays, or (legacy v2) a single object."""
    rows = data if isinstance(data, list) else [] if data is None else [data]
    parsed: list[Candle] = []
    rejected: list[RejectedRow] = []
    for row in rows:
        try:
            if type(row) is dict or isinstance(row, Mapping):  # the exact-type check skips a slow ABC check
                parsed.append(
                    _candle(
                        pair, interval, row["time"], row["open"], row["high"], row["low"], row["close"], row["volume"]
                    )
                )
            elif isinstance(row, list) and len(row) >= 6:
                parsed.append(_candle(pair, interval, row[0], row[1], row[2], row[3], row[4], row[5]))
            else:
                rejected.append(RejectedRow(row, "neither a kline object nor a kline array"))
        except (KeyError, WireFormatError) as error:
            rejected.append(RejectedRow(row, f"malformed kline: {error}"))
    return order_and_dedupe(_columns(parsed, pair, interval), rejected)


def parse_kline_push(message: Mapping[str, Any], interval: Interval) -> KlineBatch:
    """A websocket `<SYMBOL>@kline_<interval>` push; `data` is an array (or, in old examples, an
    object) of `{o, h, l, c, v, T}` with `T` the candle's open time."""
    pair = message.get("s")
    if not isinstance(pair, str):
        data_type = str(message.get("dataType", ""))
        pair = data_type.split("@", 1)[0]
    data = message.get("data")
    rows = data if isinstance(data, list) else [data] if isinstance(data, Mapping) else []
    parsed: list[Candle] = []
    rejected: list[RejectedRow] = []
    for row in rows:
        try:
            if not isinstance(row, Mapping):
                raise WireFormatError("not an object")
            parsed.append(_candle(pair, interval, row["T"], row["o"], row["h"], row["l"], row["c"], row["v"]))
        except (KeyError, WireFormatError) as error:
            rejected.append(RejectedRow(row, f"malformed kline push: {error}"))
    return order_and_dedupe(_columns(parsed, pair, interval), rejected)


def order_and_dedupe(columns: CandleColumns, rejected: list[RejectedRow] | None = None) -> KlineBatch:
    """Sort ascending by open time; of several rows with one open time keep the last received (for
    a forming candle it is the newest update)."""
    ordered = columns.sorted_unique()
    return KlineBatch(ordered, list(rejected or []), not columns.is_sorted(), len(columns) - len(ordered))


def _columns(candles: list[Candle], pair: str, interval: Interval) -> CandleColumns:
    return CandleColumns.from_candles(candles) if candles else CandleColumns.empty(pair, interval)


def parse_funding_rates(data: Any, symbol: str) -> list[tuple[int, Decimal]]:
    """`data` of GET /openApi/swap/v2/quote/fundingRate: (funding time, rate) of `symbol`, ascending and
    de-duplicated (the venue documents neither the order nor uniqueness)."""
    if not isinstance(data, list):
        raise WireFormatError("funding rates: expected a list")
    found: dict[int, Decimal] = {}
    for row in data:
        try:
            if str(row["symbol"]) != symbol:
                raise WireFormatError(f"funding rates: a row of {row['symbol']}, not {symbol}")
            rate = _decimal(row["fundingRate"], "fundingRate")
            found[_int(row["fundingTime"], "fundingTime")] = rate
        except (KeyError, TypeError) as error:
            raise WireFormatError(f"funding rate without {error}") from None
        if not rate.is_finite():
            raise WireFormatError(f"funding rate {rate} is not finite")
    return sorted(found.items())


def parse_contracts(data: Any) -> list[Contract]:
    """`data` of GET /openApi/swap/v2/quote/contracts. Tick and step sizes derive from the
    precisions (the venue sends no tickSize/stepSize)."""
    if not isinstance(data, list):
        raise WireFormatError("contracts: expected a list")
    contracts = []
    for row in data:
        try:
            contracts.append(
                Contract(
                    symbol=str(row["symbol"]),
                    price_precision=_int(row["pricePrecision"], "pricePrecision"),
                    quantity_precision=_int(row["quantityPrecision"], "quantityPrecision"),
                    min_quantity=_decimal(row.get("tradeMinQuantity", 0), "tradeMinQuantity"),
                    min_notional=_decimal(row.get("tradeMinUSDT", 0), "tradeMinUSDT"),
                    maker_fee_rate=_decimal(row.get("makerFeeRate", row.get("feeRate", 0)), "makerFeeRate"),
                    taker_fee_rate=_decimal(row.get("takerFeeRate", row.get("feeRate", 0)), "takerFeeRate"),
                    max_long_leverage=_int(row.get("maxLongLeverage", 1), "maxLongLeverage"),
                    max_short_leverage=_int(row.get("maxShortLeverage", 1), "maxShortLeverage"),
                    status=_int(row.get("status", 0), "status"),
                    api_tradable=_true(row.get("apiStateOpen")) and _true(row.get("apiStateClose")),
                )
            )
        except (KeyError, TypeError) as error:
            raise WireFormatError(f"contract without {error}") from None
    return contracts


def decode_frame(frame: bytes | str) -> str:
    """Server frames are binary GZIP-compressed UTF-8 (heartbeats too); tolerate plain text."""
    if isinstance(frame, str):
        return frame
    try:
        inflated = gzip.decompress(frame)
    except (OSError, EOFError, zlib.error):
        inflated = None
    try:
        return (frame if inflated is None else inflated).decode("utf-8")
    except UnicodeDecodeError:
        what = "websocket frame is neither gzip nor UTF-8 text" if inflated is None else "gzip frame is not UTF-8"
        raise WireFormatError(what) from None


def _candle(pair: str, interval: Interval, time: Any, o: Any, h: Any, low: Any, c: Any, v: Any) -> Candle:
    open_time = _int(time, "time")
    if not 0 <= open_time <= MAX_OPEN_TIME_MS:
        raise WireFormatError(f"time is out of range: {open_time}")
    return Candle(
        pair,
        interval,
        open_time,
        _float(o, "open"),
        _float(h, "high"),
        _float(low, "low"),
        _float(c, "close"),
        _float(v, "volume"),
    )


def _float(value: Any, name: str) -> float:
    """A number (NaN and infinity included: the feature engine's integrity gate refuses them, as for the
    fast path); an integer beyond any float is refused here."""
    if type(value) is str:  # the wire's usual case, checked first on this hot path
        try:
            number = float(value)
        except ValueError:
            raise WireFormatError(f"{name} is not a number: {value[:40]!r}") from None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WireFormatError(f"{name} is {type(value).__name__}, not a number")
    else:
        try:
            number = float(value)
        except OverflowError:
            raise WireFormatError(f"{name} is too large for a number") from None
    return number


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise WireFormatError(f"{name} is a boolean, not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and len(value) <= 40 and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise WireFormatError(f"{name} is not an integer: {repr(value)[:40]}")


def _decimal(value: Any, name: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise WireFormatError(f"{name} is not a decimal: {value!r}") from None


def _true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")
