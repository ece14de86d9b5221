"""Dataset builds: candles from the store first, only the missing windows from the venue, features
from the same engine the live path runs, and a content hash that names the result.

Stored candles are final, so a span the store holds completely is built without asking the venue for
candles; candles imported from a file (`tradingd candles import`) are never completed from the venue,
and a dataset built from them alone carries the preset contract (or a contract file's), so it is
built with no venue call at all. Every dataset stores the contract rules it was built with.

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
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import structlog

from domain.candle_columns import CandleColumns
from domain.candles import interval_ms, ms_to_datetime
from domain.funding import FundingSchedule, base_rate_schedule
from domain.instruments import Contract
from domain.market import Interval
from exchange.bingx.rest import FUNDING_MAX_LIMIT, BingXRest
from exchange.sim.server import ContractSpec
from features.context import context_cutoff_ms
from features.definitions import feature_set
from features.normalization import NormalizationStats
from features.pipeline import FeaturePipeline
from features.spec import FeatureSetSpec
from learning.agent_config import AgentConfig
from market_data.healing import heal_range
from observability.progress import Reporter, Tracker, quiet
from storage.candles import CandleStore, Gap, SourceCount
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


class RefusedTestDataError(ValueError):
    """With DISABLE_TEST_DATA_IN_DB, a dataset would be built from a test source's candles."""


PRESET_SOURCE = "preset:sim"
"""`contract_source` of the offline default contract (`preset_contract`)."""


def preset_contract(pair: str) -> Contract:
    """The offline default contract: the one the built-in simulator lists for every pair (tick 0.1,
    step 0.0001, minimums 0.0001 and 2 USDT, fees 0.02 % maker and 0.05 % taker, leverage up to 125;
    config/contracts/example.toml states it). A dataset built only from imported candles gets it
    unless a contract file is given."""
    spec = ContractSpec()
    return Contract(
        pair,
        spec.price_precision,
        spec.quantity_precision,
        Decimal(spec.min_quantity),
        Decimal(spec.min_notional),
        Decimal(spec.maker_fee_rate),
        Decimal(spec.taker_fee_rate),
        spec.max_leverage,
        spec.max_leverage,
        status=1,
        api_tradable=True,
    )


@dataclass(frozen=True)
class BuiltDataset:
    id: uuid.UUID
    content_hash: str
    rows: int
    reused: bool
    """True when this exact content was built before (its version is returned, nothing is written)."""
    fetched_windows: int
    fetched_candles: int
    contract: Contract | None = None
    """The contract rules the dataset carries (a reused one keeps those it was built with)."""
    contract_source: str | None = None
    venue_requests: int = 0
    """Requests made to the venue (0: built offline, from stored candles and a preset or file contract)."""
    funding: FundingSchedule | None = None
    """The funding rates the dataset carries (a reused one keeps those it was built with)."""


@dataclass(frozen=True)
class _Window:
    interval: Interval
    start: int
    end: int


