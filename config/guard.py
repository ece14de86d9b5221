"""The safety guard: refuse to start on a configuration that could trade wrongly or mix test data
into production state. Every fault is listed, each naming the setting to change."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from config.errors import UnsafeConfigError
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
