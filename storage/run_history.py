"""What a run did, read back for reports: its trades and the candles it decided."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg

from domain.candles import datetime_to_ms
from storage.records import TradeRow


class RunHistory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def trades(self, run_id: uuid.UUID) -> list[TradeRow]:
        rows = await self._pool.fetch(
            """
            SELECT id, run_id, pair, mode, side, status, quantity, entry_price, exit_price, fees, realized_pnl,
                   close_reason, opened_at, closed_at, origin, funding
            FROM trades WHERE run_id = $1 ORDER BY opened_at, id
            """,
            run_id,
        )
        return [
            TradeRow(
                row["id"],
                row["run_id"],
                row["pair"],
                row["mode"],
                row["side"],
                row["status"],
                row["quantity"],
                row["entry_price"],
                row["exit_price"],
                row["fees"],
                row["realized_pnl"],
                row["close_reason"],
                datetime_to_ms(row["opened_at"]),
                None if row["closed_at"] is None else datetime_to_ms(row["closed_at"]),
                row["origin"],
                row["funding"],
            )
            for row in rows
        ]

    async def fee_rate(self, run_id: uuid.UUID, pair: str) -> Decimal | None:
        """The fees the run's fills on the pair paid over their notional (None before any fill)."""
        rate: Decimal | None = await self._pool.fetchval(
            "SELECT sum(fee) / nullif(sum(filled_quantity * avg_fill_price), 0) FROM trade_executions "
            "WHERE run_id = $1 AND pair = $2 AND filled_quantity > 0 AND avg_fill_price IS NOT NULL",
            run_id,
            pair,
        )
        return rate

    async def decided_span(self, run_id: uuid.UUID, pair: str, interval: str) -> tuple[int, int] | None:
        """Open times of the first and last candle the run decided for the pair."""
        row = await self._pool.fetchrow(
            "SELECT min(candle_open_time) AS first, max(candle_open_time) AS last FROM trade_decisions "
            "WHERE run_id = $1 AND pair = $2 AND interval = $3",
            run_id,
            pair,
            interval,
        )
        if row is None or row["first"] is None:
            return None
        return datetime_to_ms(row["first"]), datetime_to_ms(row["last"])