async def build_dataset(
    rest: BingXRest,
    candles: CandleStore,
    datasets: DatasetStore,
    spec: FeatureSetSpec,
    pair: str,
    interval: Interval,
    start_ms: int,
    end_ms: int,
    *,
    contract: tuple[Contract, str] | None = None,
    funding: FundingSchedule | None = None,
    allow_test_sources: bool = True,
    progress: Reporter = quiet,
) -> BuiltDataset:
    """Build (or find) the dataset of [start_ms, end_ms). The venue is asked only for what the store
    lacks and for the contract; a window the store holds completely needs no venue call, and with
    candles imported from files (and `contract` given, or the preset) none is made at all.

    `contract`: the rules and their source ('file:PATH') to store with the dataset; without it, the
    preset when every candle read was imported from a file, else the venue's contract. `funding`
    likewise: a file's rates (source 'file:PATH'), else the preset (BingX's base rate at every funding
    time) for imported candles, else the venue's funding history over the span.

    `progress`: told of the candles fetched (per interval) and the feature rows computed."""
    try:
        spec.check_interval(interval)
    except ValueError as error:
        raise DatasetBuildError(str(error)) from None
    if contract is not None and contract[0].symbol != pair:
        raise DatasetBuildError(f"the contract is for {contract[0].symbol}, not {pair}")
    step = interval_ms(interval)
    start = -(-start_ms // step) * step  # the first open time on the grid at or after start_ms
    end = -(-end_ms // step) * step
    if end <= start:
        raise DatasetBuildError("the span holds no candle: --to must be after --from")
    windows = [_Window(interval, start - spec.warmup_bars * step, end)]
    for context_interval in spec.context:
        # The first row uses the last context candle closed by its cutoff (`context_cutoff_ms`); the
        # engine opens on it and the `warmup_bars - 1` before it, and is fed the rest up to the last
        # row's cutoff.
        context_step = interval_ms(context_interval)
        first_used = context_cutoff_ms(start, interval, context_interval) // context_step * context_step - context_step
        context_end = context_cutoff_ms(end - step, interval, context_interval) // context_step * context_step
        windows.append(_Window(context_interval, first_used - (spec.warmup_bars - 1) * context_step, context_end))

    # The store first: stored candles are final, so a complete window needs nothing from the venue.
    gaps = [await candles.gaps(pair, w.interval, w.start, w.end) for w in windows]
    sources = [await candles.sources(pair, w.interval, w.start, w.end) for w in windows]
    imported = sorted({s.source for found in sources for s in found if s.is_test})
    if imported and not allow_test_sources:
        raise RefusedTestDataError(f"the candles of this span come from a test source ({', '.join(imported)})")
    requests = 0
    if any(gaps):
        if imported:
            raise DatasetBuildError(await _imported_incomplete(candles, spec, pair, windows, gaps, imported, step))
        # The venue's newest candle may still be forming; the one before it is final. (Asked of the market
        # data rather than of the server clock: a replaying simulator's data lags its wall-clock time.)
        newest = (await rest.klines(pair, interval, limit=1)).columns.open_time_ms
        requests += 1
        if not len(newest):
            raise DatasetBuildError(f"the venue has no {pair} {interval} candles")
        newest_final = int(newest[-1]) - step
        if end - step > newest_final:
            raise DatasetBuildError(
                f"the span ends after the newest final candle ({newest_final}); choose an earlier --to"
            )

    fetched = _Fetches()
    spans = [
        await _complete_window(rest, candles, spec, pair, window, found_gaps, found_sources, fetched, progress)
        for window, found_gaps, found_sources in zip(windows, gaps, sources, strict=True)
    ]
    requests += fetched.requests
    window = spans[0]
    context: dict[Interval, CandleColumns] = {}
    context_history: dict[Interval, CandleColumns] = {}
    for context_window, span in zip(windows[1:], spans[1:], strict=True):
        context_history[context_window.interval] = span.take(np.arange(spec.warmup_bars))
        context[context_window.interval] = span.take(np.arange(spec.warmup_bars, len(span)))

    if contract is not None:
        rules, rules_source = contract
    elif imported and all(s.is_test for found in sources for s in found):
        rules, rules_source = preset_contract(pair), PRESET_SOURCE
    else:
        listed = await rest.contracts(pair)
        requests += 1
        venue_rules = next((c for c in listed if c.symbol == pair), None)
        if venue_rules is None:
            raise DatasetBuildError(f"the venue lists no contract {pair}")
        rules, rules_source = venue_rules, "venue"
    try:  # what is stored must read back (`DatasetVersion.contract`)
        Contract.from_json(pair, rules.to_json())
    except ValueError as error:
        raise DatasetBuildError(f"the {rules_source} contract rules cannot be stored: {error}") from None
    # Funding times within the rows' span: each is charged at the close of the row that holds it.
    first_funded, last_funded = start + 1, end
    if funding is not None:
        inside = (funding.times_ms >= first_funded) & (funding.times_ms <= last_funded)
        rates = FundingSchedule(funding.times_ms[inside], funding.rates[inside], funding.source)
    elif imported and all(s.is_test for found in sources for s in found):
        rates = base_rate_schedule(first_funded, last_funded + 1)
    else:
        history = await rest.funding_rates(pair, first_funded, last_funded)
        requests += 1 + len(history) // FUNDING_MAX_LIMIT
        rates = FundingSchedule(
            np.array([time_ms for time_ms, _ in history], np.int64),
            np.array([float(rate) for _, rate in history]),
            "venue",
        )

    pipeline = FeaturePipeline(spec, window.take(np.arange(spec.warmup_bars)), context_history)
    rows = window.take(np.arange(spec.warmup_bars, len(window)))
    with progress("dataset: features", len(rows), "row") as tracker:
        features = _run_features(pipeline, rows, context, tracker)
    content_hash = dataset_hash(spec, rows, features)
    feature_set_id = await datasets.feature_set_version(spec.name, spec.schema_hash, spec.names, spec.schema())
    existing = await datasets.find(feature_set_id, content_hash)

    def built(dataset_id: uuid.UUID, row_count: int, reused: bool) -> BuiltDataset:
        return BuiltDataset(
            dataset_id,
            content_hash,
            row_count,
            reused,
            fetched.windows,
            fetched.candles,
            rules,
            rules_source,
            requests,
            rates,
        )

    if existing is not None:
        if existing.funding is None:
            await datasets.attach_funding(existing.id, rates)
        rates = existing.funding or rates
        if existing.contract is None:
            await datasets.attach_contract(existing.id, rules, rules_source)
            log.info("dataset_contract_attached", dataset_id=str(existing.id), contract_source=rules_source)
        elif existing.contract.to_json() != rules.to_json():
            log.warning(
                "dataset_contract_kept",
                dataset_id=str(existing.id),
                contract_source=existing.contract_source,
                offered_source=rules_source,
                reason="the dataset keeps the contract rules it was built with",
            )
            rules, rules_source = existing.contract, existing.contract_source or rules_source
        log.info("dataset_reused", dataset_id=str(existing.id), content_hash=content_hash)
        return built(existing.id, existing.row_count, True)
    stats = NormalizationStats.of(spec.market_features, features)
    dataset_id = await datasets.create(
        pair=pair,
        interval=interval,
        feature_set_version_id=feature_set_id,
        content_hash=content_hash,
        content=DatasetContent(rows, features, spec.market_features),
        normalization=stats.to_json(),
        lineage=fetched.lineage,
        contract=rules,
        contract_source=rules_source,
        funding=rates,
    )
    log.info(
        "dataset_built",
        dataset_id=str(dataset_id),
        rows=len(rows),
        content_hash=content_hash,
        contract_source=rules_source,
        funding_source=rates.source,
        funding_times=len(rates),
        venue_requests=requests,
    )
    return built(dataset_id, len(rows), False)


@dataclass
class _Fetches:
    lineage: list[LineageEntry] = field(default_factory=list)
    windows: int = 0
    candles: int = 0
    requests: int = 0


async def _complete_window(
    rest: BingXRest,
    candles: CandleStore,
    spec: FeatureSetSpec,
    pair: str,
    window: _Window,
    gaps: list[Gap],
    sources: list[SourceCount],
    fetched: _Fetches,
    progress: Reporter,
) -> CandleColumns:
    """The candles with open times in the window, every one of them: the `gaps` the store has are
    fetched from the venue first (and recorded in the lineage)."""
    interval, start, end = window.interval, window.start, window.end
    step = interval_ms(interval)
    source = len(fetched.lineage)
    if gaps:
        with progress(f"dataset: fetch {interval} candles", sum(gap.missing for gap in gaps), "candle") as tracker:
            await _fill_gaps(rest, candles, pair, interval, start, end, gaps, fetched, tracker)
    read = await candles.read_columns(pair, interval, start, end)
    _require_complete(read, start, end, step, spec)
    described: dict[str, object] = {"interval": interval, "rows_read": len(read)}
    if sources:
        described["sources"] = {found.source: found.candles for found in sources}
    fetched.lineage.insert(source, LineageEntry("source", "candles", start, end, described))
    return read


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
        fetched.requests += healed.requests
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


async def _imported_incomplete(
    candles: CandleStore,
    spec: FeatureSetSpec,
    pair: str,
    windows: list[_Window],
    gaps: list[list[Gap]],
    imported: list[str],
    step: int,
) -> str:
    """Why a span over imported candles cannot be built, with the --from/--to the store allows."""
    origin = ", ".join(imported)
    for window, found in zip(windows, gaps, strict=True):
        if not found:
            continue
        interval = window.interval
        missing = sum(gap.missing for gap in found)
        span = await candles.span(pair, interval)
        head = (
            f"{pair} {interval}: the span and the {spec.warmup_bars} candles feature set {spec.name} reads before "
            f"it need the candles from {_iso(window.start)} to {_iso(window.end)} (exclusive), and {missing} of "
            f"them are not stored; candles imported from a file ({origin}) are never completed from the venue"
        )
        if span is None:
            return f"{head}. No {pair} {interval} candles are stored: import them (tradingd candles import)"
        first, last = span
        allowed = f"The stored {interval} candles run from {_iso(first)} to {_iso(last)}"
        if window is windows[0]:
            allowed += (
                f": choose --from at or after {_iso(first + spec.warmup_bars * step)} and --to at or before "
                f"{_iso(last + step)}"
            )
        holes = [gap for gap in found if first < gap.start_ms and gap.end_ms <= last]
        if holes:
            described = ", ".join(f"{_iso(gap.start_ms)}..{_iso(gap.end_ms)}" for gap in holes[:3])
            allowed += f", and a span clear of the holes at {described} (a dataset never bridges a hole)"
        return f"{head}. {allowed}"
    raise AssertionError("no window lacks candles")


def _iso(ms: int) -> str:
    return ms_to_datetime(ms).isoformat().replace("+00:00", "Z")


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
            cutoff = context_cutoff_ms(int(chunk.open_time_ms[-1]), chunk.interval, interval)
            due = int(np.searchsorted(closes, cutoff, side="right"))
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
