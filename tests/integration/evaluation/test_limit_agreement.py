"""One limit fill model in the environment and the nautilus backtest: a scripted network that enters
with post-only limits as often as at market trades the same, bar by bar, in both, whether limits fill
on a touch or only on a cross, in one candle or over several, in full or by a share of the volume; the
rejections (an entry the open went through), the partial fills and the expiries all happen, and
nautilus's own account agrees with our book to the cent. A hand-built span checks each fill by hand."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from domain.candle_columns import CandleColumns
from domain.limit_orders import LimitRules, Trigger
from features.definitions import V2
from features.normalization import NormalizationStats
from learning.agent_config import Environment, LimitEntries, Reward
from learning.env import MarketData, TradingEnv
from learning.evaluation.backtest import BacktestSettings, run_backtest
from learning.evaluation.metrics import replay
from policies.artifact import PolicyArtifact
from policies.baselines import ArtifactPolicy, Decision
from tests.integration.evaluation.test_backtest_agreement import (  # one contract and limit set for both
    CONTRACT,
    RULES,
    STOPS,
    scripted_artifact,
)
from trading.limits import RiskLimits

ENTRIES = ("market", "limit")


def limit_artifact() -> PolicyArtifact:
    """Six actions (short, flat, long, each at market and as a limit), their logits V2 scaled features, so
    the agent moves often and enters both ways."""
    return scripted_artifact(
        0.0,
        ("ret_1", "ret_5", "ret_15", "ret_60", "body_ratio", "ret_zscore_60"),
        (-1.0, 0.0, 1.0, -1.0, 0.0, 1.0),
        ("market", "market", "market", "limit", "limit", "limit"),
    )


@pytest.mark.parametrize(
    ("trigger", "expiry", "share"),
    [("touch", 1, None), ("cross", 3, None), ("touch", 4, "0.0005"), ("cross", 2, "0.001")],
)
def test_limit_entries_fill_alike_in_the_environment_and_the_backtest(
    span: tuple[CandleColumns, np.ndarray], trigger: Trigger, expiry: int, share: str | None
) -> None:
    candles, features = span
    policy = ArtifactPolicy(limit_artifact(), V2)
    limit = LimitEntries(trigger=trigger, expiry_bars=expiry, volume_share=None if share is None else float(share))
    assert limit.rules == LimitRules(trigger, expiry, None if share is None else Decimal(share))
    settings = BacktestSettings(CONTRACT, RULES, Decimal(10_000), max_exposure=1.0, leverage=5, limits=STOPS,
                                limit_rules=limit.rules)  # fmt: skip
    result = run_backtest(policy, candles, features, settings)
    book = replay(result.segment)
    assert result.rejections == ()

    market = MarketData(candles.open, candles.close, features, policy.artifact.normalization, None,
                        candles.high, candles.low, candles.volume)  # fmt: skip
    environment = Environment(episode_bars=len(candles), initial_equity=10_000.0, max_exposure=1.0, slippage_bps=2.0,
                              bust_equity_fraction=0.0, entries=ENTRIES, limit=limit)  # fmt: skip
    env = TradingEnv({"market": market, "rules": RULES, "environment": environment, "reward": Reward(),
                      "limits": STOPS, "pair": "BTC-USDT"})  # fmt: skip
    observation, _ = env.reset(options={"start": 0})
    placed = 0
    ended: dict[str, int] = {}
    for decision in result.decisions:
        ours = policy.decide_inputs(observation)
        assert (ours.target, ours.action, ours.entry) == (decision.target, decision.action, decision_entry(decision))
        observation, _, terminated, _, info = env.step(env.action_for(ours.target, ours.entry))
        placed += sum(1 for order in info["orders"] if order.limit_price is not None)
        if info["limit_ended"] is not None:
            ended[info["limit_ended"]] = ended.get(info["limit_ended"], 0) + 1
        row = decision.row + 1
        assert not terminated
        assert Decimal(repr(info["position"])) == Decimal(repr(float(book.position[row]))), f"bar {row}"
        assert info["resting"] == float(result.books[row].resting), f"bar {row}"
        assert info["equity"] == pytest.approx(book.equity[row], abs=1e-6), f"bar {row}"
    makers = [timed.fill for timed in result.segment.fills if timed.fill.liquidity == "maker"]
    assert placed > 20, "the agent should enter with limits often enough to compare"
    assert len(makers) > 20
    assert any(timed.fill.liquidity == "taker" for timed in result.segment.fills)
    # Entries fill and expire (a rejection and an exit's cancel are rare on 1m candles: the hand-built test has them).
    assert {"filled", "expired"} <= set(ended), ended
    if share is not None:
        assert len(makers) > placed, "a share of the volume should fill some entries over several candles"
    assert env.trades == len(result.segment.fills)
    assert float(env.position.fees) == pytest.approx(float(sum(timed.fill.fee for timed in result.segment.fills)))
    assert result.venue_balance == pytest.approx(result.ledger_balance, abs=Decimal("0.00000001"))


def decision_entry(decision: object) -> str:
    """The entry kind the backtest's policy chose (its action's)."""
    action = decision.action
    return "limit" if action is not None and action >= 3 else "market"


SCRIPT: dict[int, tuple[float | None, str]] = {
    0: (1.0, "limit"),  # BUY 0.2 at 50000.0: the next open is 2 bps below it, so post-only rejects it
    1: (1.0, "limit"),  # BUY 0.2 at 49980.0: half fills (a thin candle), the rest expires 3 candles on
    2: (-1.0, "market"),  # ignored: an entry rests
    4: (1.0, "limit"),  # BUY the 0.1 left at 49985.0: 0.05 fills, the rest rests ...
    6: (None, "market"),  # ... until the take-profit exit cancels it and sells the 0.15 at market
    7: (-1.0, "limit"),  # SELL 0.1996 at 50300.0: the high reaches it, it fills in full
    8: (0.0, "market"),  # buy it back at market
}
"""Decisions by bar (target, entry); bars not named HOLD."""


class ScriptedPolicy:
    name = "scripted"

    def decide(self, market_features: np.ndarray, state: np.ndarray) -> Decision:
        target, entry = SCRIPT.get(int(market_features[0]), (None, "market"))
        return Decision(target, 1.0, None, None if target is not None else "scripted", entry=entry)  # type: ignore[arg-type]


def scripted_candles() -> CandleColumns:
    """Eleven 1m candles (open, high, low, close, volume) built for `SCRIPT`."""
    rows = [
        (50000, 50000, 50000, 50000, 100),
        (49980, 49990, 49970, 49980, 100),
        (49985, 49990, 49975, 49985, 0.2),
        (49983, 49990, 49981, 49985, 100),
        (49983, 49990, 49981, 49985, 100),
        (49990, 49995, 49984, 49988, 0.1),
        (49990, 50300, 49988, 50300, 100),
        (50300, 50300, 50300, 50300, 100),
        (50310, 50320, 50305, 50310, 100),
        (50310, 50310, 50310, 50310, 100),
        (50310, 50310, 50310, 50310, 100),
    ]
    table = np.array(rows, dtype=np.float64)
    start = 1_735_689_600_000
    return CandleColumns(
        "BTC-USDT",
        "1m",
        np.arange(start, start + len(rows) * 60_000, 60_000, dtype=np.int64),
        table[:, 0], table[:, 1], table[:, 2], table[:, 3], table[:, 4], table[:, 4] * table[:, 3],
    )  # fmt: skip


def test_limit_entries_hand_checked_in_the_environment_and_the_backtest() -> None:
    """A rejection at the open, a partial fill by the volume share, an expiry, a partial fill then an exit
    that cancels the rest, a full fill on the high: the fills checked by hand, alike in both."""
    candles = scripted_candles()
    features = np.arange(len(candles), dtype=np.float64)[:, None]
    rules = LimitRules("touch", 3, Decimal("0.5"))
    limits = RiskLimits("stops", Decimal(20_000), Decimal(20_000), 3, Decimal(2), Decimal("0.004"), Decimal("0.006"))
    settings = BacktestSettings(CONTRACT, RULES, Decimal(10_000), max_exposure=1.0, leverage=5, limits=limits,
                                limit_rules=rules)  # fmt: skip
    result = run_backtest(ScriptedPolicy(), candles, features, settings)  # type: ignore[arg-type]
    expected = [
        (2, "BUY", "0.1000", "49980.0", "0.99960000", "maker"),
        (5, "BUY", "0.0500", "49985.0", "0.49985000", "maker"),
        (7, "SELL", "0.1500", "50289.9", "3.77174250", "taker"),
        (8, "SELL", "0.1996", "50300.0", "2.00797600", "maker"),
        (9, "BUY", "0.1996", "50320.1", "5.02194598", "taker"),
    ]
    wanted = [(bar, side, Decimal(q), Decimal(p), Decimal(f), kind) for bar, side, q, p, f, kind in expected]
    timed = result.segment.fills
    assert [(t.bar, t.fill.side, t.fill.quantity, t.fill.price, t.fill.fee, t.fill.liquidity) for t in timed] == wanted
    assert result.venue_balance == pytest.approx(result.ledger_balance, abs=Decimal("0.00000001"))
    assert result.rejections == ()

    market = MarketData(candles.open, candles.close, features, NormalizationStats.of(("row",), features), None,
                        candles.high, candles.low, candles.volume)  # fmt: skip
    limit = LimitEntries(trigger="touch", expiry_bars=3, volume_share=0.5)
    environment = Environment(episode_bars=16, initial_equity=10_000.0, max_exposure=1.0, slippage_bps=2.0,
                              entries=ENTRIES, limit=limit)  # fmt: skip
    env = TradingEnv({"market": market, "rules": RULES, "environment": environment, "reward": Reward(),
                      "limits": limits, "pair": "BTC-USDT"})  # fmt: skip
    env.reset(options={"start": 0})
    ended = []
    fills = []
    for row in range(len(candles) - 1):
        target, entry = SCRIPT.get(row, (None, "market"))
        _, _, _, _, info = env.step(env.action_for(target, entry))  # type: ignore[arg-type]
        ended.append(info["limit_ended"])
        fills += [(row + 1, f.side, f.quantity, f.price, f.fee, f.liquidity) for f in info["fills"]]
    assert fills == wanted
    assert ended == [
        "rejected", None, None, "expired", None, None, "cancelled", "filled", None, None,
    ]  # fmt: skip
