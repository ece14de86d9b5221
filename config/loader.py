"""Load settings once at start-up: defaults, then a TOML file, then environment variables.

The environment wins over the file. Variable names follow the seeds where they exist
(`TIMESCALE_URL`, `API_TOKEN`, `DISABLE_TEST_DATA_IN_DB`, `RL_*`, ...); tradingd's own use the
`TRADINGD_` prefix, and an unknown `TRADINGD_*` variable is an error (a typo there would otherwise be
silently ignored). An empty variable counts as unset. Lists in variables are comma-separated.
"""

from __future__ import annotations

import copy
import os
import stat
import tomllib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from config.credentials import merge_credentials_file
from config.errors import ConfigError
from config.guard import check_available, check_safety
from config.settings import Settings

ENV_VARIABLES: Final[Mapping[str, tuple[str, ...]]] = {
    "TRADINGD_ENV": ("env",),
    "E2E_RUN": ("e2e_run",),
    "TRADINGD_TRADING_MODE": ("exchange", "mode"),
    "BINGX_REST_URL": ("exchange", "rest_url"),
    "BINGX_WS_URL": ("exchange", "ws_url"),
    "BINGX_API_KEY": ("exchange", "api_key"),
    "BINGX_SECRET_KEY": ("exchange", "secret_key"),
    "BINGX_CREDENTIALS_FILE": ("exchange", "credentials_file"),
    "BINGX_RECV_WINDOW_MS": ("exchange", "recv_window_ms"),
    "BINGX_MARGIN_TYPE": ("exchange", "margin_type"),
    "TRADINGD_MARKET_DATA_SOURCE": ("market_data", "source"),
    "TRADINGD_PAIRS": ("market_data", "pairs"),
    "BINGX_MARKET_DATA_INTERVALS": ("market_data", "intervals"),
    "BINGX_MARKET_DATA_BACKFILL": ("market_data", "backfill_enabled"),
    "BINGX_MARKET_DATA_BACKFILL_MAX_BATCHES": ("market_data", "backfill_max_batches"),
    "DATA_GAP_MONITOR_INTERVAL_MIN": ("market_data", "gap_monitor_interval_min"),
    "BINGX_MARKET_DATA_MOCK": ("market_data", "mock"),
    "TRADINGD_REPLAY_FILE": ("market_data", "replay_file"),
    "TIMESCALE_URL": ("storage", "timescale_url"),
    "TRADINGD_DATA_DIR": ("storage", "data_dir"),
    "DISABLE_TEST_DATA_IN_DB": ("storage", "disable_test_data_in_db"),
    "TRADINGD_CONTROL_SOCKET": ("control", "socket_path"),
    "API_TOKEN": ("control", "api_token"),
    "RL_FEATURE_SET": ("features", "feature_set"),
    "RL_FEATURE_OOD_ZSCORE_LIMIT": ("features", "ood_zscore_limit"),
    "RL_FEATURE_MAX_MISSING_CRITICAL": ("features", "max_missing_critical"),
    "RL_FEATURE_MAX_FRESHNESS_SEC": ("features", "max_freshness_sec"),
    "TRADINGD_FEATURE_MAX_SOURCE_DRIFT": ("features", "max_source_drift"),
    "TRADINGD_FEATURE_CONTEXT": ("features", "context"),
    "TRADINGD_ARTIFACT_STORE": ("training", "artifact_store"),
    "TRADE_RECONCILE_INTERVAL_MIN": ("trading", "reconcile_interval_min"),
    "TRADE_EXTERNAL_POSITIONS": ("trading", "external_positions"),
    "TRADE_LIVE_MIN_PAPER_DECISIONS": ("trading", "live_min_paper_decisions"),
    "TRADE_LIVE_MIN_PAPER_DAYS": ("trading", "live_min_paper_days"),
    "RL_ENFORCE_PROVENANCE": ("trading", "enforce_provenance"),
    "TRADINGD_RUN_POLICY": ("run", "policy"),
    "TRADINGD_RUN_AUTOSTART": ("run", "autostart"),
    "TRADINGD_RAY_ADDRESS": ("ray", "address"),
    "RL_ONLINE_LEARNING_ENABLED": ("online_learning", "enabled"),
    "RL_ONLINE_LEARNING_AUTO_ROLL_FORWARD": ("online_learning", "auto_roll_forward"),
    "RL_ONLINE_LEARNING_PAIRS": ("online_learning", "pairs"),
    "RL_ONLINE_LEARNING_INTERVAL": ("online_learning", "interval"),
    "RL_ONLINE_LEARNING_MIN_WIN_RATE_DELTA": ("online_learning", "min_win_rate_delta"),
    "RL_ONLINE_LEARNING_MIN_NET_PNL_DELTA": ("online_learning", "min_net_pnl_delta"),
    "RL_ONLINE_LEARNING_MAX_DRAWDOWN_DELTA": ("online_learning", "max_drawdown_delta"),
    "RL_ONLINE_LEARNING_MIN_TRADE_COUNT_DELTA": ("online_learning", "min_trade_count_delta"),
    "TRADINGVIEW_USE_HTML": ("sources", "tradingview_use_html"),
    "TRADINGVIEW_HTML_PATH": ("sources", "tradingview_html_path"),
    "TELEGRAM_MESSAGES_PATH": ("sources", "telegram_messages_path"),
    "TRADINGD_LOG_LEVEL": ("logging", "level"),
    "TRADINGD_LOG_FORMAT": ("logging", "format"),
    "TRADINGD_METRICS_ENABLED": ("metrics", "enabled"),
    "TRADINGD_METRICS_HOST": ("metrics", "host"),
    "TRADINGD_METRICS_PORT": ("metrics", "port"),
    "TRADINGD_ALERT_WEBHOOK_URL": ("alerts", "webhook_url"),
    "TRADINGD_ALERT_TELEGRAM_BOT_TOKEN": ("alerts", "telegram_bot_token"),
    "TRADINGD_ALERT_TELEGRAM_CHAT_ID": ("alerts", "telegram_chat_id"),
    "TRADINGD_ALERT_MIN_SEVERITY": ("alerts", "min_severity"),
}
"""Environment variable -> path in the settings tree."""

