"""What an open position must carry on a live venue: a reduce-only stop (and take-profit) for all of it, at
the limit set's distances from its entry, rounded onto the tick away from the entry so the venue never
triggers before the risk guard's own exit would."""

from __future__ import annotations

from decimal import Decimal

from domain.fills import FillRules
from trading.limits import PairRiskGuard, RiskLimits
from trading.protection import Protection, ProtectionRule, wanted

D = Decimal
RULES = FillRules(D("0.1"), D("0.001"), D("0.001"), D(5), D("0.0002"), D("0.0005"), D(0))


def test_a_long_and_a_short_each_get_their_stop_and_take_profit() -> None:
    rule = ProtectionRule(D("0.02"), D("0.05"))
    assert wanted(D("0.5"), D("100.1"), rule, RULES) == [
        Protection("stop_loss", "SELL", D("0.5"), D("98.0")),  # 98.098 down the tick
        Protection("take_profit", "SELL", D("0.5"), D("105.2")),  # 105.105 up the tick
    ]
    assert wanted(D("-0.3"), D("100.1"), rule, RULES) == [
        Protection("stop_loss", "BUY", D("0.3"), D("102.2")),  # 102.102 up the tick
        Protection("take_profit", "BUY", D("0.3"), D("95.0")),  # 95.095 down the tick
    ]
    assert wanted(D(0), D("100"), rule, RULES) == []
    assert [p.kind for p in wanted(D(1), D(100), ProtectionRule(D("0.02")), RULES)] == ["stop_loss"]


def test_the_venue_never_triggers_before_the_risk_guards_exit() -> None:
    guard = PairRiskGuard("BTC-USDT", RiskLimits("t", D(6_000), D(6_000), 3, D(1), D("0.02"), D("0.05")))
    rule = ProtectionRule(D("0.02"), D("0.05"))
    for entry in (D("100.1"), D("97.37"), D("123.45"), D("0.5")):
        for quantity in (D(1), D(-1)):
            for order in wanted(quantity, entry, rule, RULES):
                assert guard.exit_reason(quantity, entry, order.trigger) == order.kind
