"""The feature actor's core on real candles: each candle decided once, in order, with the same features
as the dataset path; late, duplicated and out-of-order candles; gaps waited for, then gated; warm-up;
staleness after a catch-up; context candles fed before the base candles that use them."""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import pytest

from domain.candle_columns import CandleColumns
from domain.messages import MarketInput, decision_sequence
from features.definitions import feature_set
from features.gates import GAP, STALE
from features.pipeline import FeaturePipeline
from pipeline.features.core import CONTEXT_MISSING, WARMING_UP, FeatureCore, GateSettings, Missing
from trading.context import PairContext

from .resampling import resample

Load = Callable[[str], CandleColumns]
CONTEXT = PairContext("run-1", "BTC-USDT", "1m", "paper", "v1", "baseline:momentum", Decimal(10_000))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def opened(
    candles: CandleColumns, start: int, spec_name: str = "v1", context: dict | None = None
) -> tuple[FeatureCore, Clock]:
    clock = Clock()
    spec = feature_set(spec_name)
    core = FeatureCore(CONTEXT, spec, GateSettings(gap_patience_sec=5.0), clock=clock)
    history = candles.take(np.arange(0, start + 1))
    core.open(history, context or {}, int(candles.open_time_ms[start]))
    return core, clock


def one_by_one(core: FeatureCore, candles: list) -> list[MarketInput]:
    out = []
    for candle in candles:
        core.add([candle])
        out.extend(core.process())
    return out


def test_each_candle_is_decided_once_in_order_with_the_dataset_paths_features(real_candles: Load) -> None:
    candles = real_candles("BTCUSDT_1m").take(np.arange(0, 400))
    spec = feature_set("v1")
    start = spec.warmup_bars + 150
    core, _ = opened(candles, start)
    later = candles.to_candles()[start + 1 :]
    decided = one_by_one(core, later)
    assert [d.candle.open_time_ms for d in decided] == [c.open_time_ms for c in later]
    assert [d.sequence for d in decided] == [decision_sequence("1m", c.open_time_ms) for c in later]
    assert all(d.forced_hold is None for d in decided), {d.forced_hold for d in decided}
    reference = FeaturePipeline(spec, candles.take(np.arange(0, start + 1))).run(
        candles.take(np.arange(start + 1, 400))
    )
    np.testing.assert_array_equal(np.array([d.features for d in decided]), reference)
    first = decided[0]
    assert first.trace_id == f"BTC-USDT.1m.{first.candle.open_time_ms}"
    assert first.snapshot is not None
    assert first.snapshot.candle_count == 120
    assert first.snapshot.last_open_ms == first.candle.open_time_ms
    assert first.gates["integrity"]["passed"]
    assert first.gates["quality"]["passed"]


def test_late_duplicated_and_shuffled_candles_change_nothing(real_candles: Load) -> None:
    candles = real_candles("BTCUSDT_1m").take(np.arange(0, 300))
    start = 100
    in_order, _ = opened(candles, start)
    expected = one_by_one(in_order, candles.to_candles()[start + 1 :])
    shuffled, _ = opened(candles, start)
    later = candles.to_candles()[start + 1 :]
    rng = random.Random(7)
    decided: list[MarketInput] = []
    for i in range(0, len(later), 5):  # each batch shuffled, with a duplicate and an old candle again
        batch = later[i : i + 5] + later[i : i + 1] + candles.to_candles()[start - 3 : start]
        rng.shuffle(batch)
        shuffled.add(batch)
        decided.extend(shuffled.process())
    assert [d.candle for d in decided] == [d.candle for d in expected]
    # Many candles at once: those more than 2 minutes behind the newest are stale, as a catch-up's are.
    assert [d.features for d in decided] == [d.features for d in expected]


def test_a_gap_is_waited_for_then_passed_and_gated(real_candles: Load) -> None:
    candles = real_candles("BTCUSDT_1m").take(np.arange(0, 400))
    start = 100
    core, clock = opened(candles, start)
    later = candles.to_candles()[start + 1 :]
    assert len(one_by_one(core, later[:3])) == 3
    core.add(later[4:6])  # later[3] never comes
    assert core.process() == []
    hole = later[3].open_time_ms
    assert core.missing() == [Missing("1m", hole, hole + 60_000)]
    clock.now += 4.0
    assert core.process() == []
    clock.now += 1.5
    after = core.process()
    assert [d.candle.open_time_ms for d in after] == [c.open_time_ms for c in later[4:6]]
    assert all(d.forced_hold == GAP for d in after)
    rest = one_by_one(core, later[6:])
    gated = [d for d in rest if d.forced_hold == GAP]
    assert len(gated) == 120 - 2 - 1  # until the gap has left the 120-candle window
    assert rest[-1].forced_hold is None


def test_warming_up_holds_until_the_pipeline_has_its_history(real_candles: Load) -> None:
    candles = real_candles("BTCUSDT_1m").take(np.arange(0, 200))
    spec = feature_set("v1")
    core, _ = opened(candles, 10)  # 11 candles of history; v1 needs spec.warmup_bars
    assert core.warming_up
    decided = one_by_one(core, candles.to_candles()[11:])
    holds = [d for d in decided if d.forced_hold == WARMING_UP]
    assert len(holds) == spec.warmup_bars - 11
    assert all(d.features == () and d.snapshot is None for d in holds)
    assert not core.warming_up
    assert decided[len(holds)].forced_hold is None


