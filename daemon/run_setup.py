"""What `tradingd run` prepares before Ray starts: the replay venue, the run (resumed or started), and
each pair's plan (its contract's rules from the venue, the risk limits, the policy, the feature set)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from actors.features.actor import FeatureSource
from actors.features.core import GATE_WINDOW_BARS, GateSettings
from actors.feed.actor import FeedSource
from actors.feed.runner import FeedSchedule
from actors.policy.actor import PolicySource
from actors.policy.core import ModelProvenance
from actors.risk.account import AccountPolicy
from actors.risk.limits import RiskLimits
from actors.run_context import PairContext
from actors.shell import WorkerEnv
from config import Settings
from daemon import exit_codes
from daemon.supervisor import PairPlan
from domain.errors import VenueError
from domain.fills import FillRules
from domain.market import Interval
from exchange.bingx.rest import BingXRest
from exchange.sim.candle_file import CandleFileError
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.series import series_from_spec
from exchange.sim.server import BingXSimulator
from features.definitions import feature_set
from observability import get_logger
from storage.agents import AgentStore
from storage.database import Database
from storage.datasets import DatasetStore
from storage.risk import AccountPolicyRow, LimitSetRow, RiskStore
from storage.trading import Run, RunStore

log = get_logger("tradingd.daemon")
TRADABLE_STATUSES = ("trained", "evaluated", "promoted")
"""What a paper run may trade; a live run trades only a `promoted` version (`tradingd promote`)."""


class RunSetupError(RuntimeError):
    def __init__(self, message: str, exit_code: int = exit_codes.CONFIG) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ---------------------------------------------------------------------------------------------- replay


async def start_replay_venue(settings: Settings, config_path: Path | None) -> tuple[BingXSimulator, Settings]:
    """The in-process simulator serving `replay.candles`; the settings point the exchange at it."""
    replay = settings.replay
    base_dir = _base_dir(config_path)
    series: list[ReplaySeries] = []
    for spec in replay.candles:
        try:
            series.extend(series_from_spec(spec, replay.derive, base_dir))
        except (ValueError, CandleFileError, OSError) as error:
            raise RunSetupError(f"replay.candles {spec}: {error}") from None
    missing = [p for p in settings.market_data.pairs if not any(s.pair == p for s in series)]
    if missing:
        raise RunSetupError(f"replay.candles has no file for {missing}")
    base = min(series, key=lambda s: s.step_ms)
    start = min(s.first_ms for s in series) + replay.start_bars * base.step_ms
    venue = BingXSimulator(series, ReplayClock(start), pace=replay.speed)
    await venue.start()
    log.info("replay_venue_started", rest_url=venue.rest_url, speed=replay.speed, start_ms=start)
    exchange = settings.exchange.model_copy(update={"rest_url": venue.rest_url, "ws_url": venue.ws_url})
    return venue, settings.model_copy(update={"exchange": exchange})


def _base_dir(config_path: Path | None) -> Path:
    """Relative replay files are found beside the config file (or in the working directory)."""
    return config_path.absolute().parent if config_path is not None else Path(".").absolute()


# ---------------------------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class RunChoice:
    feature_set: str
    threshold: float
    agent_version_id: uuid.UUID | None
    baseline: str | None


async def choose_policy(settings: Settings, database: Database, policy: str) -> RunChoice:
    """A baseline, or an agent version that finished training (its feature set and threshold come with it);
    for a live run, only a promoted version."""
    if not policy.startswith("agent:"):
        spec = feature_set(settings.features.feature_set, settings.features.context)
        return RunChoice(spec.name, 1.0, None, policy)
    version_id = uuid.UUID(policy.removeprefix("agent:"))
    agents = AgentStore(database.pool)
    version = await agents.version(version_id)
    if version is None:
        raise RunSetupError(f"agent version {version_id} does not exist")
    if version.status not in TRADABLE_STATUSES or version.artifact_id is None:
        raise RunSetupError(f"agent version {version_id} is {version.status} and has no artifact to trade with")
    if settings.exchange.mode == "live" and version.status != "promoted":
        raise RunSetupError(
            f"agent version {version_id} is {version.status}, not promoted: a live run trades only a version that "
            "passed its promotion gates (`tradingd promote`)"
        )
    agent = next((a for a in await agents.agents() if a.id == version.agent_id), None)
    if agent is None or version.feature_set is None:
        raise RunSetupError(f"agent version {version_id} has no agent configuration or feature set")
    return RunChoice(version.feature_set, agent.decision_threshold, version_id, None)


def check_run_intervals(settings: Settings, interval: Interval, feature_set_name: str) -> None:
    market = settings.market_data
    spec = feature_set(feature_set_name)
    needed = [interval, *spec.context]
    missing = [iv for iv in needed if iv not in market.intervals]
    if missing:
        raise RunSetupError(
            f"the run needs {missing} candles: add them to market_data.intervals (now {list(market.intervals)})"
        )


async def resolve_run(settings: Settings, database: Database) -> Run:
    """The active run (resumed as it was started), or a new one from `[run]`."""
    runs = RunStore(database.pool)
    active = await runs.active()
    if active is not None:
        if active.mode != "paper":
            raise RunSetupError(f"the active run {active.id} is a {active.mode} run; this build trades on paper only")
        check_run_intervals(settings, active.interval, active.feature_set)  # type: ignore[arg-type]
        log.info("run_resumed", run_id=str(active.id), policy=active.policy, pairs=list(active.pairs))
        return active
    if not settings.run.autostart:
        raise RunSetupError("no run is active and run.autostart is off: start one with run.autostart = true")
    return await start_run(settings, database, settings.run.policy, settings.market_data.pairs)


async def start_run(settings: Settings, database: Database, policy: str, pairs: tuple[str, ...]) -> Run:
    choice = await choose_policy(settings, database, policy)
    check_run_intervals(settings, settings.run.interval, choice.feature_set)
    allowed = settings.risk.allowed_instruments
    refused = [pair for pair in pairs if allowed and pair not in allowed]
    if refused:
        raise RunSetupError(f"{refused} are not in risk.allowed_instruments {list(allowed)}")
    limit_id = await RiskStore(database.pool).activate_limits(limit_row(settings))
    run = await RunStore(database.pool).start(
        pairs=pairs,
        interval=settings.run.interval,
        feature_set=choice.feature_set,
        decision_threshold=choice.threshold,
        settings={
            "initial_equity": str(settings.run.initial_equity),
            "max_exposure": str(settings.run.max_exposure),
            "slippage_bps": str(settings.run.slippage_bps),
        },
        agent_version_id=choice.agent_version_id,
        baseline_policy=choice.baseline,
        risk_limit_set_id=limit_id,
    )
    log.info("run_started", run_id=str(run.id), policy=run.policy, pairs=list(run.pairs))
    return run


# ---------------------------------------------------------------------------------------------- plans


def limit_row(settings: Settings) -> LimitSetRow:
    risk = settings.risk
    return LimitSetRow(
        risk.name,
        risk.max_position_notional,
        risk.max_order_notional,
        risk.max_orders_per_interval,
        risk.max_leverage,
        risk.stop_loss_pct,
        risk.take_profit_pct,
        risk.allowed_instruments,
    )


def risk_limits(settings: Settings) -> RiskLimits:
    row = limit_row(settings)
    return RiskLimits(
        row.name,
        row.max_position_notional,
        row.max_order_notional,
        row.max_orders_per_interval,
        row.max_leverage,
        row.stop_loss_pct,
        row.take_profit_pct,
        frozenset(row.allowed_instruments),
    )


def account_policy(settings: Settings) -> tuple[AccountPolicy, AccountPolicyRow]:
    account = settings.account
    row = AccountPolicyRow(
        account.name,
        account.max_gross_exposure,
        account.max_net_exposure,
        account.daily_loss_limit,
        account.breaker_max_losses,
        account.breaker_cooldown_min,
    )
    policy = AccountPolicy(
        account.name,
        account.max_gross_exposure,
        account.max_net_exposure,
        account.daily_loss_limit,
        account.breaker_max_losses,
        timedelta(minutes=account.breaker_cooldown_min),
    )
    return policy, row


async def venue_rules(settings: Settings, pairs: tuple[str, ...], slippage_bps: Decimal) -> dict[str, FillRules]:
    try:
        async with BingXRest(settings.exchange.rest_url, recv_window_ms=settings.exchange.recv_window_ms) as rest:
            contracts = {contract.symbol: contract for contract in await rest.contracts()}
    except VenueError as error:
        raise RunSetupError(f"cannot read the contracts from the venue: {error}", exit_codes.UNAVAILABLE) from None
    rules = {}
    for pair in pairs:
        contract = contracts.get(pair)
        if contract is None:
            raise RunSetupError(f"{pair} is not a contract the venue lists")
        if not contract.active:
            raise RunSetupError(f"{pair} is not open for API trading at the venue (status {contract.status})")
        rules[pair] = FillRules.of(contract, slippage_bps)
    return rules


async def build_plans(
    settings: Settings, database: Database, run: Run, log_socket: str
) -> tuple[list[PairPlan], WorkerEnv, AccountPolicy]:
    run_settings: dict[str, Any] = dict(run.settings)
    slippage = Decimal(str(run_settings.get("slippage_bps", settings.run.slippage_bps)))
    rules = await venue_rules(settings, run.pairs, slippage)
    limits = risk_limits(settings)
    await RiskStore(database.pool).activate_limits(limit_row(settings))
    policy, policy_row = account_policy(settings)
    await RiskStore(database.pool).activate_account_policy(policy_row)
    spec = feature_set(run.feature_set)
    fsv = await DatasetStore(database.pool).feature_set_version(spec.name, spec.schema_hash, spec.names, spec.schema())
    policy_source, stats = await _policy_source(database, run)
    features = FeatureSource(
        spec.name,
        GateSettings(
            settings.features.ood_zscore_limit,
            settings.features.max_missing_critical,
            settings.features.max_freshness_sec,
            settings.features.max_source_drift,
            settings.daemon.gap_patience_sec,
        ),
        stats,
        str(fsv),
    )
    market = settings.market_data
    feed = FeedSource(
        settings.exchange.rest_url,
        settings.exchange.ws_url,
        market.intervals,
        spec.warmup_bars + GATE_WINDOW_BARS + 10,
        FeedSchedule(
            backfill_enabled=market.backfill_enabled,
            backfill_max_batches=market.backfill_max_batches,
            gap_monitor_every_sec=market.gap_monitor_interval_min * 60 if market.gap_monitor_interval_min else None,
        ),
        settings.exchange.recv_window_ms,
    )
    env = WorkerEnv(database.dsn, log_socket, settings.logging.level, tuple(settings.secret_values()))
    plans = []
    for pair in run.pairs:
        context = PairContext(
            str(run.id),
            pair,
            run.interval,  # type: ignore[arg-type]
            run.mode,
            run.feature_set,
            run.policy,
            Decimal(str(run_settings.get("initial_equity", settings.run.initial_equity))),
            Decimal(str(run_settings.get("max_exposure", settings.run.max_exposure))),
        )
        plans.append(
            PairPlan(context, rules[pair], limits, policy_source, features, feed, settings.trading.enforce_provenance)
        )
    return plans, env, policy


async def _policy_source(database: Database, run: Run) -> tuple[PolicySource, dict[str, object] | None]:
    if run.agent_version_id is None:
        assert run.baseline_policy is not None
        return PolicySource(baseline=run.baseline_policy), None
    agents = AgentStore(database.pool)
    version = await agents.version(run.agent_version_id)
    artifact = await agents.artifact(run.agent_version_id)
    if version is None or artifact is None:
        raise RunSetupError(f"agent version {run.agent_version_id} has no artifact")
    provenance = ModelProvenance(
        str(version.id),
        str(artifact.id),
        None if version.dataset_version_id is None else str(version.dataset_version_id),
    )
    source = PolicySource(
        artifact=artifact.content,
        checksum=artifact.checksum,
        provenance=provenance,
        decision_threshold=run.decision_threshold,
        name=f"agent:{version.agent}@{version.version}",
    )
    return source, await agents.artifact_normalization(artifact.id)
