"""The typed, frozen settings tree.

Every section rejects unknown keys, and scalar fields are strict: a TOML string where a number or a
boolean belongs is an error, not a guess. Values that arrive as text from the environment are converted
by the loader before validation (see `config.loader`). Secrets are `SecretStr`, whose repr and str are
redacted; `config.redaction.redacted_settings` renders the whole tree for operators.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StringConstraints, model_validator

from config.dsn import dsn_password
from domain.market import PAIR_PATTERN, Interval, parse_interval

Pair = Annotated[str, StringConstraints(pattern=PAIR_PATTERN)]
# Containers and paths accept the TOML shapes (lists, strings); their items stay strictly typed.
Pairs = Annotated[tuple[Pair, ...], Field(strict=False)]
Intervals = Annotated[tuple[Interval, ...], Field(strict=False, min_length=1)]
ContextIntervals = Annotated[tuple[Interval, ...], Field(strict=False)]


def _no_nul(path: Path) -> Path:
    if "\x00" in str(path):
        raise ValueError("a path cannot hold a NUL character")
    return path


def _home_known(path: Path) -> Path:
    """A path starting `~` or `~user` must name a home directory this system knows (it is expanded where
    it is used)."""
    if str(path).startswith("~"):
        try:
            path.expanduser()
        except RuntimeError:
            user = str(path).split("/", 1)[0][1:]
            raise ValueError(
                f"the home directory of {f'user {user!r}' if user else 'this user'} is not known"
            ) from None
    return path


FilePath = Annotated[Path, Field(strict=False), AfterValidator(_no_nul), AfterValidator(_home_known)]

Environment = Literal["development", "production"]
TradingMode = Literal["paper", "live"]
MarginType = Literal["ISOLATED", "CROSSED"]
MarketDataSource = Literal["bingx", "simulator", "replay"]
FeatureSetName = Literal["v1", "v2"]
ArtifactStore = Literal["database", "file"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["auto", "json", "console"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, validate_default=True)


class ExchangeSettings(Section):
    """How tradingd reaches BingX (or the BingX-compatible simulator on loopback)."""

    mode: TradingMode = "paper"
    rest_url: str = Field(default="https://open-api.bingx.com", pattern=r"^https?://\S+$")
    ws_url: str = Field(default="wss://open-api-swap.bingx.com/swap-market", pattern=r"^wss?://\S+$")
    api_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    credentials_file: FilePath | None = None
    """A TOML file with `api_key` and `secret_key`, mode 0600 (`config.credentials`): the keys from it, when
    neither is given otherwise."""
    recv_window_ms: int = Field(default=5000, ge=1, le=60_000)
    margin_type: MarginType = "ISOLATED"
    """Set on each live pair at start: ISOLATED keeps a pair's loss to its own margin."""


class MarketDataSettings(Section):
    """Which pairs and intervals are collected, from where, and how gaps are healed."""

    source: MarketDataSource = "bingx"
    pairs: Pairs = Field(default=("BTC-USDT",), min_length=1)
    intervals: Intervals = ("1m",)
    backfill_enabled: bool = False
    backfill_max_batches: int | None = Field(default=None, ge=1)
    gap_monitor_interval_min: int = Field(default=0, ge=0, description="0 disables the gap monitor")
    mock: bool = False
    replay_file: FilePath | None = None

    @model_validator(mode="after")
    def _no_duplicates(self) -> MarketDataSettings:
        for name, values in (("pairs", self.pairs), ("intervals", self.intervals)):
            if len(set(values)) != len(values):
                raise ValueError(f"market_data.{name} lists a value twice: {list(values)}")
        return self


