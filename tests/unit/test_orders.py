"""The order state machine, deterministic client order ids and trading states."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.orders import (
    FINAL_STATES,
    ORDER_STATES,
    TRANSITIONS,
    OrderTransitionError,
    client_order_id,
    transition,
)
from domain.trading_state import allows, strictest


def test_the_happy_paths_and_the_lost_response() -> None:
    for path in (
        ["intent", "submitted", "accepted", "partially_filled", "filled"],
        ["intent", "submitted", "unknown", "filled"],
        ["intent", "submitted", "accepted", "cancel_requested", "cancelled"],
        ["intent", "rejected"],
    ):
        for before, after in itertools.pairwise(path):
            transition(before, after, evidence="venue says so")  # type: ignore[arg-type]


@given(st.sampled_from(ORDER_STATES), st.sampled_from(ORDER_STATES))
def test_nothing_leaves_a_final_state_and_no_final_state_is_entered_without_evidence(before: str, after: str) -> None:
    allowed = after in TRANSITIONS[before]  # type: ignore[index]
    if before in FINAL_STATES:
        assert not allowed
    if not allowed:
        with pytest.raises(OrderTransitionError, match=f"from {before} to {after}"):
            transition(before, after, evidence="x")  # type: ignore[arg-type]
    elif after in FINAL_STATES:
        with pytest.raises(OrderTransitionError, match="only with evidence"):
            transition(before, after)  # type: ignore[arg-type]
        assert transition(before, after, "order query: FILLED").evidence == "order query: FILLED"  # type: ignore[arg-type]


def test_intents_cannot_skip_the_submit() -> None:
    with pytest.raises(OrderTransitionError):
        transition("intent", "filled", evidence="paper")


@given(st.uuids(), st.sampled_from(["BTC-USDT", "ETH-USDT", "1000PEPE-USDT"]), st.integers(0, 10**11 - 2))
def test_client_order_ids_are_deterministic_short_lower_case_and_distinct(run: object, pair: str, seq: int) -> None:
    cid = client_order_id(str(run), pair, seq)
    assert cid == client_order_id(str(run), pair, seq)
    assert 1 <= len(cid) <= 40
    assert cid == cid.lower()
    assert cid != client_order_id(str(run), pair, seq + 1)
    assert cid != client_order_id(str(run), "XRP-USDT", seq)


def test_sequences_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="sequence"):
        client_order_id("run", "BTC-USDT", 10**11)


def test_trading_states() -> None:
    assert allows("ACTIVE", False)
    assert allows("REDUCING", True)
    assert not allows("REDUCING", False)
    assert not allows("HALTED", True)
    assert strictest("ACTIVE", "REDUCING") == "REDUCING"
    assert strictest("HALTED", "ACTIVE", "REDUCING") == "HALTED"
