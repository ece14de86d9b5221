"""Datasets for integration tests: real candles through the live feature engine, recorded as a version."""

from __future__ import annotations

import uuid

import numpy as np

from domain.candle_columns import CandleColumns
from features.definitions import V1
from features.engine import FeatureEngine
from features.normalization import NormalizationStats
from learning.datasets import dataset_hash
from storage.database import Database
from storage.datasets import DatasetContent, DatasetStore


async def v1_dataset(database: Database, candles: CandleColumns) -> uuid.UUID:
    engine = FeatureEngine(V1, candles.take(np.arange(V1.warmup_bars)))
    rows = candles.take(np.arange(V1.warmup_bars, len(candles)))
    features = engine.run(rows)
    datasets = DatasetStore(database.pool)
    feature_set_id = await datasets.feature_set_version(V1.name, V1.schema_hash, V1.names, V1.schema())
    return await datasets.create(
        pair=candles.pair,
        interval=candles.interval,
        feature_set_version_id=feature_set_id,
        content_hash=dataset_hash(V1, rows, features),
        content=DatasetContent(rows, features, V1.market_features),
        normalization=NormalizationStats.of(V1.market_features, features).to_json(),
        lineage=[],
    )
