"""A backtest's world records the limit set it traded under, and the report page names it."""

from __future__ import annotations

from decimal import Decimal

from domain.fills import FillRules
from domain.instruments import Contract
from learning.evaluation.backtest import BacktestSettings
from learning.evaluation.report import _risk_note
from trading.limits import RiskLimits

D = Decimal
CONTRACT = Contract("BTC-USDT", 1, 4, D("0.0001"), D(2), D("0.0002"), D("0.0005"), 125, 125, 1, True)
LIMITS = RiskLimits("default", D(6_000), D(6_000), 2, D(1), D("0.05"), None, frozenset({"BTC-USDT"}))


def test_the_world_records_the_limit_set_and_the_page_names_it() -> None:
    world = BacktestSettings(CONTRACT, FillRules.of(CONTRACT, D(2)), D(10_000), 0.5, 5, LIMITS).to_json()
    assert world["risk"] == {
        "name": "default",
        "max_position_notional": "6000",
        "max_order_notional": "6000",
        "max_orders_per_interval": 2,
        "max_leverage": "1",
        "stop_loss_pct": "0.05",
        "take_profit_pct": None,
        "allowed_instruments": ["BTC-USDT"],
    }
    note = _risk_note({"world": world})
    assert "the <code>default</code> limit set (stop_loss_pct 0.05, take_profit_pct None," in note
    bare = BacktestSettings(CONTRACT, FillRules.of(CONTRACT, D(2)), D(10_000), 0.5, 5).to_json()
    assert bare["risk"] is None
    assert "Risk limits: none" in _risk_note({"world": bare})
