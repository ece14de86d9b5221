"""The `[risk]` settings as the trading kernel's limit set: the one the live risk guard applies, and the
one `tradingd train` and `tradingd evaluate` trade under (its exits and limits), so an agent is trained
and evaluated in the world it trades in. Cheap to import (the CLI's start-up rule)."""

from __future__ import annotations

from config import Settings
from trading.limits import RiskLimits


def risk_limits(settings: Settings) -> RiskLimits:
    risk = settings.risk
    return RiskLimits(
        risk.name,
        risk.max_position_notional,
        risk.max_order_notional,
        risk.max_orders_per_interval,
        risk.max_leverage,
        risk.stop_loss_pct,
        risk.take_profit_pct,
        frozenset(risk.allowed_instruments),
    )
