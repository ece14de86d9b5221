"""The watchdog's progress rule: stalled when every running pair holds an arrived candle it has not
decided for `stall_after_sec`; never for a pair that simply has no new candle."""

from __future__ import annotations

from daemon.progress_watch import ProgressWatch

MINUTE = 60_000


def test_a_pair_that_decides_what_arrives_never_stalls() -> None:
    watch = ProgressWatch(stall_after_sec=30)
    for second in range(0, 600, 5):
        candle = (second // 60) * MINUTE
        # the decision follows the candle within a tick
        watch.observe("BTC-USDT", candle, candle if second % 60 else candle - MINUTE, now=second)
        assert watch.stalled(["BTC-USDT"], now=second) == {}


def test_candles_arriving_undecided_stall_the_pair_after_the_limit() -> None:
    watch = ProgressWatch(stall_after_sec=30)
    watch.observe("BTC-USDT", 10 * MINUTE, 10 * MINUTE, now=0)
    for second in (5, 20, 34):
        watch.observe("BTC-USDT", 11 * MINUTE, 10 * MINUTE, now=second)
    assert watch.stalled(["BTC-USDT"], now=34) == {}
    watch.observe("BTC-USDT", 12 * MINUTE, 10 * MINUTE, now=36)
    assert watch.stalled(["BTC-USDT"], now=36) == {"BTC-USDT": 31.0}
    watch.observe("BTC-USDT", 12 * MINUTE, 11 * MINUTE, now=40)  # a decision: progress, the clock restarts
    assert watch.stalled(["BTC-USDT"], now=40) == {}
    watch.observe("BTC-USDT", 12 * MINUTE, 12 * MINUTE, now=41)
    assert watch.stalled_for("BTC-USDT", now=100) is None


def test_no_new_candle_is_not_a_stall() -> None:
    watch = ProgressWatch(stall_after_sec=30)
    for second in range(0, 600, 5):  # a silent feed (venue outage, quiet market)
        watch.observe("BTC-USDT", 10 * MINUTE, 10 * MINUTE, now=second)
    watch.observe("ETH-USDT", None, None, now=0)
    assert watch.stalled(["BTC-USDT", "ETH-USDT"], now=600) == {}


def test_the_daemon_is_stalled_only_when_every_running_pair_is() -> None:
    watch = ProgressWatch(stall_after_sec=30)
    watch.observe("BTC-USDT", 11 * MINUTE, 10 * MINUTE, now=0)
    watch.observe("ETH-USDT", 11 * MINUTE, 11 * MINUTE, now=0)
    assert watch.stalled(["BTC-USDT", "ETH-USDT"], now=60) == {}
    assert watch.stalled(["BTC-USDT"], now=60) == {"BTC-USDT": 60.0}, "ETH not running: BTC alone counts"
    watch.observe("ETH-USDT", 12 * MINUTE, 11 * MINUTE, now=60)
    assert watch.stalled(["BTC-USDT", "ETH-USDT"], now=95) == {"BTC-USDT": 95.0, "ETH-USDT": 35.0}
    watch.forget("ETH-USDT")  # restarted: its new actors are watched afresh
    assert watch.stalled(["BTC-USDT", "ETH-USDT"], now=95) == {}
    assert watch.stalled([], now=95) == {}