def test_candles_decided_long_after_they_closed_are_stale(real_candles: Load) -> None:
    candles = real_candles("BTCUSDT_1m").take(np.arange(0, 200))
    core, _ = opened(candles, 100)
    core.add(candles.to_candles()[101:111])  # ten candles at once, as after a restart
    decided = core.process()
    assert [d.forced_hold for d in decided] == [STALE] * 7 + [None] * 3  # more than 120 s behind the newest


def test_context_candles_are_fed_before_the_base_candles_that_use_them(real_candles: Load) -> None:
    candles = real_candles("BTCUSDT_1m").take(np.arange(0, 2000))
    context = resample(candles, "5m")
    spec = feature_set("v1", context=("5m",))
    start = 5 * spec.warmup_bars + 100
    core, clock = opened(candles, start, spec.name, {"5m": context})
    base_later = candles.to_candles()[start + 1 :]
    decided: list[MarketInput] = []
    for candle in base_later:  # each 5m candle arrives with the first 1m candle opening at its close
        core.add([c for c in context.to_candles() if c.open_time_ms + 300_000 == candle.open_time_ms])
        core.add([candle])
        decided.extend(core.process())
    assert len(decided) == len(base_later)
    assert all(d.forced_hold is None for d in decided)
    closed = context.take(np.flatnonzero(context.open_time_ms + 300_000 <= candles.open_time_ms[start]))
    reference = FeaturePipeline(spec, candles.take(np.arange(0, start + 1)), {"5m": closed}).run(
        candles.take(np.arange(start + 1, 2000)), {"5m": context.take(np.arange(len(closed), len(context)))}
    )
    np.testing.assert_array_equal(np.array([d.features for d in decided]), reference)
    # A base candle whose context has not come waits, then holds with the reason.
    lagging, clock = opened(candles, start, spec.name, {"5m": closed})
    boundary = next(c for c in base_later if c.open_time_ms % 300_000 == 0)
    before = [c for c in base_later if c.open_time_ms < boundary.open_time_ms]
    for candle in before:
        lagging.add([c for c in context.to_candles() if c.open_time_ms + 300_000 == candle.open_time_ms])
    one_by_one(lagging, before)
    lagging.add([boundary])
    assert lagging.process() == []
    assert lagging.missing()[0].interval == "5m"
    clock.now += 10
    (held,) = lagging.process()
    assert held.forced_hold == CONTEXT_MISSING


def test_the_core_refuses_an_interval_its_feature_set_cannot_use() -> None:
    spec = feature_set("v1", context=("3m",))
    with pytest.raises(ValueError, match="3m"):  # neither a multiple nor a fraction of 5m
        FeatureCore(PairContext("r", "BTC-USDT", "5m", "paper", spec.name, "p", Decimal(1)), spec, GateSettings())


def test_1m_context_under_5m_decisions_is_there_before_the_decision_and_equals_the_dataset_path(
    real_candles: Load,
) -> None:
    """5m decisions over the 1m feed: the 1m candles arrive as they close (five per 5m candle, the last
    with the 5m candle itself); each decision uses the 1m candle that closed a minute earlier, never waits
    for the one closing with it, and has the dataset path's features."""
    minutes = real_candles("BTCUSDT_1m").take(np.arange(0, 8_000))
    five = resample(minutes, "5m")
    spec = feature_set("v1", context=("1m",))
    context = PairContext("run-1", "BTC-USDT", "5m", "paper", spec.name, "baseline:momentum", Decimal(10_000))
    start = spec.warmup_bars + 10
    opened_at = int(five.open_time_ms[start])
    core = FeatureCore(context, spec, GateSettings(gap_patience_sec=5.0), clock=Clock())
    known = minutes.take(np.flatnonzero(minutes.open_time_ms < opened_at + 300_000))
    core.open(five.take(np.arange(0, start + 1)), {"1m": known}, opened_at)
    decided: list[MarketInput] = []
    ones = minutes.to_candles()
    core.add([c for c in ones if c.open_time_ms == opened_at + 240_000])  # past the opened one's cutoff
    for candle in five.to_candles()[start + 1 :]:
        closing = candle.open_time_ms + 300_000
        # The 1m candles of this 5m candle, all but the last, before it; the last one arrives after it.
        early = [c for c in ones if candle.open_time_ms <= c.open_time_ms < closing - 60_000]
        core.add(early)
        core.add([candle])
        decided.extend(core.process())
        core.add([c for c in ones if c.open_time_ms == closing - 60_000])
    assert len(decided) == len(five) - start - 1
    assert all(d.forced_hold is None for d in decided), "no decision waited for the 1m candle closing with it"
    cutoff = opened_at + 240_000
    closed = minutes.take(np.flatnonzero(minutes.open_time_ms + 60_000 <= cutoff))
    reference = FeaturePipeline(
        spec,
        five.take(np.arange(0, start + 1)),
        {"1m": closed.take(np.arange(len(closed) - spec.warmup_bars, len(closed)))},
    ).run(five.take(np.arange(start + 1, len(five))), {"1m": minutes.take(np.arange(len(closed), len(minutes)))})
    np.testing.assert_array_equal(np.array([d.features for d in decided]), reference)