class StorageSettings(Section):
    """Where state lives: the embedded PostgreSQL under `data_dir`, or an external server."""

    timescale_url: SecretStr | None = None
    data_dir: FilePath | None = None
    disable_test_data_in_db: bool = False
    pool_min_size: int = Field(default=1, ge=1, le=100)
    pool_max_size: int = Field(default=10, ge=1, le=100)
    command_timeout_sec: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _pool_bounds(self) -> StorageSettings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("storage.pool_min_size must not exceed storage.pool_max_size")
        if self.timescale_url is not None:
            scheme = self.timescale_url.get_secret_value().partition(":")[0]
            if scheme.lower() not in ("postgresql", "postgres"):
                shown = scheme if scheme.isascii() and scheme.isalnum() else "?"  # never echo more of a secret
                raise ValueError(f"storage.timescale_url (TIMESCALE_URL) must be a postgresql:// URL, not {shown}://")
        return self

    def resolved_data_dir(self) -> Path:
        """`data_dir`, else systemd's `STATE_DIRECTORY`, else `$XDG_DATA_HOME/tradingd`."""
        if self.data_dir is not None:
            return self.data_dir.expanduser()
        state_directory = os.environ.get("STATE_DIRECTORY")
        if state_directory:
            return Path(state_directory.split(":")[0])
        xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(xdg) / "tradingd"


class ControlSettings(Section):
    """The unix control socket and its single-operator token."""

    socket_path: FilePath | None = None
    api_token: SecretStr | None = None

    def resolved_socket_path(self, data_dir: Path) -> Path:
        """`socket_path`, else systemd's `RUNTIME_DIRECTORY`, else the data directory."""
        if self.socket_path is not None:
            return self.socket_path.expanduser()
        runtime_directory = os.environ.get("RUNTIME_DIRECTORY")
        base = Path(runtime_directory.split(":")[0]) if runtime_directory else data_dir
        return base / "control.sock"


class FeatureSettings(Section):
    """Feature-set choice and the feature-quality gate's limits."""

    feature_set: FeatureSetName = "v2"
    context: ContextIntervals = ()
    """Other intervals whose features join the feature set: longer (`5m`, `1h` beside 1m candles) or shorter
    (`1m` beside 5m, 15m or 1h candles; docs/features.md)."""
    ood_zscore_limit: float = Field(default=8.0, gt=0)
    max_missing_critical: int = Field(default=0, ge=0)
    max_freshness_sec: float = Field(default=120.0, gt=0)
    max_source_drift: float = Field(default=0.002, gt=0, lt=1)
    """Integrity gate: the largest relative OHLC difference between two sources for one candle."""

    @model_validator(mode="after")
    def _fixed_context(self) -> FeatureSettings:
        if len(set(self.context)) != len(self.context):
            raise ValueError(f"features.context lists an interval twice: {list(self.context)}")
        if "1M" in self.context:
            raise ValueError("features.context cannot use 1M: a calendar month has no fixed length")
        return self


class TradingSettings(Section):
    """Execution bookkeeping and decision provenance."""

    reconcile_interval_min: int = Field(default=5, ge=1)
    live_min_paper_decisions: int = Field(default=1440, ge=0)
    """`ctl runs live`: the decisions a paper run must have made before it may switch to live."""
    live_min_paper_days: float = Field(default=1.0, ge=0)
    """`ctl runs live`: the days of candles (market time) a paper run must have decided before it may switch."""
    external_positions: Literal["halt", "adopt"] = "halt"
    """A venue position on one of our pairs that the database does not know, found by reconciliation:
    `halt` names it and halts the pair (the operator looks first); `adopt` manages it as an external trade."""
    enforce_provenance: bool = False


BaselineName = Literal["hold", "momentum", "ema_cross"]
PositiveDecimal = Annotated[Decimal, Field(strict=False, gt=0)]
Fraction = Annotated[Decimal, Field(strict=False, gt=0, le=1)]
PolicyName = Annotated[str, StringConstraints(pattern=r"^(hold|momentum|ema_cross|agent:[0-9a-fA-F-]{36})$")]


