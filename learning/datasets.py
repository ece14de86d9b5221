"""Dataset builds: candles from the store first, only the missing windows from the venue, features
from the same engine the live path runs, and a content hash that names the result.

A dataset covers the candles with open times in [start, end). Its features need `warmup_bars` candles
before `start` too; those are read (or fetched) like the rest and are part of the lineage, not of the
rows. Building the same span twice, from a full store or from a half-filled one, gives the same hash:
the hash covers the feature schema and the bytes of the candles and features, nothing about how they
were obtained.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import structlog

from actors.feed.healing import heal_range
from domain.candle_columns import CandleColumns
from domain.candles import interval_ms
from domain.market import Interval
from exchange.bingx.rest import BingXRest
from features.definitions import feature_set
from features.normalization import NormalizationStats
from features.pipeline import FeaturePipeline
from features.spec import FeatureSetSpec
from learning.agent_config import AgentConfig
from observability.progress import Reporter, Tracker, quiet
from storage.candles import CandleStore, Gap
from storage.datasets import DatasetContent, DatasetStore, DatasetVersion, LineageEntry

log = structlog.get_logger("tradingd.datasets")
SOURCE = "bingx-rest"
FEATURE_CHUNK = 2048


class DatasetMismatchError(ValueError):
    """The dataset cannot serve this agent: another feature set, or another definition of it."""


def dataset_spec(dataset: DatasetVersion, agent: AgentConfig | None = None) -> FeatureSetSpec:
    """The feature set a dataset version was built with, refused when its definition has changed since
    (or, with `agent`, when the agent uses another set)."""
    if agent is not None and dataset.feature_set != agent.feature_set:
        raise DatasetMismatchError(
            f"agent {agent.name} uses feature set {agent.feature_set}, dataset {dataset.id} has {dataset.feature_set}"
        )
    spec = feature_set(dataset.feature_set)
    if spec.schema_hash != dataset.schema_hash:
        raise DatasetMismatchError(
            f"dataset {dataset.id} was built with another definition of {dataset.feature_set} "
            f"(schema {dataset.schema_hash[:12]}, now {spec.schema_hash[:12]}): build the dataset again"
        )
    return spec


class DatasetBuildError(ValueError):
    """The span cannot become a dataset (in the future, before the venue's history, or with holes)."""


@dataclass(frozen=True)
class BuiltDataset:
    id: uuid.UUID
    content_hash: str
    rows: int
    reused: bool
    """True when this exact content was built before (its version is returned, nothing is written)."""
    fetched_windows: int
    fetched_candles: int


async def build_dataset(
    rest: BingXRest,
    candles: CandleStore,
    datasets: DatasetStore,
    spec: FeatureSetSpec,
    pair: str,
    interval: Interval,
    start_ms: int,
    end_ms: int,
    progress: Reporter = quiet,
) -> BuiltDataset:
    """`progress`: told of the candles fetched (per interval) and the feature rows computed."""
    try:
        spec.check_interval(interval)
    except ValueError as error:
        raise DatasetBuildError(str(error)) from None
    step = interval_ms(interval)
    start = -(-start_ms // step) * step  # the first open time on the grid at or after start_ms
    end = -(-end_ms // step) * step
    if end <= start:
        raise DatasetBuildError("the span holds no candle: --to must be after --from")
    # The venue's newest candle may still be forming; the one before it is final. (Asked of the market
    # data rather than of the server clock: a replaying simulator's data lags its wall-clock time.)
    newest = (await rest.klines(pair, interval, limit=1)).columns.open_time_ms
    if not len(newest):
        raise DatasetBuildError(f"the venue has no {pair} {interval} candles")
    newest_final = int(newest[-1]) - step
    if end - step > newest_final:
        raise DatasetBuildError(f"the span ends after the newest final candle ({newest_final}); choose an earlier --to")

    fetched = _Fetches()
    warm_start = start - spec.warmup_bars * step
    window = await _complete_window(rest, candles, spec, pair, interval, warm_start, end, fetched, progress)
    context: dict[Interval, CandleColumns] = {}
    context_history: dict[Interval, CandleColumns] = {}
    for context_interval in spec.context:
        # The first row uses the last context candle closed by `start`; the engine opens on it and
        # the `warmup_bars - 1` before it, and is fed the rest up to the last row's open.
        context_step = interval_ms(context_interval)
        first_used = start // context_step * context_step - context_step
        context_end = (end - step) // context_step * context_step
        context_start = first_used - (spec.warmup_bars - 1) * context_step
        span = await _complete_window(
            rest, candles, spec, pair, context_interval, context_start, context_end, fetched, progress
        )
        context_history[context_interval] = span.take(np.arange(spec.warmup_bars))
        context[context_interval] = span.take(np.arange(spec.warmup_bars, len(span)))

    pipeline = FeaturePipeline(spec, window.take(np.arange(spec.warmup_bars)), context_history)
    rows = window.take(np.arange(spec.warmup_bars, len(window)))
    with progress("dataset: features", len(rows), "row") as tracker:
        features = _run_features(pipeline, rows, context, tracker)
    content_hash = dataset_hash(spec, rows, features)
    feature_set_id = await datasets.feature_set_version(spec.name, spec.schema_hash, spec.names, spec.schema())
    existing = await datasets.find(feature_set_id, content_hash)
    if existing is not None:
        log.info("dataset_reused", dataset_id=str(existing.id), content_hash=content_hash)
        return BuiltDataset(existing.id, content_hash, existing.row_count, True, fetched.windows, fetched.candles)
    stats = NormalizationStats.of(spec.market_features, features)
    dataset_id = await datasets.create(
        pair=pair,
        interval=interval,
        feature_set_version_id=feature_set_id,
        content_hash=content_hash,
        content=DatasetContent(rows, features, spec.market_features),
        normalization=stats.to_json(),
        lineage=fetched.lineage,
    )
    log.info("dataset_built", dataset_id=str(dataset_id), rows=len(rows), content_hash=content_hash)
    return BuiltDataset(dataset_id, content_hash, len(rows), False, fetched.windows, fetched.candles)


@dataclass
class _Fetches:
    lineage: list[LineageEntry] = field(default_factory=list)
    windows: int = 0
    candles: int = 0


async def _complete_window(
    rest: BingXRest,
    candles: CandleStore,
    spec: FeatureSetSpec,
    pair: str,
    interval: Interval,
    start: int,
    end: int,
    fetched: _Fetches,
    progress: Reporter,
) -> CandleColumns:
    """The candles with open times in [start, end), every one of them: what the store lacks is fetched
    from the venue first (and recorded in the lineage)."""
    step = interval_ms(interval)
    source = len(fetched.lineage)
    gaps = await candles.gaps(pair, interval, start, end)
    if gaps:
        with progress(f"dataset: fetch {interval} candles", sum(gap.missing for gap in gaps), "candle") as tracker:
            await _fill_gaps(rest, candles, pair, interval, start, end, gaps, fetched, tracker)
    window = await candles.read_columns(pair, interval, start, end)
    _require_complete(window, start, end, step, spec)
    read = LineageEntry("source", "candles", start, end, {"interval": interval, "rows_read": len(window)})
    fetched.lineage.insert(source, read)
    return window


async def _fill_gaps(
    rest: BingXRest,
    candles: CandleStore,
    pair: str,
    interval: Interval,
    start: int,
    end: int,
    gaps: list[Gap],
    fetched: _Fetches,
    tracker: Tracker,
) -> None:
    for gap in gaps:
        healed = await heal_range(rest, candles, pair, interval, gap.start_ms, gap.end_ms, tracker.advance)
        fetched.windows += 1
        fetched.candles += len(healed.stored)
        interior = gap.start_ms > start and gap.end_ms < end
        details = {
            "interval": interval,
            "missing": gap.missing,
            "stored": len(healed.stored),
            "requests": healed.requests,
        }
        fetched.lineage.append(
            LineageEntry("gap_healed" if interior else "fetch", SOURCE, gap.start_ms, gap.end_ms, details)
        )
        log.info(
            "dataset_window_fetched",
            pair=pair,
            interval=interval,
            start_ms=gap.start_ms,
            end_ms=gap.end_ms,
            missing=gap.missing,
            stored=len(healed.stored),
        )


def _run_features(
    pipeline: FeaturePipeline, rows: CandleColumns, context: dict[Interval, CandleColumns], tracker: Tracker
) -> npt.NDArray[np.float64]:
    """`pipeline.run` in chunks of rows, each given the context candles that close during it: the same
    features (the pipeline carries its state from one chunk to the next), with progress between."""
    if not len(rows):
        return pipeline.run(rows, context)
    parts = []
    fed = dict.fromkeys(context, 0)
    for first in range(0, len(rows), FEATURE_CHUNK):
        chunk = rows.take(np.arange(first, min(first + FEATURE_CHUNK, len(rows))))
        chunk_context = {}
        for interval, more in context.items():
            closes = more.open_time_ms + interval_ms(interval)
            due = int(np.searchsorted(closes, chunk.open_time_ms[-1], side="right"))
            chunk_context[interval] = more.take(np.arange(fed[interval], max(fed[interval], due)))
            fed[interval] = max(fed[interval], due)
        parts.append(pipeline.run(chunk, chunk_context))
        tracker.advance(len(chunk))
    return np.concatenate(parts)


def dataset_hash(spec: FeatureSetSpec, candles: CandleColumns, features: npt.NDArray[np.float64]) -> str:
    """SHA-256 of the feature schema, the series, and the little-endian bytes of every column."""
    digest = hashlib.sha256()
    digest.update(f"{spec.schema_hash}|{candles.pair}|{candles.interval}|".encode())
    for column in (candles.open_time_ms, candles.open, candles.high, candles.low, candles.close, candles.volume):
        digest.update(np.ascontiguousarray(column, dtype=column.dtype.newbyteorder("<")).tobytes())
    digest.update(np.ascontiguousarray(features, dtype="<f8").tobytes())
    return digest.hexdigest()


def _require_complete(window: CandleColumns, warm_start: int, end: int, step: int, spec: FeatureSetSpec) -> None:
    interval = window.interval
    expected = (end - warm_start) // step
    if len(window) == expected:
        return
    times = window.open_time_ms
    if len(window) == 0 or times[0] > warm_start:
        first = "none" if len(window) == 0 else str(int(times[0]))
        raise DatasetBuildError(
            f"the venue has no {interval} candles before {first}; feature set {spec.name} needs "
            f"{spec.warmup_bars} {interval} candles before --from (from {warm_start}): choose a later --from"
        )
    holes = np.flatnonzero(np.diff(times) > step)
    described = ", ".join(f"{int(times[i]) + step}..{int(times[i + 1])}" for i in holes[:3])
    raise DatasetBuildError(
        f"{expected - len(window)} {interval} candles are missing even after fetching from the venue (holes in its "
        f"history: {described or 'at the end of the span'}); a dataset must not bridge them"
    )
