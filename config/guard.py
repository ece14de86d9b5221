"""The safety guard: refuse to start on a configuration that could trade wrongly or mix test data
into production state. Every fault is listed, each naming the setting to change."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from pydantic import BaseModel

from config.errors import UnavailableSettingError, UnsafeConfigError
from config.settings import Settings

FIXTURE_VARIABLES: Final[tuple[str, ...]] = (
    "E2E_RUN",
    "BINGX_MARKET_DATA_MOCK",
    "TRADINGVIEW_USE_HTML",
    "TRADINGVIEW_HTML_PATH",
    "TELEGRAM_MESSAGES_PATH",
)
"""The seeds' fixture/mock flags: in production their mere presence in the environment is refused."""


def check_safety(settings: Settings, environ: Mapping[str, str]) -> None:
    faults = live_mode_faults(settings)
    if settings.env == "production":
        faults += production_faults(settings, environ)
    if faults:
        raise UnsafeConfigError(faults)


NOT_AVAILABLE_YET: Final[Mapping[str, str]] = {
    "online_learning": "online learning comes in a later issue",
    "sources": "the TradingView and Telegram idea sources come in a later issue",
}
"""Settings (a whole section, or one key) that exist but have no behaviour yet, and what will bring it. A
value other than the default is refused: a setting that exists must work, so until then it is not
accepted. Remove an entry when its behaviour lands."""


def unavailable_settings(
    settings: Settings,
    env_names: Mapping[tuple[str, ...], str],
    from_env: frozenset[str] = frozenset(),
    config_file: Path | None = None,
) -> list[str]:
    """One line per setting of NOT_AVAILABLE_YET given a value other than its default, saying where the
    value came from: an environment variable of `from_env` (those that were set), else `config_file`."""
    lines = []
    for name, reason in NOT_AVAILABLE_YET.items():
        path = tuple(name.split("."))
        section: BaseModel = getattr(settings, path[0])
        keys = [path[1]] if len(path) > 1 else list(type(section).model_fields)
        for key in keys:
            field = type(section).model_fields[key]
            value = getattr(section, key)
            if value == field.default:
                continue
            dotted = f"{path[0]}.{key}"
            variable = env_names.get((path[0], key))
            where = f" (from {variable})" if variable in from_env else f" (in {config_file})" if config_file else ""
            undo = "remove it"
            if field.default is not None:
                undo += f" or set it to its default, {_shown(field.default)}"
            lines.append(f"{dotted} = {_shown(value)}{where} is not available yet ({reason}): {undo}")
    return lines


def check_available(
    settings: Settings,
    env_names: Mapping[tuple[str, ...], str],
    from_env: frozenset[str] = frozenset(),
    config_file: Path | None = None,
) -> None:
    lines = unavailable_settings(settings, env_names, from_env, config_file)
    if lines:
        raise UnavailableSettingError(lines)


def _shown(value: object) -> str:
    """A value as it would be written in TOML."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_shown(item) for item in value) + "]"
    if isinstance(value, str | Path):
        return f'"{value}"'
    return str(value)


def live_mode_faults(settings: Settings) -> list[str]:
    if settings.exchange.mode != "live":
        return []
    faults = []
    if settings.exchange.api_key is None:
        faults.append("exchange.mode = live needs BINGX_API_KEY (exchange.api_key)")
    if settings.exchange.secret_key is None:
        faults.append("exchange.mode = live needs BINGX_SECRET_KEY (exchange.secret_key)")
    if settings.market_data.source != "bingx":
        faults.append(
            f"exchange.mode = live cannot trade on market_data.source = {settings.market_data.source!r} "
            "(TRADINGD_MARKET_DATA_SOURCE); live orders need live BingX market data"
        )
    if settings.market_data.mock:
        faults.append("exchange.mode = live cannot run with BINGX_MARKET_DATA_MOCK (market_data.mock)")
    if settings.risk.stop_loss_pct is None:
        faults.append("exchange.mode = live needs risk.stop_loss_pct: every live position carries a protective stop")
    return faults


def production_faults(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    faults = []
    if not settings.storage.disable_test_data_in_db:
        faults.append("TRADINGD_ENV=production requires DISABLE_TEST_DATA_IN_DB=true (storage.disable_test_data_in_db)")
    fixture_flags = {
        "E2E_RUN": ("e2e_run", settings.e2e_run),
        "BINGX_MARKET_DATA_MOCK": ("market_data.mock", settings.market_data.mock),
        "TRADINGVIEW_USE_HTML": ("sources.tradingview_use_html", settings.sources.tradingview_use_html),
        "TRADINGVIEW_HTML_PATH": ("sources.tradingview_html_path", settings.sources.tradingview_html_path is not None),
        "TELEGRAM_MESSAGES_PATH": (
            "sources.telegram_messages_path",
            settings.sources.telegram_messages_path is not None,
        ),
        "TRADINGD_REPLAY_FILE": ("market_data.replay_file", settings.market_data.replay_file is not None),
    }
    for variable, (setting, enabled) in fixture_flags.items():
        if enabled or (variable in FIXTURE_VARIABLES and variable in environ):
            faults.append(f"{variable} ({setting}) is a fixture/mock source, refused in production")
    if settings.market_data.source != "bingx":
        faults.append(
            f"market_data.source = {settings.market_data.source!r} (TRADINGD_MARKET_DATA_SOURCE) "
            "is a test source; production needs 'bingx'"
        )
    for setting, url in (
        ("exchange.rest_url (BINGX_REST_URL)", settings.exchange.rest_url),
        ("exchange.ws_url (BINGX_WS_URL)", settings.exchange.ws_url),
    ):
        if is_loopback_url(url):
            faults.append(f"{setting} = {url} points at a local simulator, refused in production")
    return faults


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def test_data_source(settings: Settings) -> str | None:
    """Why market data written now would be test data (a simulator, replay, fixture or mock source),
    or None when it comes from BingX. With DISABLE_TEST_DATA_IN_DB such writes are refused."""
    market = settings.market_data
    if market.source != "bingx":
        return f"market_data.source = {market.source!r}"
    if market.mock:
        return "market_data.mock (BINGX_MARKET_DATA_MOCK) is on"
    if settings.e2e_run:
        return "E2E_RUN is on"
    for setting, url in (
        ("exchange.rest_url", settings.exchange.rest_url),
        ("exchange.ws_url", settings.exchange.ws_url),
    ):
        if is_loopback_url(url):
            return f"{setting} = {url} is a local simulator"
    return None
