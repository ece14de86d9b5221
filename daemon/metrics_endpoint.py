"""The Prometheus endpoint (`metrics.enabled`): `GET /metrics` in the text exposition format, from what
the supervisor and the actors hold at the moment of the scrape (no database read: it answers through an
outage). Built with `prometheus_client`'s metric families, one registry per scrape.

- `tradingd_decision_latency_seconds`, `tradingd_slippage_bps`, `tradingd_feature_drift_zscore`:
  histograms per pair, from each execution actor's start (a restarted actor starts from zero);
- `tradingd_ingestion_lag_seconds`: the feed's latest candle-final-to-row time, per pair;
- `tradingd_actor_restarts_total` per pair since the daemon started; `tradingd_pair_state` and
  `tradingd_pair_trading_state` (one series per state, 1 for the current one), `tradingd_pair_waiting`;
- `tradingd_account_trading_state`, `tradingd_circuit_breaker_open`;
- buffered writes: `tradingd_alerts_kept`, `tradingd_alerts_dropped_total`, `tradingd_desired_states_unsaved`,
  `tradingd_inbox_backlog` per pair and role.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from daemon.run_state import DaemonState
from observability import get_logger

log = get_logger("tradingd.metrics")
PAIR_STATES = ("starting", "running", "restarting", "faulted", "stopped")
TRADING_STATES = ("ACTIVE", "REDUCING", "HALTED")
ROLES = ("execution", "risk", "features")
HISTOGRAMS = {
    # our metric, its name here, its help, the factor to its unit
    "decision_latency_ms": ("tradingd_decision_latency_seconds", "candle final to decision recorded", 0.001),
    "slippage_bps": ("tradingd_slippage_bps", "fill price against the decision candle's open", 1.0),
    "feature_drift_zscore": ("tradingd_feature_drift_zscore", "largest |z| against the agent's training data", 1.0),
}


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def families(
    state: DaemonState, views: Mapping[str, Mapping[str, Any]], account: Mapping[str, Any] | None
) -> list[Metric]:
    """The metric families of one scrape: `views` are the supervisor's pair statuses by pair."""
    supervisor = state.require_supervisor()
    out: list[Metric] = []
    for ours, (name, help_text, factor) in HISTOGRAMS.items():
        family = HistogramMetricFamily(name, help_text, labels=["pair"])
        for pair, view in views.items():
            summary = ((view.get("position") or {}).get("metrics") or {}).get(ours)
            if summary:
                family.add_metric([pair], _buckets(summary, factor), sum_value=float(summary["sum"]) * factor)
        out.append(family)
    lag = GaugeMetricFamily("tradingd_ingestion_lag_seconds", "candle final to its row written", labels=["pair"])
    restarts = CounterMetricFamily("tradingd_actor_restarts", "pair restarts since the daemon started", labels=["pair"])
    pair_state = GaugeMetricFamily("tradingd_pair_state", "supervision state (1: current)", labels=["pair", "state"])
    trading = GaugeMetricFamily("tradingd_pair_trading_state", "effective trading state", labels=["pair", "state"])
    waiting = GaugeMetricFamily("tradingd_pair_waiting", "a start waits for the venue or database", labels=["pair"])
    backlog = GaugeMetricFamily(
        "tradingd_inbox_backlog", "messages waiting in an actor's inbox", labels=["pair", "role"]
    )
    for pair, view in views.items():
        slot = supervisor.slots[pair]
        feed_lag = (view.get("feed") or {}).get("ingestion_lag_sec")
        if feed_lag is not None:
            lag.add_metric([pair], float(feed_lag))
        restarts.add_metric([pair], slot.restarts_total)
        for name in PAIR_STATES:
            pair_state.add_metric([pair, name], 1.0 if slot.state == name else 0.0)
        current = str(view.get("trading_state", "HALTED"))
        for name in TRADING_STATES:
            trading.add_metric([pair, name], 1.0 if current == name else 0.0)
        waiting.add_metric([pair], 1.0 if slot.waiting_on else 0.0)
        for role, part in (("execution", "position"), ("risk", "risk"), ("features", "features")):
            inbox = (view.get(part) or {}).get("inbox")
            if isinstance(inbox, Mapping):
                backlog.add_metric([pair, role], float(inbox.get("backlog", 0)))
    out += [lag, restarts, pair_state, trading, waiting, backlog]
    account_state = GaugeMetricFamily("tradingd_account_trading_state", "the account guard's state", labels=["state"])
    breaker = GaugeMetricFamily("tradingd_circuit_breaker_open", "1 while the circuit breaker is open")
    if account is not None and "trading_state" in account:
        for name in TRADING_STATES:
            account_state.add_metric([name], 1.0 if account["trading_state"] == name else 0.0)
        breaker.add_metric([], 1.0 if account.get("breaker_open") else 0.0)
    out += [account_state, breaker]
    alerts = state.alerts
    out.append(
        _gauge(
            "tradingd_alerts_kept", "alerts kept to be written (database away)", len(alerts.pending) if alerts else 0
        )
    )
    dropped = CounterMetricFamily("tradingd_alerts_dropped", "alerts dropped from a full outbox")
    dropped.add_metric([], alerts.dropped if alerts else 0)
    out.append(dropped)
    out.append(
        _gauge(
            "tradingd_audit_events_kept", "audit events kept to be written (database away)", len(state.audits.pending)
        )
    )
    out.append(_gauge("tradingd_desired_states_unsaved", "pauses applied, not yet stored", len(supervisor.unsaved)))
    return out


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, help_text)
    gauge.add_metric([], float(value))
    return gauge


def _buckets(summary: Mapping[str, Any], factor: float) -> list[tuple[str, float]]:
    """Cumulative buckets from the execution actor's per-bucket counts (the last is +Inf)."""
    bounds: Iterable[float] = summary["bounds"]
    counts: list[int] = summary["counts"]
    cumulative, total = [], 0
    for bound, count in zip([*bounds, float("inf")], counts, strict=True):
        total += count
        cumulative.append(("+Inf" if bound == float("inf") else repr(float(bound) * factor), float(total)))
    return cumulative


class MetricsEndpoint:
    def __init__(self, state: DaemonState, host: str, port: int) -> None:
        self.state, self.host, self.port = state, host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen, or raise OSError (the port in use, an address not ours)."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("metrics_listening", url=f"http://{self.host}:{self.port}/metrics")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _request: web.Request) -> web.Response:
        supervisor = self.state.supervisor
        if supervisor is None:
            return web.Response(status=503, text="not trading yet\n")
        slots = list(supervisor.slots.values())
        views = await asyncio.gather(*(supervisor.pair_status(slot) for slot in slots))
        account = None
        if supervisor.account is not None:
            try:
                account = await supervisor.account.summary(wait_sec=supervisor.settings.health_timeout_sec)
            except Exception as error:  # the account guard late or restarting: its series are left out
                log.warning("metrics_account_unavailable", error=str(error))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(
            _Families(families(self.state, dict(zip((s.pair for s in slots), views, strict=True)), account))
        )
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