ENV_NAMES: Final[Mapping[tuple[str, ...], str]] = {path: name for name, path in ENV_VARIABLES.items()}
"""Path in the settings tree -> its environment variable (for messages)."""

SECRET_FIELDS: Final = frozenset(
    {
        ("exchange", "api_key"),
        ("exchange", "secret_key"),
        ("control", "api_token"),
        ("storage", "timescale_url"),
        ("alerts", "webhook_url"),
        ("alerts", "telegram_bot_token"),
    }
)
"""Fields whose values are secrets (TIMESCALE_URL may carry a database password, a webhook URL a token)."""

CONFIG_FILE_VARIABLE: Final = "TRADINGD_CONFIG"
_OTHER_TRADINGD_VARIABLES: Final = frozenset({CONFIG_FILE_VARIABLE})


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Validate the effective configuration once, or raise `ConfigError` naming what is wrong.

    `path` defaults to `$TRADINGD_CONFIG`; with neither, only defaults and the environment apply.
    The safety guard (live-mode secrets, production) runs here, so no caller can skip it, and so does the
    refusal of settings that have no behaviour yet (`config.guard.NOT_AVAILABLE_YET`).
    """
    env = dict(os.environ if environ is None else environ)
    if path is None and env.get(CONFIG_FILE_VARIABLE):
        path = Path(env[CONFIG_FILE_VARIABLE])
    file_data: dict[str, Any] = read_toml(path) if path is not None else {}
    if path is not None:
        _refuse_readable_secrets(path, file_data)
    data = copy.deepcopy(file_data)
    _reject_unknown_tradingd_variables(env)
    overrides = env_overrides(env)
    for name, value in overrides.items():
        _set_path(data, ENV_VARIABLES[name], value)
    merge_credentials_file(data)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as error:
        origin = f"{path} and the environment" if path is not None else "defaults and environment"
        raise ConfigError(_describe(error, origin, data)) from None
    check_safety(settings, env)
    check_available(settings, ENV_NAMES, frozenset(overrides), path)
    check_directories(settings)
    return settings


def check_directories(settings: Settings) -> None:
    """The data directory, and the control socket's directory, are directories or can be made ones:
    each is one, or does not exist and its nearest existing parent is a directory."""
    data_dir = settings.storage.resolved_data_dir()
    places = [
        (("storage", "data_dir"), data_dir),
        (("control", "socket_path"), settings.control.resolved_socket_path(data_dir).parent),
    ]
    for path, place in places:
        key = ".".join(path) + (f" ({ENV_NAMES[path]})" if path in ENV_NAMES else "")
        existing = next((p for p in (place, *place.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            what = "is not a directory" if existing == place else f"cannot be made: {existing} is not a directory"
            raise ConfigError(f"{key}: {place} {what}")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text: byte {error.start + 1} cannot be read") from None
    except RecursionError:
        raise ConfigError(f"config file {path} nests arrays or tables too deeply to be a configuration") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror}") from None


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The known variables that are set (non-empty), converted to their fields' Python types."""
    overrides: dict[str, Any] = {}
    for name, field_path in ENV_VARIABLES.items():
        raw = environ.get(name, "")
        if raw.strip() == "":
            continue
        overrides[name] = _convert(name, raw.strip(), _field_annotation(field_path))
    return overrides


