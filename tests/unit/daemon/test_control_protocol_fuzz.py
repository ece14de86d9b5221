"""The control protocol is a total boundary: any line gives a request or a `ProtocolError` with a stable
code, never another exception, and an error answer can always be encoded (issue 16). Strings that
PostgreSQL cannot store (U+0000, lone surrogates) are refused before any command runs."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.control_protocol import ControlRequest, ProtocolError, encode_response, error, parse_request

TOKEN = "t0ken"
COMMANDS = frozenset({"status", "pause", "resume", "shutdown"})
FUZZ = settings(max_examples=1000, deadline=None)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "cmd": st.sampled_from(sorted(COMMANDS)) | st.text(max_size=10) | json_values,
        "token": st.just(TOKEN) | st.text(max_size=10) | json_values,
        "id": st.integers() | st.text(max_size=10) | json_values,
        "pair": st.sampled_from(["BTC-USDT", "btc-usdt", ""]) | json_values,
        "reason": json_values,
    },
)


def outcome(line: bytes) -> ControlRequest | ProtocolError:
    try:
        return parse_request(line, TOKEN, COMMANDS)
    except ProtocolError as refused:
        encode_response(error(refused.code, refused.message, refused.request_id))  # the answer can be sent
        return refused


@FUZZ
@given(line=st.binary(max_size=300))
def test_any_bytes_give_a_request_or_a_protocol_error(line: bytes) -> None:
    assert isinstance(outcome(line), ControlRequest | ProtocolError)


@FUZZ
@given(request=requests)
def test_any_json_object_gives_a_request_or_a_protocol_error(request: dict[str, object]) -> None:
    line = json.dumps(request).encode()  # ensure_ascii: lone surrogates arrive as \\ud800 escapes
    result = outcome(line)
    if isinstance(result, ControlRequest):
        assert result.cmd in COMMANDS
        json.dumps(dict(result.args), ensure_ascii=False).encode("utf-8")  # storable as the audit's jsonb


@pytest.mark.parametrize(
    "line",
    [
        b'{"cmd":"pause","token":"t0ken","pair":"BTC\\ud800-USDT","id":1}',
        b'{"cmd":"pause","token":"\\udfff","id":2}',
        b'{"cmd":"status","token":"t0ken","id":"\\ud800"}',
        b'{"cmd":"status","token":"t0ken","\\ud83d":1}',
    ],
)
def test_a_lone_surrogate_anywhere_is_refused_as_bad_args(line: bytes) -> None:
    result = outcome(line)
    assert isinstance(result, ProtocolError)
    assert result.code == "bad_args"
    assert "lone surrogate" in result.message
