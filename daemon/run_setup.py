"""What `tradingd run` prepares before Ray starts: the run to resume (checked against the
configuration), the replay venue, the start-up checks (policy, intervals, allowed pairs, the pairs'
contracts at the venue), the new run (written only once every check passed), and each pair's plan
(its contract's rules, the risk limits, the policy, the feature set)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from actors.features.actor import FeatureSource
from actors.feed.actor import FeedSource
from actors.shell import WorkerEnv
from config import Settings
from daemon import exit_codes
from daemon.risk_limits import risk_limits as limits_of_settings
from daemon.supervisor import PairPlan
from domain.candles import datetime_to_ms, interval_ms, ms_to_datetime
from domain.errors import VenueError
from domain.fills import FillRules
from domain.limit_orders import LimitRules
from domain.market import Interval, parse_interval
from exchange.bingx.rest import BingXRest, Credentials, RetryPolicy
from exchange.sim.candle_file import CandleFileError
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.series import series_from_spec
from exchange.sim.server import BingXSimulator
from features.definitions import feature_set
from learning.agent_config import LimitEntries, agent_config_of
from market_data.runner import FeedSchedule
from observability import get_logger
from pipeline.execution.bingx_setup import venue_leverage
from pipeline.execution.live_venue import LiveVenueSource
from pipeline.features.core import GATE_WINDOW_BARS, GateSettings
from pipeline.policy.core import ModelProvenance
from pipeline.policy.source import PolicySource
from pipeline.risk.account import AccountPolicy
from storage.agents import AgentStore
from storage.candles import CandleStore
from storage.database import Database
from storage.datasets import DatasetStore
from storage.journal import TradingJournal
from storage.risk import AccountPolicyRow, LimitSetRow, RiskStore
from storage.runs import Run, RunStore
from trading.context import PairContext
from trading.limits import RiskLimits
from trading.protection import ProtectionRule

log = get_logger("tradingd.daemon")
REACH_TIMEOUT_SEC = 5.0
START_RETRY = RetryPolicy(attempts=3, base_delay_sec=0.5, max_delay_sec=2.0)
"""Start-up reads the contracts with a short, bounded retry: a venue that fails now is reported now."""
TRADABLE_STATUSES = ("trained", "evaluated", "promoted")
"""What a paper run may trade; a live run trades only a `promoted` version (`tradingd promote`)."""


class RunSetupError(RuntimeError):
    def __init__(self, message: str, exit_code: int = exit_codes.CONFIG) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ---------------------------------------------------------------------------------------------- replay


async def start_replay_venue(
    settings: Settings, config_path: Path | None, resume: Run | None = None, database: Database | None = None
) -> tuple[BingXSimulator, Settings]:
    """The in-process simulator serving `replay.candles` from `replay_start`; the settings point the
    exchange at it."""
    replay = settings.replay
    series = replay_series(settings, config_path, resume)
    start = await replay_start(settings, series, resume, database)
    venue = BingXSimulator(series, ReplayClock(start.start_ms), pace=replay.speed)
    await venue.start()
    log.info(
        "replay_venue_started",
        rest_url=venue.rest_url,
        speed=replay.speed,
        start_ms=start.start_ms,
        resumed_after_ms=start.resumed_after_ms,
        stored_until_ms=start.stored_until_ms,
        run_id=None if resume is None else str(resume.id),
    )
    exchange = settings.exchange.model_copy(update={"rest_url": venue.rest_url, "ws_url": venue.ws_url})
    return venue, settings.model_copy(update={"exchange": exchange})


def replay_series(settings: Settings, config_path: Path | None, resume: Run | None = None) -> list[ReplaySeries]:
    """The series of `replay.candles` (relative files beside the config file); every pair of the run
    must have one."""
    replay = settings.replay
    base_dir = _base_dir(config_path)
    series: list[ReplaySeries] = []
    for spec in replay.candles:
        try:
            series.extend(series_from_spec(spec, replay.derive, base_dir))
        except (ValueError, CandleFileError, OSError) as error:
            raise RunSetupError(f"replay.candles {spec}: {error}") from None
    pairs = resume.pairs if resume is not None else settings.market_data.pairs
    missing = [p for p in pairs if not any(s.pair == p for s in series)]
    if missing:
        raise RunSetupError(f"replay.candles has no file for {missing}")
    return series


@dataclass(frozen=True)
class ReplayStart:
    start_ms: int
    resumed_after_ms: int | None = None
    """The last candle the resumed run decided (the replay starts just after it)."""
    stored_until_ms: int | None = None
    """The newest stored candle, when a new replay starts just after it."""


async def replay_start(
    settings: Settings, series: Sequence[ReplaySeries], resume: Run | None, database: Database | None
) -> ReplayStart:
    """Where the replay's clock starts.

    A new run's replay starts `replay.start_bars` into the files, or just after the newest candle the
    store holds of its pairs at the run's interval when that is later: the replay's market time never goes
    back before what is stored (a stopped run's candles, an imported file), since the features resume
    after the stored candles and would otherwise wait, deciding nothing, until the replay caught up. A
    store holding the files to their end is refused. A resumed run's replay starts where the run stopped
    deciding: just after the last candle its pairs decided (the earliest of them), so the run trades on at
    once, with no candle skipped and none decided twice."""
    base = min(series, key=lambda s: s.step_ms)
    start = min(s.first_ms for s in series) + settings.replay.start_bars * base.step_ms
    pairs = resume.pairs if resume is not None else settings.market_data.pairs
    # The replay ends for the run once any of its pairs' files ends: that pair decides nothing after it.
    end = min(max(s.last_ms + s.step_ms for s in series if s.pair == pair) for pair in pairs)
    if database is None:
        return ReplayStart(start)
    if resume is not None and (resumed_after := await last_decided_ms(database, resume)) is not None:
        start = resumed_after + interval_ms(resume.interval)
        if start >= end:
            raise RunSetupError(
                f"run {resume.id} has decided every candle of replay.candles (the last at "
                f"{ms_to_datetime(resumed_after).isoformat()}): stop it (`tradingd runs stop {resume.id}`) and "
                "delete its candles (`tradingd db reset --table candles --yes`) to replay the files from the "
                "start, or give longer files",
            )
        return ReplayStart(start, resumed_after_ms=resumed_after)
    interval = settings.run.interval if resume is None else parse_interval(resume.interval)
    stored_until = await newest_stored_ms(database, pairs, interval)
    if stored_until is None or stored_until + interval_ms(interval) <= start:
        return ReplayStart(start)
    if stored_until + interval_ms(interval) >= end:
        raise RunSetupError(
            f"the store already holds {interval} candles of {', '.join(pairs)} up to "
            f"{ms_to_datetime(stored_until).isoformat()}, the end of replay.candles (of a pair's file, at least): "
            "a new replay starts after "
            "the newest stored candle, so it would have nothing left to decide. Give the replay a data directory "
            "of its own (storage.data_dir or TRADINGD_DATA_DIR), or delete the stored candles "
            "(`tradingd db reset --table candles --yes`)",
        )
    return ReplayStart(stored_until + interval_ms(interval), stored_until_ms=stored_until)


async def last_decided_ms(database: Database, run: Run) -> int | None:
    """The open time of the last candle every pair of the run has decided (the earliest pair's last
    decision); None before any decision."""
    journal = TradingJournal(database.pool)
    decided = [await journal.last_decided(run.id, pair, run.interval) for pair in run.pairs]
    times = [datetime_to_ms(moment) for moment in decided if moment is not None]
    return min(times) if times else None


async def newest_stored_ms(database: Database, pairs: Sequence[str], interval: Interval) -> int | None:
    """The open time of the newest candle the store holds of any of `pairs` at `interval`, whatever its
    source; None when it holds none."""
    store = CandleStore.of(database)
    ends = [span[1] for pair in pairs if (span := await store.span(pair, interval)) is not None]
    return max(ends) if ends else None


def _base_dir(config_path: Path | None) -> Path:
    """Relative replay files are found beside the config file (or in the working directory)."""
    return config_path.absolute().parent if config_path is not None else Path(".").absolute()


# ---------------------------------------------------------------------------------------------- the run

ORIGIN_CONFIG = "config"
"""A run started from `[run]` at start-up: resumed only while it still matches the configuration."""
ORIGIN_CONTROL = "control"
"""A run an operator started with `ctl runs start`: resumed as it was started."""


@dataclass(frozen=True)
class RunChoice:
    feature_set: str
    threshold: float
    agent_version_id: uuid.UUID | None
    baseline: str | None
    min_hold_bars: int = 0
    """The agent's decision rule's minimum holding (a baseline's: none)."""
    limit_entries: dict[str, object] | None = None
    """The agent's limit fill model (`environment.limit`) when it enters with limits; None: at market."""


@dataclass(frozen=True)
class StartCheck:
    """What the start-up checks found: for a new run its policy, and every pair's contract rules."""

    pairs: tuple[str, ...]
    rules: dict[str, FillRules]
    choice: RunChoice | None = None


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
    environment = agent_config_of(agent).environment
    limit_entries = None if environment.limit_rules is None else environment.limit.model_dump(mode="json")
    hold = agent.sections.get("environment", {}).get("min_hold_bars", 0)
    searched = version.training_metrics.get("search")
    if isinstance(searched, dict):  # a tuned version trades the minimum holding its search chose
        hold = searched["best"]["choices"].get("environment.min_hold_bars", hold)
    return RunChoice(version.feature_set, agent.decision_threshold, version_id, None, int(hold), limit_entries)


def limit_rules_of(stored: object) -> LimitRules | None:
    """The limit fill model a run's settings recorded for its agent (None: it enters at market)."""
    if stored is None:
        return None
    return LimitEntries.model_validate(stored).rules


def check_run_intervals(settings: Settings, interval: Interval, feature_set_name: str) -> None:
    market = settings.market_data
    spec = feature_set(feature_set_name)
    needed = [interval, *spec.context]
    missing = [iv for iv in needed if iv not in market.intervals]
    if missing:
        raise RunSetupError(
            f"the run needs {missing} candles: add them to market_data.intervals (now {list(market.intervals)})"
        )


def config_policy(policy: str) -> str:
    """`[run].policy` as a run names its policy (`baseline:momentum`, `agent:<id>`)."""
    return policy if policy.startswith("agent:") else f"baseline:{policy}"


def run_differences(settings: Settings, run: Run) -> list[str]:
    """How the run differs from what the configuration would start: pairs, policy, interval, feature set."""
    differences = []
    pairs = settings.market_data.pairs
    if set(run.pairs) != set(pairs):
        differences.append(f"pairs: the run trades {', '.join(run.pairs)}; market_data.pairs is {', '.join(pairs)}")
    policy = config_policy(settings.run.policy)
    if run.policy != policy:
        differences.append(f"policy: the run trades {run.policy}; run.policy is {policy}")
    if run.interval != settings.run.interval:
        differences.append(f"interval: the run decides {run.interval} candles; run.interval is {settings.run.interval}")
    if run.policy == policy and run.baseline_policy is not None:  # an agent's feature set comes with its version
        wanted = feature_set(settings.features.feature_set, settings.features.context).name
        if run.feature_set != wanted:
            differences.append(
                f"feature set: the run uses {run.feature_set}; features.feature_set (with features.context) is {wanted}"
            )
    return differences


def check_resumable(settings: Settings, run: Run, *, resume_as_is: bool, command: str = "tradingd") -> None:
    """Refuse to resume an active run the configuration no longer describes (unless `resume_as_is`, or the
    run was started by an operator with `ctl runs start`): the message says how they differ and what to do."""
    if run.mode == "live" and settings.exchange.mode != "live":
        raise RunSetupError(
            f"the active run {run.id} trades live: set exchange.mode = live (with BINGX_API_KEY and "
            "BINGX_SECRET_KEY) to resume it"
        )
    differences = run_differences(settings, run)
    if not differences:
        return
    if resume_as_is or run.settings.get("origin") == ORIGIN_CONTROL:
        log.warning(
            "run_differs_from_config",
            run_id=str(run.id),
            differences=differences,
            why="--resume-as-is" if resume_as_is else "started with `ctl runs start`",
        )
        return
    listed = "\n".join(f"  - {difference}" for difference in differences)
    raise RunSetupError(
        f"the active run {run.id} (started {run.started_at:%Y-%m-%d %H:%M} UTC) differs from the configuration:\n"
        f"{listed}\n"
        f"To start a new run from the configuration, stop this one first: `{command} runs stop {run.id}` (refused "
        f"while it holds positions: `--keep` hands them to the next run; `{command} ctl runs stop --flatten` closes "
        f"them while the daemon runs). To trade it as it was started: `{command} run --resume-as-is`."
    )


async def check_start(
    settings: Settings, database: Database, run: Run | None, policy: str, pairs: tuple[str, ...]
) -> StartCheck:
    """Every check a run must pass before it trades, before anything is written: the policy resolves, the
    intervals are collected, the pairs are allowed, and the venue lists each pair as a contract open for
    trading. `run` is the run being resumed (its own policy, pairs and slippage), None for a new run."""
    choice = None
    if run is not None:
        if run.agent_version_id is not None:
            await choose_policy(settings, database, f"agent:{run.agent_version_id}")
        check_run_intervals(settings, run.interval, run.feature_set)  # type: ignore[arg-type]
        pairs = run.pairs
        slippage = Decimal(str(dict(run.settings).get("slippage_bps", settings.run.slippage_bps)))
    else:
        choice = await choose_policy(settings, database, policy)
        check_run_intervals(settings, settings.run.interval, choice.feature_set)
        slippage = settings.run.slippage_bps
    allowed = settings.risk.allowed_instruments
    refused = [pair for pair in pairs if allowed and pair not in allowed]
    if refused:
        raise RunSetupError(f"{refused} are not in risk.allowed_instruments {list(allowed)}")
    rules = await venue_rules(settings, pairs, slippage)
    return StartCheck(pairs, rules, choice)


async def resolve_run(
    settings: Settings, database: Database, *, resume_as_is: bool = False, command: str = "tradingd"
) -> Run | None:
    """The active run, checked against the configuration (see `check_resumable`); None when a new run
    is to start from `[run]` (after `check_start`, with `start_run`)."""
    active = await RunStore(database.pool).active()
    if active is not None:
        check_resumable(settings, active, resume_as_is=resume_as_is, command=command)
        return active
    if not settings.run.autostart:
        raise RunSetupError("no run is active and run.autostart is off: start one with run.autostart = true")
    return None


async def start_run(settings: Settings, database: Database, checked: StartCheck, *, origin: str = ORIGIN_CONFIG) -> Run:
    """Write a new run, after `check_start` passed for it."""
    choice = checked.choice
    assert choice is not None, "check_start for a new run first"
    limit_id = await RiskStore(database.pool).activate_limits(limit_row(settings))
    run = await RunStore(database.pool).start(
        pairs=checked.pairs,
        interval=settings.run.interval,
        feature_set=choice.feature_set,
        decision_threshold=choice.threshold,
        settings={
            "initial_equity": str(settings.run.initial_equity),
            "max_exposure": str(settings.run.max_exposure),
            "slippage_bps": str(settings.run.slippage_bps),
            "min_hold_bars": choice.min_hold_bars,
            **({"limit_entries": choice.limit_entries} if choice.limit_entries is not None else {}),
            "origin": origin,
        },
        agent_version_id=choice.agent_version_id,
        baseline_policy=choice.baseline,
        risk_limit_set_id=limit_id,
    )
    log.info("run_started", run_id=str(run.id), policy=run.policy, pairs=list(run.pairs), origin=origin)
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
    """The limit set the risk guards apply (the same one training and evaluation trade under)."""
    return limits_of_settings(settings)


def live_venue_source(settings: Settings, limits: RiskLimits, pairs: int) -> LiveVenueSource:
    """How a live run's `pairs` reach the venue: the account's keys (required by the safety guard before
    anything starts), the leverage the limit set's `max_leverage` needs, and each pair's share of the
    account's signed request budget (the pairs sign from processes of their own)."""
    exchange = settings.exchange
    if exchange.api_key is None or exchange.secret_key is None:
        raise RunSetupError(
            "a live run needs BINGX_API_KEY and BINGX_SECRET_KEY (exchange.api_key, exchange.secret_key)"
        )
    if limits.stop_loss_pct is None:
        raise RunSetupError("a live run needs risk.stop_loss_pct: every live position carries a protective stop")
    credentials = Credentials(exchange.api_key.get_secret_value(), exchange.secret_key.get_secret_value())
    return LiveVenueSource(
        exchange.rest_url, exchange.ws_url, credentials, exchange.recv_window_ms, exchange.margin_type,
        venue_leverage(limits.max_leverage), ProtectionRule(limits.stop_loss_pct, limits.take_profit_pct),
        settings.trading.reconcile_interval_min * 60.0, settings.trading.external_positions, 1 / max(1, pairs),
    )  # fmt: skip


def account_policy(settings: Settings) -> tuple[AccountPolicy, AccountPolicyRow]:
    account = settings.account
    row = AccountPolicyRow(
        account.name,
        account.max_gross_exposure,
        account.max_net_exposure,
        account.daily_loss_limit,
        account.breaker_max_losses,
        account.breaker_cooldown_min,
        account.breaker_max_drawdown,
        account.flatten_on_trip,
    )
    policy = AccountPolicy(
        account.name,
        account.max_gross_exposure,
        account.max_net_exposure,
        account.daily_loss_limit,
        account.breaker_max_losses,
        timedelta(minutes=account.breaker_cooldown_min),
        account.breaker_max_drawdown,
        account.flatten_on_trip,
    )
    return policy, row


async def check_reachable(url: str, *, offline_hint: bool = True, timeout_sec: float = REACH_TIMEOUT_SEC) -> None:
    """One bounded attempt to open a connection to the venue's host: a start-up without network fails
    in seconds, naming the host (and the offline route), instead of after a long series of retries."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    try:
        async with asyncio.timeout(timeout_sec):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        reason = f"no connection to {host}:{port} within {timeout_sec:g} s"
    except socket.gaierror as error:
        reason = f"cannot resolve {host}: {error.strerror or error}"
    except OSError as error:  # asyncio words a refused connection "Connect call failed": say what errno says
        reason = f"{host}:{port}: {os.strerror(error.errno).lower() if error.errno else error}"
    else:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    hint = ": no network? to trade offline, run `tradingd --config config/replay.toml run`" if offline_hint else ""
    raise RunSetupError(f"cannot reach the venue at {url} ({reason}){hint}", exit_codes.UNAVAILABLE)


async def venue_rules(settings: Settings, pairs: tuple[str, ...], slippage_bps: Decimal) -> dict[str, FillRules]:
    url = settings.exchange.rest_url
    await check_reachable(url, offline_hint=settings.market_data.source != "replay")
    try:
        async with BingXRest(
            url, recv_window_ms=settings.exchange.recv_window_ms, timeout_sec=REACH_TIMEOUT_SEC, retry=START_RETRY
        ) as rest:
            contracts = {contract.symbol: contract for contract in await rest.contracts()}
    except VenueError as error:
        raise RunSetupError(
            f"cannot read the contracts from the venue at {url}: {error}", exit_codes.UNAVAILABLE
        ) from None
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
    settings: Settings, database: Database, run: Run, log_socket: str, rules: dict[str, FillRules] | None = None
) -> tuple[list[PairPlan], WorkerEnv, AccountPolicy]:
    """Each pair's plan; `rules` as `check_start` read them (read from the venue again when not given)."""
    run_settings: dict[str, Any] = dict(run.settings)
    slippage = Decimal(str(run_settings.get("slippage_bps", settings.run.slippage_bps)))
    if rules is None:
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
    live = live_venue_source(settings, limits, len(run.pairs)) if run.mode == "live" else None
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
            int(run_settings.get("min_hold_bars", 0)),
            limit_rules_of(run_settings.get("limit_entries")),
        )
        plans.append(
            PairPlan(
                context, rules[pair], limits, policy_source, features, feed, settings.trading.enforce_provenance, live
            )
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