class RunSettings(Section):
    """The paper run the daemon starts when none is active (`runs start` starts others)."""

    autostart: bool = True
    policy: PolicyName = "momentum"
    """A baseline (`hold`, `momentum`, `ema_cross`) or a trained agent version, `agent:<version id>`."""
    interval: Interval = "1m"
    initial_equity: PositiveDecimal = Decimal(10_000)
    max_exposure: Fraction = Decimal("0.5")
    """A full target position is this fraction of the equity (as in the agents' training environment)."""
    slippage_bps: Annotated[Decimal, Field(strict=False, ge=0, le=1000)] = Decimal(2)


class RiskSettings(Section):
    """The per-pair risk limits, written to `risk_limit_sets` and made active at start-up."""

    name: str = Field(default="default", min_length=1)
    max_position_notional: PositiveDecimal = Decimal(6_000)
    max_order_notional: PositiveDecimal = Decimal(6_000)
    max_orders_per_interval: int = Field(default=2, ge=1)
    max_leverage: Annotated[Decimal, Field(strict=False, ge=1)] = Decimal(1)
    stop_loss_pct: Fraction | None = Decimal("0.05")
    take_profit_pct: PositiveDecimal | None = None
    allowed_instruments: Pairs = ()
    """Empty: every configured pair; otherwise only these (a configured pair outside it is refused)."""


class AccountSettings(Section):
    """The account guard's policy, written to `account_risk_policies` and made active at start-up."""

    name: str = Field(default="default", min_length=1)
    max_gross_exposure: PositiveDecimal = Decimal(15_000)
    max_net_exposure: PositiveDecimal = Decimal(10_000)
    daily_loss_limit: PositiveDecimal = Decimal(500)
    breaker_max_losses: int = Field(default=5, ge=1)
    breaker_cooldown_min: int = Field(default=60, ge=0)
    breaker_max_drawdown: PositiveDecimal = Decimal(1_000)
    """USDT: the breaker also trips when the account's equity falls this far below its peak (on paper the
    marked value: realised PnL less fees plus the open positions at their last mark; live, the venue's
    equity: wallet balance plus unrealised PnL)."""
    flatten_on_trip: bool = False
    """When the breaker trips, also close every position reduce-only (it always cancels opening orders)."""
    venue_equity_interval_sec: float = Field(default=5.0, ge=1.0, le=300.0)
    """On a live run, how often the account guard reads the venue's equity (wallet balance plus unrealised
    PnL), on which the breaker's drawdown is then measured."""


ReplaySpeed = Annotated[float, Field(gt=0)] | Literal["fast"]


def _replay_spec(spec: str) -> str:
    """`PAIR:INTERVAL:FILE`, checked in shape here (the file is read at start-up)."""
    pair, _, rest = spec.partition(":")
    interval, _, file = rest.partition(":")
    if not (pair and interval and file):
        raise ValueError("expected PAIR:INTERVAL:FILE")
    if not re.fullmatch(PAIR_PATTERN, pair):
        raise ValueError(f"{pair!r} is not a BingX symbol (BASE-QUOTE in upper case, e.g. BTC-USDT)")
    parse_interval(interval)
    _no_nul(Path(file))
    return spec


ReplaySpec = Annotated[str, AfterValidator(_replay_spec)]


class ReplaySettings(Section):
    """`market_data.source = "replay"`: the daemon serves these candle files from an in-process
    BingX-compatible simulator on loopback and trades against it."""

    candles: Annotated[tuple[ReplaySpec, ...], Field(strict=False)] = ()
    """`PAIR:INTERVAL:FILE` (relative paths from the config file's directory)."""
    derive: ContextIntervals = ()
    """Longer intervals served aggregated from each file (for `market_data.intervals` beyond the file's)."""
    speed: ReplaySpeed = 60.0
    """Times real time; one 1m candle a second at 60."""
    start_bars: int = Field(default=1100, ge=0)
    """The replay clock starts this many bars into each file, so there is history for the warm-up."""


class RaySettings(Section):
    address: str | None = None
    """A Ray cluster to join (`ray://...` or `host:port`); None starts a local Ray in this process."""
    num_cpus: int | None = Field(default=None, ge=1)
    include_dashboard: bool = False


