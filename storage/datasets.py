"""Feature-set versions, dataset versions with their lineage, and dataset payloads."""

from __future__ import annotations

import io
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import numpy as np
import numpy.typing as npt

from domain.candle_columns import CandleColumns
from domain.candles import datetime_to_ms, ms_to_datetime
from domain.funding import FundingSchedule
from domain.instruments import Contract
from domain.market import Interval, parse_interval

PAYLOAD_FORMAT = "npz"


@dataclass(frozen=True)
class LineageEntry:
    kind: str  # 'source' | 'fetch' | 'gap_healed' | 'derived_from'
    source: str
    start_ms: int | None
    end_ms: int | None
    details: Mapping[str, object]


@dataclass(frozen=True)
class DatasetVersion:
    id: uuid.UUID
    pair: str
    interval: Interval
    start_ms: int
    end_ms: int
    """Open time of the last candle (inclusive)."""
    row_count: int
    feature_set_version_id: uuid.UUID
    feature_set: str
    schema_hash: str
    content_hash: str
    normalization: Mapping[str, object]
    storage_uri: str
    created_at: datetime
    contract: Contract | None = None
    """The contract rules the dataset was built with; None for datasets built before they were stored
    (migration 0006), whose users ask the venue."""
    contract_source: str | None = None
    """Where `contract` came from: 'venue', 'preset:sim' or 'file:PATH'."""
    funding: FundingSchedule | None = None
    """The funding rates over the span the dataset was built with (their `source` says from where); None
    for datasets built before they were stored (migration 0014): traded without funding."""


@dataclass(frozen=True, eq=False)
class DatasetContent:
    candles: CandleColumns
    features: npt.NDArray[np.float64]
    feature_names: tuple[str, ...]


class DatasetStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def feature_set_version(
        self, name: str, schema_hash: str, names: Sequence[str], parameters: Mapping[str, object]
    ) -> uuid.UUID:
        """The id of this feature-set definition, registering it the first time it is seen."""
        async with self._pool.acquire() as connection:
            found: uuid.UUID | None = await connection.fetchval(
                """
                INSERT INTO feature_set_versions (name, schema_hash, feature_names, parameters)
                VALUES ($1, $2, $3, $4::jsonb)
                ON CONFLICT (name, schema_hash) DO NOTHING
                RETURNING id
                """,
                name,
                schema_hash,
                list(names),
                dict(parameters),
            )
            if found is None:
                found = await connection.fetchval(
                    "SELECT id FROM feature_set_versions WHERE name = $1 AND schema_hash = $2", name, schema_hash
                )
            assert found is not None
            return found

    async def find(self, feature_set_version_id: uuid.UUID, content_hash: str) -> DatasetVersion | None:
        async with self._pool.acquire() as connection:
            row = await connection.fetchrow(
                _SELECT + " WHERE d.feature_set_version_id = $1 AND d.content_hash = $2",
                feature_set_version_id,
                content_hash,
            )
        return _version(row) if row is not None else None

    async def get(self, dataset_id: uuid.UUID) -> DatasetVersion | None:
        async with self._pool.acquire() as connection:
            row = await connection.fetchrow(_SELECT + " WHERE d.id = $1", dataset_id)
        return _version(row) if row is not None else None

    async def versions(self, pair: str | None = None) -> list[DatasetVersion]:
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                _SELECT + " WHERE $1::text IS NULL OR d.pair = $1 ORDER BY d.created_at DESC", pair
            )
        return [_version(row) for row in rows]

    async def create(
        self,
        *,
        pair: str,
        interval: Interval,
        feature_set_version_id: uuid.UUID,
        content_hash: str,
        content: DatasetContent,
        normalization: Mapping[str, object],
        lineage: Sequence[LineageEntry],
        contract: Contract | None = None,
        contract_source: str | None = None,
        funding: FundingSchedule | None = None,
    ) -> uuid.UUID:
        """Record a dataset version, its payload and its lineage in one transaction."""
        if (contract is None) != (contract_source is None):
            raise ValueError("a dataset's contract and its source go together")
        times = content.candles.open_time_ms
        payload = _encode(content)
        async with self._pool.acquire() as connection, connection.transaction():
            dataset_id: uuid.UUID = await connection.fetchval(
                """
                INSERT INTO dataset_versions (pair, interval, start_time, end_time, row_count, feature_set_version_id,
                                              content_hash, normalization, storage_uri, contract, contract_source,
                                              funding)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, 'pending', $9::jsonb, $10, $11::jsonb)
                RETURNING id
                """,
                pair,
                interval,
                ms_to_datetime(int(times[0])),
                ms_to_datetime(int(times[-1])),
                len(times),
                feature_set_version_id,
                content_hash,
                normalization,
                None if contract is None else contract.to_json(),
                contract_source,
                None if funding is None else funding.to_json(),
            )
            await connection.execute(
                "UPDATE dataset_versions SET storage_uri = $2 WHERE id = $1",
                dataset_id,
                f"db://dataset_payloads/{dataset_id}",
            )
            await connection.execute(
                "INSERT INTO dataset_payloads (dataset_version_id, format, byte_count, payload) "
                "VALUES ($1, $2, $3, $4)",
                dataset_id,
                PAYLOAD_FORMAT,
                len(payload),
                payload,
            )
            await connection.executemany(
                """
                INSERT INTO dataset_lineage (dataset_version_id, kind, source, span_start, span_end, details)
                VALUES ($1, $2, $3, $4, $5, $6::jsonb)
                """,
                [
                    (
                        dataset_id,
                        entry.kind,
                        entry.source,
                        None if entry.start_ms is None else ms_to_datetime(entry.start_ms),
                        None if entry.end_ms is None else ms_to_datetime(entry.end_ms),
                        entry.details,
                    )
                    for entry in lineage
                ],
            )
        return dataset_id

    async def attach_contract(self, dataset_id: uuid.UUID, contract: Contract, source: str) -> bool:
        """Give a dataset built before contracts were stored its contract rules; a dataset that has
        rules keeps them (its trainings and evaluations used them). True when they were attached."""
        async with self._pool.acquire() as connection:
            status = await connection.execute(
                "UPDATE dataset_versions SET contract = $2::jsonb, contract_source = $3 "
                "WHERE id = $1 AND contract IS NULL",
                dataset_id,
                contract.to_json(),
                source,
            )
        return bool(status == "UPDATE 1")

    async def attach_funding(self, dataset_id: uuid.UUID, funding: FundingSchedule) -> bool:
        """Give a dataset built before funding was stored its rates; one that has them keeps them. True
        when they were attached."""
        async with self._pool.acquire() as connection:
            status = await connection.execute(
                "UPDATE dataset_versions SET funding = $2::jsonb WHERE id = $1 AND funding IS NULL",
                dataset_id,
                funding.to_json(),
            )
        return bool(status == "UPDATE 1")

    async def lineage(self, dataset_id: uuid.UUID) -> list[LineageEntry]:
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT kind, source, span_start, span_end, details FROM dataset_lineage "
                "WHERE dataset_version_id = $1 ORDER BY id",
                dataset_id,
            )
        return [
            LineageEntry(
                row["kind"],
                row["source"],
                None if row["span_start"] is None else datetime_to_ms(row["span_start"]),
                None if row["span_end"] is None else datetime_to_ms(row["span_end"]),
                row["details"],
            )
            for row in rows
        ]

    async def load(self, dataset: DatasetVersion) -> DatasetContent:
        async with self._pool.acquire() as connection:
            payload = await connection.fetchval(
                "SELECT payload FROM dataset_payloads WHERE dataset_version_id = $1", dataset.id
            )
        if payload is None:
            raise LookupError(f"dataset {dataset.id} has no payload")
        return _decode(bytes(payload), dataset.pair, dataset.interval)


