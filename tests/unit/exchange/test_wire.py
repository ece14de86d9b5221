"""Wire parsers on the payloads quoted in ../shared/bingx/API.md, and on broken ones."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pytest

from domain.errors import (
    DuplicateClientOrderIdError,
    FatalVenueError,
    OrderNotFoundError,
    RateLimitedError,
    RejectedError,
    TemporaryVenueError,
    UnknownOutcomeError,
    UnknownSymbolError,
    WireFormatError,
)
from exchange.bingx.wire import (
    decode_frame,
    parse_contracts,
    parse_envelope,
    parse_kline_push,
    parse_kline_response,
    parse_rest_klines,
)


def body(document: object) -> bytes:
    return json.dumps(document).encode()


def test_success_envelope_returns_data() -> None:
    assert parse_envelope(200, b'{"code":0,"msg":"","data":{"serverTime":1675319535362}}') == {
        "serverTime": 1675319535362
    }


def test_big_order_ids_keep_every_digit() -> None:
    raw = b'{"code":0,"msg":"","data":{"order":{"orderId":1742930526912864656}}}'
    assert parse_envelope(200, raw)["order"]["orderId"] == 1742930526912864656


@pytest.mark.parametrize(
    ("code", "family"),
    [
        (100001, FatalVenueError),
        (100413, FatalVenueError),
        (100410, RateLimitedError),
        (109429, RateLimitedError),
        (100421, TemporaryVenueError),
        (109500, TemporaryVenueError),
        (80016, OrderNotFoundError),
        (109421, OrderNotFoundError),
        (101481, DuplicateClientOrderIdError),
        (101204, RejectedError),
        (109400, RejectedError),
    ],
)
def test_business_errors_come_with_http_200_and_map_to_families(code: int, family: type[Exception]) -> None:
    with pytest.raises(family) as error:
        parse_envelope(200, body({"code": code, "msg": "nope", "data": {}}))
    assert error.value.code == code  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("code", "message"),
    [(109425, "symbol FOO-USDT does not exist"), (109400, "symbol not exist"), (109400, "Symbol does not exist")],
)
def test_an_unknown_symbol_is_its_own_permanent_family(code: int, message: str) -> None:
    with pytest.raises(UnknownSymbolError) as error:
        parse_envelope(200, body({"code": code, "msg": message, "data": {}}))
    assert isinstance(error.value, RejectedError)  # refused, not temporary: never retried
    assert not isinstance(error.value, TemporaryVenueError)


@pytest.mark.parametrize(
    ("status", "family"),
    [
        (429, RateLimitedError),
        (418, RateLimitedError),
        (401, FatalVenueError),
        (500, TemporaryVenueError),
        (504, UnknownOutcomeError),
        (404, RejectedError),
    ],
)
def test_http_errors_without_envelope(status: int, family: type[Exception]) -> None:
    with pytest.raises(family):
        parse_envelope(status, b"<html>gateway</html>")


def test_a_banned_ip_waits_minutes() -> None:
    with pytest.raises(RateLimitedError) as error:
        parse_envelope(418, b"")
    assert error.value.retry_after_sec >= 300


def test_non_json_success_is_a_wire_error() -> None:
    with pytest.raises(WireFormatError):
        parse_envelope(200, b"not json")


def test_rest_klines_object_form_is_sorted_and_deduplicated() -> None:
    data = [
        {
            "open": "0.7065",
            "close": "0.7070",
            "high": "0.7081",
            "low": "0.7060",
            "volume": "10.00",
            "time": 1702717260000,
        },
        {
            "open": "0.7034",
            "close": "0.7065",
            "high": "0.7081",
            "low": "0.7033",
            "volume": "635494.00",
            "time": 1702717200000,
        },
        {
            "open": "0.7065",
            "close": "0.7071",
            "high": "0.7082",
            "low": "0.7060",
            "volume": "11.00",
            "time": 1702717260000,
        },
    ]
    batch = parse_rest_klines(data, "DOGE-USDT", "1m")
    assert [c.open_time_ms for c in batch.candles] == [1702717200000, 1702717260000]
    assert batch.unsorted is True
    assert batch.duplicates == 1
    assert batch.candles[1].close == 0.7071  # the last received row wins
    assert batch.candles[0].volume == 635494.0


def test_rest_klines_array_form_and_legacy_single_object() -> None:
    arrays = [[1702717200000, "1", "2", "0.5", "1.5", "3", 1702717259999]]
    assert parse_rest_klines(arrays, "BTC-USDT", "1m").candles[0].high == 2.0
    single = {"open": "1", "close": "1", "high": "1", "low": "1", "volume": "0", "time": 1702717200000}
    assert len(parse_rest_klines(single, "BTC-USDT", "1m").candles) == 1
    assert parse_rest_klines(None, "BTC-USDT", "1m").candles == []


def test_malformed_kline_rows_are_rejected_with_a_reason() -> None:
    data = [
        {"open": "1", "close": "1", "high": "1", "low": "1", "volume": "0", "time": 1702717200000},
        {"open": "x", "close": "1", "high": "1", "low": "1", "volume": "0", "time": 1702717260000},
        {"close": "1", "high": "1", "low": "1", "volume": "0", "time": 1702717320000},
        {"open": "1", "close": "1", "high": "1", "low": "1", "volume": "0", "time": True},
        "garbage",
    ]
    batch = parse_rest_klines(data, "BTC-USDT", "1m")
    assert len(batch.candles) == 1
    reasons = [row.reason for row in batch.rejected]
    assert reasons[0] == "malformed kline: open is not a number: 'x'"
    assert "open" in reasons[1]
    assert "time is a boolean" in reasons[2]
    assert reasons[3] == "neither a kline object nor a kline array"


def test_kline_push_array_form_from_live_traffic() -> None:
    message = {
        "code": 0,
        "dataType": "BTC-USDT@kline_1m",
        "s": "BTC-USDT",
        "data": [{"c": "43561.3", "o": "43557.5", "h": "43563.0", "l": "43553.0", "v": "13.8908", "T": 1703300820000}],
    }
    (candle,) = parse_kline_push(message, "1m").candles
    assert (candle.pair, candle.open_time_ms, candle.open, candle.close) == (
        "BTC-USDT",
        1703300820000,
        43557.5,
        43561.3,
    )


def test_kline_push_object_form_and_symbol_from_data_type() -> None:
    message = {
        "dataType": "ETH-USDT@kline_5m",
        "data": {"c": "1", "o": "1", "h": "1", "l": "1", "v": "0", "T": 1703300700000},
    }
    (candle,) = parse_kline_push(message, "5m").candles
    assert candle.pair == "ETH-USDT"


def test_contracts_derive_tick_and_step() -> None:
    data = [
        {
            "contractId": "100",
            "symbol": "BTC-USDT",
            "quantityPrecision": 4,
            "pricePrecision": 1,
            "feeRate": 0.0005,
            "makerFeeRate": 0.0002,
            "takerFeeRate": 0.0005,
            "tradeMinQuantity": 0.0001,
            "tradeMinUSDT": 2,
            "maxLongLeverage": 125,
            "maxShortLeverage": 125,
            "currency": "USDT",
            "asset": "BTC",
            "status": 1,
            "apiStateOpen": "true",
            "apiStateClose": "true",
        }
    ]
    (contract,) = parse_contracts(data)
    assert contract.tick_size == Decimal("0.1")
    assert contract.step_size == Decimal("0.0001")
    assert contract.min_notional == Decimal("2")
    assert contract.taker_fee_rate == Decimal("0.0005")
    assert contract.active


def test_frames_are_gzip_and_ping_is_literal() -> None:
    assert decode_frame(gzip.compress(b"Ping")) == "Ping"
    assert json.loads(decode_frame(gzip.compress(b'{"id":"1","code":0,"msg":""}')))["code"] == 0
    assert decode_frame("Ping") == "Ping"
    with pytest.raises(WireFormatError):
        decode_frame(b"\xff\xfe\x00garbage")


KLINE_ROWS = [
    {"open": "0.7065", "close": "0.7071", "high": "0.7082", "low": "0.7060", "volume": "11.00", "time": 1702717260000},
    {
        "open": "0.7068",
        "close": "0.7065",
        "high": "0.7081",
        "low": "0.7033",
        "volume": "635494.00",
        "time": 1702717200000,
    },
    {"open": 0.7066, "close": 0.707, "high": 0.708, "low": 0.706, "volume": 12, "time": "1702717260000"},
    {"open": "nan", "close": "1", "high": "1", "low": "1", "volume": "0", "time": 1702717320000},
]


@pytest.mark.parametrize(
    "data",
    [
        KLINE_ROWS,  # the usual shape, with a duplicate, unsorted, numbers as numbers and a NaN
        [],
        None,
        [[1702717200000, "1", "2", "0.5", "1.5", "3", 1702717259999]],  # arrays: the general path
        {"open": "1", "close": "1", "high": "1", "low": "1", "volume": "0", "time": 1702717200000},  # legacy single
        [*KLINE_ROWS, {"open": "x", "close": "1", "high": "1", "low": "1", "volume": "0", "time": 1}],  # one broken
        [{**KLINE_ROWS[0], "extra": [1, 2]}],  # unknown fields are ignored
    ],
)
def test_fast_kline_response_equals_the_general_parser(data: object) -> None:
    """The typed decoder is an optimisation only: whatever it accepts, the general parser reads the
    same way, and whatever it cannot type goes to the general parser."""
    fast = parse_kline_response(200, body({"code": 0, "msg": "", "data": data}), "DOGE-USDT", "1m")
    general = parse_rest_klines(data, "DOGE-USDT", "1m")
    assert repr(fast.candles) == repr(general.candles)  # repr: NaN compares unequal to itself
    assert [row.reason for row in fast.rejected] == [row.reason for row in general.rejected]
    assert (fast.unsorted, fast.duplicates) == (general.unsorted, general.duplicates)


def test_kline_response_errors_keep_their_families() -> None:
    with pytest.raises(RateLimitedError):
        parse_kline_response(200, body({"code": 100410, "msg": "slow down", "data": {}}), "BTC-USDT", "1m")
    with pytest.raises(TemporaryVenueError):
        parse_kline_response(502, b"<html>bad gateway</html>", "BTC-USDT", "1m")
    with pytest.raises(WireFormatError):
        parse_kline_response(200, b"not json", "BTC-USDT", "1m")