class DaemonSettings(Section):
    """Supervision: health checks, restarts, shutdown."""

    health_interval_sec: float = Field(default=5.0, gt=0)
    health_timeout_sec: float = Field(default=10.0, gt=0)
    health_misses: int = Field(default=3, ge=1)
    """Missed health pings (no answer within `health_timeout_sec`) of one actor within
    `health_window_sec` before its pair is restarted; an actor that died is restarted at once."""
    health_window_sec: float = Field(default=60.0, gt=0)
    start_timeout_sec: float = Field(default=120.0, gt=0)
    """Each start-up step of an actor (twice this for the feed's warm-up and the feature actor's opening)."""
    restart_backoff_sec: float = Field(default=1.0, gt=0)
    restart_backoff_max_sec: float = Field(default=60.0, gt=0)
    max_restarts: int = Field(default=5, ge=1)
    """Restarts of one pair's actors within `restart_window_sec` before the pair is FAULTED."""
    restart_window_sec: float = Field(default=600.0, gt=0)
    shutdown_deadline_sec: float = Field(default=60.0, gt=0)
    heartbeat_sec: float = Field(default=30.0, gt=0)
    stall_after_sec: float = Field(default=300.0, gt=0)
    """How long every running pair may hold a final candle it has not decided before the daemon counts as
    stalled: it stops sending WATCHDOG=1 (systemd restarts it) and raises a `daemon_stalled` alert."""
    gap_patience_sec: float = Field(default=30.0, ge=0)
    """How long the feature actor waits for a missing candle before it moves past it."""
    stale_after_sec: float = Field(default=120.0, gt=0)
    """A pair whose source has been silent this long is paused automatically, until data flows again."""


class TrainingSettings(Section):
    """Where trained policies are kept."""

    artifact_store: ArtifactStore = "database"
    """`database`: the artifact's bytes in `model_artifacts` (db://); `file`: a file under
    `<data_dir>/artifacts` (file://). Either way the row holds the checksum the loader verifies."""


class OnlineLearningSettings(Section):
    """Champion/challenger online learning and its promotion thresholds."""

    enabled: bool = False
    auto_roll_forward: bool = False
    pairs: Pairs = ()
    interval: Interval = "1m"
    min_win_rate_delta: float = 0.0
    min_net_pnl_delta: float = 0.0
    max_drawdown_delta: float = 0.0
    min_trade_count_delta: int = 0


class IdeaSourceSettings(Section):
    """Auxiliary idea/signal sources. The file-backed variants are fixtures, refused in production."""

    tradingview_use_html: bool = False
    tradingview_html_path: FilePath | None = None
    telegram_messages_path: FilePath | None = None


class LoggingSettings(Section):
    level: LogLevel = "info"
    format: LogFormat = "auto"


class MetricsSettings(Section):
    """The Prometheus endpoint (`GET /metrics` in the text format), off unless enabled. It has no
    authentication: keep it on loopback, or on an interface only the scraper reaches."""

    enabled: bool = False
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=9464, ge=1, le=65_535)


AlertSeverity = Literal["info", "warning", "critical"]


