"""The reliability suite's progress check: every pair must have decided, not only some (CI saw a kill -9
trial pass its wait on BTC alone, then fail on ETH with no decision at all)."""

from reliability.invariants import newest_of_every


def test_a_pair_without_decisions_holds_the_progress_at_zero() -> None:
    assert newest_of_every(("BTC-USDT", "ETH-USDT"), {"BTC-USDT": 600_000}) == 0


def test_the_progress_is_the_slowest_pair() -> None:
    assert newest_of_every(("BTC-USDT", "ETH-USDT"), {"BTC-USDT": 600_000, "ETH-USDT": 540_000}) == 540_000