def _reject_unknown_tradingd_variables(environ: Mapping[str, str]) -> None:
    unknown = sorted(
        name
        for name in environ
        if name.startswith("TRADINGD_") and name not in ENV_VARIABLES and name not in _OTHER_TRADINGD_VARIABLES
    )
    if unknown:
        from config.messages import nearest  # error paths only: difflib is not needed to start

        known = [*ENV_VARIABLES, *_OTHER_TRADINGD_VARIABLES]
        described = []
        for name in unknown:
            guess = nearest(name, known)
            described.append(f"{name} (did you mean {guess}?)" if guess else name)
        raise ConfigError(f"unknown environment variable(s): {', '.join(described)}")


def _field_annotation(field_path: tuple[str, ...]) -> Any:
    model: type[BaseModel] = Settings
    annotation: Any = None
    for index, key in enumerate(field_path):
        annotation = model.model_fields[key].annotation
        if index < len(field_path) - 1:
            model = annotation
    return annotation


def _convert(name: str, raw: str, annotation: Any) -> Any:
    members = _non_none_members(annotation)
    try:
        if any(get_origin(member) is tuple for member in members):
            items = [item.strip() for item in raw.split(",")]
            if "" in items:
                raise ConfigError(
                    f"invalid environment variable {name}: an empty item in {raw!r} (items are separated by commas)"
                )
            return list(TypeAdapter(annotation).validate_python(items, strict=False))
        if SecretStr in members:
            return raw
        value = TypeAdapter(annotation).validate_python(raw, strict=False)
        return str(value) if isinstance(value, Path) else value
    except ValidationError as error:
        from config.messages import describe_errors

        field_path = ENV_VARIABLES[name]
        document: dict[str, Any] = {}
        _set_path(document, field_path, raw)
        lines = describe_errors(error, document=document, prefix=field_path, env_names=ENV_NAMES, secrets=SECRET_FIELDS)
        raise ConfigError(
            f"invalid environment variable {name}:\n" + "\n".join(f"  {line}" for line in lines)
        ) from None


def _non_none_members(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(member for member in get_args(annotation) if member is not type(None))
    return (annotation,)


def _set_path(data: dict[str, Any], field_path: tuple[str, ...], value: Any) -> None:
    node = data
    for key in field_path[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key {key!r} must be a table, not {type(child).__name__}")
        node = child
    node[field_path[-1]] = value


def _describe(error: ValidationError, origin: str, data: Mapping[str, Any]) -> str:
    from config.messages import describe_errors

    lines = describe_errors(error, model=Settings, document=data, env_names=ENV_NAMES, secrets=SECRET_FIELDS)
    return "\n".join([f"invalid configuration ({origin}):", *(f"  {line}" for line in lines)])


def _refuse_readable_secrets(path: Path, file_data: Mapping[str, Any]) -> None:
    """A config file that holds secrets must not be readable by group or others."""
    secret_keys = [
        f"{section}.{key}"
        for section, key in sorted(SECRET_FIELDS)
        if isinstance(file_data.get(section), dict) and key in file_data[section]
    ]
    mode = stat.S_IMODE(path.stat().st_mode)
    if secret_keys and mode & 0o077:
        raise ConfigError(
            f"config file {path} holds secrets ({', '.join(secret_keys)}) but its mode is {mode:04o}; "
            "make it private (chmod 600) or pass the secrets through the environment"
        )