class AlertSettings(Section):
    """Delivery of alerts to a person, beside the `alerts` table: a webhook (an HTTP POST of one JSON
    object per alert) and/or a Telegram chat (through python-telegram-bot). Off unless one is set. Each
    alert is sent once per channel with its trace id, retried with a doubling backoff up to
    `retry_max_sec`, and at most `max_per_minute` messages go out (a burst beyond that is sent as one
    digest). `tradingd liveness` (a systemd timer) uses the same channels when the daemon is dead or its
    heartbeat file is older than `liveness_max_age_sec`: an alert from outside the process."""

    webhook_url: SecretStr | None = None
    """Often holds a token of its own (Slack, Discord, ntfy): a secret, never logged."""
    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: str | None = Field(default=None, min_length=1, max_length=64)
    telegram_api_url: str = Field(default="https://api.telegram.org", pattern=r"^https?://\S+$")
    """Telegram's Bot API (or a local Bot API server); the token is appended as Telegram expects."""
    min_severity: AlertSeverity = "warning"
    max_per_minute: int = Field(default=10, ge=1, le=600)
    retry_max_sec: float = Field(default=300.0, gt=0)
    send_timeout_sec: float = Field(default=10.0, gt=0, le=120)
    max_age_hours: float = Field(default=24.0, gt=0)
    """An alert not delivered within this long (the channel was down for a day) is given up, logged."""
    liveness_max_age_sec: float = Field(default=180.0, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> AlertSettings:
        if (self.telegram_bot_token is None) != (self.telegram_chat_id is None):
            raise ValueError("alerts.telegram_bot_token and alerts.telegram_chat_id go together: set both or neither")
        if self.webhook_url is not None:
            url = self.webhook_url.get_secret_value()
            if not re.fullmatch(r"https?://[^\s/]+\S*", url):
                scheme = url.split("://", 1)[0] if "://" in url else "no scheme"
                raise ValueError(f"alerts.webhook_url must be an http:// or https:// URL (it has {scheme})")
        return self

    @property
    def channels(self) -> tuple[str, ...]:
        """The delivery channels configured, in the order they are tried."""
        named = (("webhook", self.webhook_url is not None), ("telegram", self.telegram_bot_token is not None))
        return tuple(name for name, configured in named if configured)


class Settings(Section):
    """The whole effective configuration of one tradingd process."""

    env: Environment = "development"
    e2e_run: bool = False
    exchange: ExchangeSettings = ExchangeSettings()
    market_data: MarketDataSettings = MarketDataSettings()
    storage: StorageSettings = StorageSettings()
    control: ControlSettings = ControlSettings()
    features: FeatureSettings = FeatureSettings()
    trading: TradingSettings = TradingSettings()
    run: RunSettings = RunSettings()
    risk: RiskSettings = RiskSettings()
    account: AccountSettings = AccountSettings()
    replay: ReplaySettings = ReplaySettings()
    ray: RaySettings = RaySettings()
    daemon: DaemonSettings = DaemonSettings()
    training: TrainingSettings = TrainingSettings()
    online_learning: OnlineLearningSettings = OnlineLearningSettings()
    sources: IdeaSourceSettings = IdeaSourceSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()
    alerts: AlertSettings = AlertSettings()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        market = self.market_data
        allowed = self.risk.allowed_instruments
        refused = [pair for pair in market.pairs if allowed and pair not in allowed]
        if refused:
            raise ValueError(f"market_data.pairs {refused} are not in risk.allowed_instruments {list(allowed)}")
        if self.run.interval not in market.intervals:
            raise ValueError(
                f"run.interval {self.run.interval} is not collected: add it to market_data.intervals"
                f" (now {list(market.intervals)})"
            )
        if self.alerts.liveness_max_age_sec <= 2 * self.daemon.heartbeat_sec:
            raise ValueError(
                f"alerts.liveness_max_age_sec ({self.alerts.liveness_max_age_sec:g}) must exceed twice"
                f" daemon.heartbeat_sec ({self.daemon.heartbeat_sec:g}): the heartbeat file is rewritten that often"
            )
        if market.source == "replay" and not self.replay.candles:
            raise ValueError("market_data.source = replay needs replay.candles (PAIR:INTERVAL:FILE)")
        return self

    def secret_values(self) -> list[str]:
        """Every secret's plain value, for the log redactor. Never log what this returns."""
        candidates = (
            self.exchange.api_key,
            self.exchange.secret_key,
            self.control.api_token,
            self.storage.timescale_url,
            self.alerts.webhook_url,
            self.alerts.telegram_bot_token,
        )
        values = [secret.get_secret_value() for secret in candidates if secret is not None]
        if self.storage.timescale_url is not None:
            password = dsn_password(self.storage.timescale_url.get_secret_value()) or ""
            values += [password, unquote(password)]  # a library may print it percent-decoded
        return [value for value in values if value]
