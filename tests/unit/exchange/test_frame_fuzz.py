"""Property: no websocket frame, however malformed, escapes the market-data client as an exception. A frame
is decoded (or refused as a `WireFormatError`), then handled: counted as malformed, its bad rows
rejected with a reason, or taken. Issue 16: one frame that escaped killed every pair's feed."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import VenueError, WireFormatError
from exchange.bingx.wire import decode_frame, parse_kline_response
from exchange.bingx.ws import KlineUpdate, MarketDataStream

TOPIC = "BTC-USDT@kline_1m"
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=16,
)
NUMBERS = (
    st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.sampled_from(["1e400", "-1e400", "nan", "inf", "9" * 5000, "1.5", "0", "-3", ""])
    | JSON
)
ROW = st.fixed_dictionaries({}, optional=dict.fromkeys(("T", "o", "h", "l", "c", "v"), NUMBERS)) | JSON
MESSAGE = st.fixed_dictionaries(
    {},
    optional={
        "dataType": st.sampled_from([TOPIC, "BTC-USDT@kline_7m", "@kline_", "x"]) | JSON,
        "s": st.sampled_from(["BTC-USDT", ""]) | JSON,
        "data": st.lists(ROW, max_size=3) | ROW,
        "id": JSON,
        "code": st.sampled_from([0, 100410, 109429, "0"]) | JSON,
        "msg": JSON,
    },
)


def stream() -> MarketDataStream:
    return MarketDataStream("ws://127.0.0.1:9", [TOPIC])


def handle(client: MarketDataStream, text: str) -> KlineUpdate | None:
    try:
        return client._handle(text, {})
    except Exception as error:  # the property: nothing escapes
        raise AssertionError(f"{type(error).__name__} escaped for {text[:200]!r}") from error


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSAGE)
def test_any_json_frame_is_handled_or_counted(message: dict[str, Any]) -> None:
    client = stream()
    update = handle(client, json.dumps(message))
    if update is not None:
        assert all(row.reason for row in update.batch.rejected)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_any_bytes_decode_to_text_or_a_wire_format_error(payload: bytes, compressed: bool) -> None:
    frame = gzip.compress(payload) if compressed else payload
    try:
        text = decode_frame(frame)
    except WireFormatError:
        return
    handle(stream(), text)


def test_nesting_deeper_than_the_parser_goes_is_counted() -> None:
    client = stream()
    assert handle(client, "[" * 100_000 + "]" * 100_000) is None
    assert client.stats.malformed == 1


KLINES = st.fixed_dictionaries(
    {"code": st.sampled_from([0, 100410, 109400]) | JSON},
    optional={"data": st.lists(ROW | st.lists(NUMBERS, max_size=7), max_size=3) | JSON, "msg": JSON},
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([200, 400, 429, 500, 504]), KLINES | JSON, st.binary(max_size=60))
def test_any_rest_kline_answer_parses_or_is_a_venue_error(status: int, document: Any, junk: bytes) -> None:
    for body in (json.dumps(document).encode(), junk, b"[" * 50_000):
        try:
            batch = parse_kline_response(status, body, "BTC-USDT", "1m")
        except VenueError:  # WireFormatError included: a refusal with its reason
            continue
        except Exception as error:
            raise AssertionError(f"{type(error).__name__} escaped for {body[:200]!r}") from error
        assert all(row.reason for row in batch.rejected)


def test_a_rest_answer_nested_deeper_than_any_real_one_is_a_wire_format_error() -> None:
    """Found by the reliability suite's fuzzing: the fast path's decoder raised RecursionError."""
    body = b'{"code": 0, "msg": ' + b"[" * 3000 + b"]" * 3000 + b', "data": []}'
    with pytest.raises(WireFormatError, match="not JSON"):
        parse_kline_response(200, body, "BTC-USDT", "1m")


def test_a_rest_open_time_past_int64_is_a_rejected_row_not_an_overflow() -> None:
    """Found by the full reliability suite's fuzzing (10,000 inputs): the fast path's column build raised
    OverflowError on an open time msgspec decoded as an unsigned 64-bit integer."""
    body = b'{"code":0,"data":[{"open":"1","close":"1","high":"1","low":"1","volume":"1","time":18446744073709551615}]}'
    batch = parse_kline_response(200, body, "BTC-USDT", "1m")
    assert len(batch.columns) == 0
    assert [row.reason for row in batch.rejected] == ["malformed kline: time is out of range: 18446744073709551615"]
