"""`risk_limit_sets`, `account_risk_policies` and `account_risk_state`.

The daemon activates the limits its configuration names (one active set, one active account policy)
and keeps the account guard's state in `account_risk_state`, so a circuit breaker that tripped stays
tripped across restarts until an operator resumes it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import asyncpg

DEFAULT_ACCOUNT = "default"


@dataclass(frozen=True)
class LimitSetRow:
    name: str
    max_position_notional: Decimal
    max_order_notional: Decimal
    max_orders_per_interval: int
    max_leverage: Decimal
    stop_loss_pct: Decimal | None
    take_profit_pct: Decimal | None
    allowed_instruments: tuple[str, ...]


@dataclass(frozen=True)
class AccountPolicyRow:
    name: str
    max_gross_exposure: Decimal
    max_net_exposure: Decimal
    daily_loss_limit: Decimal
    breaker_max_losses: int
    breaker_cooldown_min: int
    breaker_max_drawdown: Decimal | None = None
    flatten_on_trip: bool = False


@dataclass(frozen=True)
class AccountStateRow:
    trading_state: str
    gross_exposure: Decimal
    net_exposure: Decimal
    trading_day: date
    daily_pnl: Decimal
    consecutive_losses: int
    breaker_open: bool
    breaker_tripped_at: datetime | None
    breaker_cooldown_until: datetime | None
    breaker_reason: str | None
    equity: Decimal = Decimal(0)
    equity_peak: Decimal = Decimal(0)
    equity_source: str = "book"
    """`book`: the pairs' marked value counted from 0; `venue`: the live venue's equity in USDT."""


class RiskStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def activate_limits(self, limits: LimitSetRow) -> uuid.UUID:
        """Write the named set (its values replace the stored ones) and make it the active one."""
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute("UPDATE risk_limit_sets SET active = false, updated_at = now() WHERE active")
            limit_id: uuid.UUID = await connection.fetchval(
                """
                INSERT INTO risk_limit_sets (name, active, max_position_notional, max_order_notional,
                    max_orders_per_interval, stop_loss_pct, take_profit_pct, max_leverage, allowed_instruments)
                VALUES ($1, true, $2, $3, $4, $5, $6, $7, $8)
                ON CONFLICT (name) DO UPDATE SET active = true,
                    max_position_notional = excluded.max_position_notional,
                    max_order_notional = excluded.max_order_notional,
                    max_orders_per_interval = excluded.max_orders_per_interval,
                    stop_loss_pct = excluded.stop_loss_pct, take_profit_pct = excluded.take_profit_pct,
                    max_leverage = excluded.max_leverage, allowed_instruments = excluded.allowed_instruments,
                    updated_at = now()
                RETURNING id
                """,
                limits.name,
                limits.max_position_notional,
                limits.max_order_notional,
                limits.max_orders_per_interval,
                limits.stop_loss_pct,
                limits.take_profit_pct,
                limits.max_leverage,
                list(limits.allowed_instruments),
            )
        return limit_id

    async def activate_account_policy(self, policy: AccountPolicyRow) -> uuid.UUID:
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute("UPDATE account_risk_policies SET active = false, updated_at = now() WHERE active")
            policy_id: uuid.UUID = await connection.fetchval(
                """
                INSERT INTO account_risk_policies (name, active, max_gross_exposure, max_net_exposure,
                    daily_loss_limit, breaker_max_losses, breaker_cooldown_min, breaker_max_drawdown, flatten_on_trip)
                VALUES ($1, true, $2, $3, $4, $5, $6, $7, $8)
                ON CONFLICT (name) DO UPDATE SET active = true, max_gross_exposure = excluded.max_gross_exposure,
                    max_net_exposure = excluded.max_net_exposure, daily_loss_limit = excluded.daily_loss_limit,
                    breaker_max_losses = excluded.breaker_max_losses,
                    breaker_cooldown_min = excluded.breaker_cooldown_min,
                    breaker_max_drawdown = excluded.breaker_max_drawdown,
                    flatten_on_trip = excluded.flatten_on_trip, updated_at = now()
                RETURNING id
                """,
                policy.name,
                policy.max_gross_exposure,
                policy.max_net_exposure,
                policy.daily_loss_limit,
                policy.breaker_max_losses,
                policy.breaker_cooldown_min,
                policy.breaker_max_drawdown,
                policy.flatten_on_trip,
            )
        return policy_id

    async def account_state(self, account: str = DEFAULT_ACCOUNT) -> AccountStateRow | None:
        row = await self._pool.fetchrow(
            """
            SELECT trading_state, gross_exposure, net_exposure, trading_day, daily_pnl, consecutive_losses,
                   breaker_open, breaker_tripped_at, breaker_cooldown_until, breaker_reason, equity, equity_peak,
                   equity_source
            FROM account_risk_state WHERE account = $1
            """,
            account,
        )
        return None if row is None else AccountStateRow(**dict(row))

    async def save_account_state(self, state: AccountStateRow, account: str = DEFAULT_ACCOUNT) -> None:
        await self._pool.execute(
            """
            INSERT INTO account_risk_state AS s (account, trading_state, gross_exposure, net_exposure, trading_day,
                daily_pnl, consecutive_losses, breaker_open, breaker_tripped_at, breaker_cooldown_until,
                breaker_reason, equity, equity_peak, equity_source, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, now())
            ON CONFLICT (account) DO UPDATE SET trading_state = excluded.trading_state,
                gross_exposure = excluded.gross_exposure, net_exposure = excluded.net_exposure,
                trading_day = excluded.trading_day, daily_pnl = excluded.daily_pnl,
                consecutive_losses = excluded.consecutive_losses, breaker_open = excluded.breaker_open,
                breaker_tripped_at = excluded.breaker_tripped_at,
                breaker_cooldown_until = excluded.breaker_cooldown_until,
                breaker_reason = excluded.breaker_reason, equity = excluded.equity,
                equity_peak = excluded.equity_peak, equity_source = excluded.equity_source, updated_at = now()
            """,
            account,
            state.trading_state,
            state.gross_exposure,
            state.net_exposure,
            state.trading_day,
            state.daily_pnl,
            state.consecutive_losses,
            state.breaker_open,
            state.breaker_tripped_at,
            state.breaker_cooldown_until,
            state.breaker_reason,
            state.equity,
            state.equity_peak,
            state.equity_source,
        )
