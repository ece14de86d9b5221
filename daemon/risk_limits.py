"""The `[risk]` settings as the trading kernel's limit set: the one the live risk guard applies, and the
one `tradingd train` and `tradingd evaluate` trade under (its exits and limits), so an agent is trained
and evaluated in the world it trades in. Cheap to import (the CLI's start-up rule)."""

from __future__ import annotations

from decimal import Decimal

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


def full_position_warning(initial_equity: Decimal, max_exposure: Decimal, limits: RiskLimits) -> str | None:
    """A warning when the limit set denies a full position from flat at the start (its order or position
    notional, or its leverage, below `max_exposure` of `initial_equity`): training and backtests deny it
    as live trading would, so such an agent never holds a full position."""
    full = initial_equity * max_exposure
    caps = [
        (name, value)
        for name, value in (
            ("max_order_notional", limits.max_order_notional),
            ("max_position_notional", limits.max_position_notional),
            ("max_leverage", limits.max_leverage * initial_equity),
        )
        if value < full
    ]
    if not caps:
        return None
    named = ", ".join(f"{name} {value}" for name, value in caps)
    return (
        f"the [risk] limit set {limits.name!r} denies a full position from flat ({max_exposure} x {initial_equity} "
        f"= {full} USDT notional; {named} USDT): training and backtests deny it as live trading would"
    )