_SELECT = """
    SELECT d.id, d.pair, d.interval, d.start_time, d.end_time, d.row_count, d.feature_set_version_id,
           f.name AS feature_set, f.schema_hash, d.content_hash, d.normalization, d.storage_uri, d.created_at,
           d.contract, d.contract_source, d.funding
    FROM dataset_versions d JOIN feature_set_versions f ON f.id = d.feature_set_version_id
"""


def _version(row: asyncpg.Record) -> DatasetVersion:
    return DatasetVersion(
        id=row["id"],
        pair=row["pair"],
        interval=parse_interval(row["interval"]),
        start_ms=datetime_to_ms(row["start_time"]),
        end_ms=datetime_to_ms(row["end_time"]),
        row_count=row["row_count"],
        feature_set_version_id=row["feature_set_version_id"],
        feature_set=row["feature_set"],
        schema_hash=row["schema_hash"],
        content_hash=row["content_hash"],
        normalization=row["normalization"],
        storage_uri=row["storage_uri"],
        created_at=row["created_at"],
        contract=None if row["contract"] is None else Contract.from_json(row["pair"], row["contract"]),
        contract_source=row["contract_source"],
        funding=None if row["funding"] is None else FundingSchedule.from_json(row["funding"]),
    )


def _encode(content: DatasetContent) -> bytes:
    c = content.candles
    buffer = io.BytesIO()
    np.savez(
        buffer,
        open_time_ms=c.open_time_ms,
        open=c.open,
        high=c.high,
        low=c.low,
        close=c.close,
        volume=c.volume,
        features=content.features,
        feature_names=np.array(content.feature_names),
    )
    return buffer.getvalue()


def _decode(payload: bytes, pair: str, interval: Interval) -> DatasetContent:
    with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
        size = len(archive["open_time_ms"])
        candles = CandleColumns(
            pair,
            interval,
            archive["open_time_ms"],
            archive["open"],
            archive["high"],
            archive["low"],
            archive["close"],
            archive["volume"],
            np.full(size, np.nan),
        )
        return DatasetContent(candles, archive["features"], tuple(str(n) for n in archive["feature_names"]))
