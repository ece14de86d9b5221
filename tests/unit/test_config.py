"""Config: strict types, unknown keys, the environment layer, secrets, and the safety guard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from config import ConfigError, UnsafeConfigError, load_settings, redacted_settings
from config.guard import live_mode_faults

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "tradingd.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_defaults_load_without_file_or_environment() -> None:
    settings = load_settings(None, {})
    assert settings.env == "development"
    assert settings.exchange.mode == "paper"
    assert settings.market_data.pairs == ("BTC-USDT",)


def test_settings_are_frozen() -> None:
    settings = load_settings(None, {})
    with pytest.raises(ValueError, match="frozen"):
        settings.exchange.mode = "live"  # type: ignore[misc]


@pytest.mark.parametrize("name", ["default.toml", "production.toml"])
def test_example_configs_are_valid(name: str) -> None:
    settings = load_settings(REPO_CONFIG / name, {})
    assert settings.market_data.pairs


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, '[exchange]\nmode = "paper"\napikey = "x"\n')
    with pytest.raises(ConfigError, match=r"exchange\.apikey: unknown key"):
        load_settings(path, {})


def test_unknown_section_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[exchnage]\nmode = 1\n")
    with pytest.raises(ConfigError, match=r"exchnage: unknown key"):
        load_settings(path, {})


@pytest.mark.parametrize(
    ("toml", "location"),
    [
        ('[market_data]\ngap_monitor_interval_min = "5"\n', "market_data.gap_monitor_interval_min"),
        ("[market_data]\nbackfill_enabled = 1\n", "market_data.backfill_enabled"),
        ('[market_data]\npairs = "BTC-USDT"\n', "market_data.pairs"),
        ('[market_data]\npairs = ["btc-usdt"]\n', "market_data.pairs (TRADINGD_PAIRS)"),
        ('[market_data]\nintervals = ["2m"]\n', "market_data.intervals (BINGX_MARKET_DATA_INTERVALS)"),
        ('[exchange]\nmode = "real"\n', "exchange.mode"),
        ("[exchange]\nrecv_window_ms = 0\n", "exchange.recv_window_ms"),
        ('[features]\nood_zscore_limit = "high"\n', "features.ood_zscore_limit"),
    ],
)
def test_wrong_type_or_value_is_named(tmp_path: Path, toml: str, location: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(location)):
        load_settings(write(tmp_path, toml), {})


def test_float_field_accepts_toml_integer(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "[features]\nmax_freshness_sec = 90\n"), {})
    assert settings.features.max_freshness_sec == 90.0


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[exchange\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(path, {})


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.toml", {})


def test_config_file_from_environment_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[risk]\nmax_orders_per_interval = 9\n")
    assert load_settings(None, {"TRADINGD_CONFIG": str(path)}).risk.max_orders_per_interval == 9


def test_environment_overrides_file_with_seed_names(tmp_path: Path) -> None:
    path = write(tmp_path, "[market_data]\ngap_monitor_interval_min = 5\n")
    settings = load_settings(
        path,
        {
            "DATA_GAP_MONITOR_INTERVAL_MIN": "15",
            "BINGX_MARKET_DATA_INTERVALS": "1m, 5m,1h",
            "BINGX_MARKET_DATA_BACKFILL": "true",
            "TRADINGD_PAIRS": "BTC-USDT,ETH-USDT",
            "RL_FEATURE_OOD_ZSCORE_LIMIT": "4.5",
            "RL_ENFORCE_PROVENANCE": "1",
            "BINGX_MARKET_DATA_BACKFILL_MAX_BATCHES": "3",
            "TRADINGD_DATA_DIR": str(tmp_path / "data"),
        },
    )
    assert settings.market_data.gap_monitor_interval_min == 15
    assert settings.market_data.intervals == ("1m", "5m", "1h")
    assert settings.market_data.backfill_enabled is True
    assert settings.market_data.pairs == ("BTC-USDT", "ETH-USDT")
    assert settings.features.ood_zscore_limit == 4.5
    assert settings.trading.enforce_provenance is True
    assert settings.market_data.backfill_max_batches == 3
    assert settings.storage.resolved_data_dir() == tmp_path / "data"


def test_empty_environment_variable_counts_as_unset() -> None:
    assert load_settings(None, {"API_TOKEN": "", "DATA_GAP_MONITOR_INTERVAL_MIN": " "}).control.api_token is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATA_GAP_MONITOR_INTERVAL_MIN", "often"),
        ("BINGX_MARKET_DATA_BACKFILL", "perhaps"),
        ("BINGX_MARKET_DATA_INTERVALS", "1m,7m"),
        ("TRADINGD_ENV", "staging"),
    ],
)
def test_bad_environment_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"invalid environment variable {name}:\n.*\({name}\) = \"{value}\": "):
        load_settings(None, {name: value})


def test_unknown_tradingd_variable_is_refused() -> None:
    with pytest.raises(ConfigError, match="TRADINGD_DATADIR"):
        load_settings(None, {"TRADINGD_DATADIR": "/tmp/x"})


def test_secrets_are_redacted_in_repr_and_check_output() -> None:
    environ = {
        "BINGX_API_KEY": "key-123456789",
        "BINGX_SECRET_KEY": "secret-abcdefgh",
        "API_TOKEN": "token-zyxwvut",
        "TIMESCALE_URL": "postgresql://trader:pa55word@db.internal:5432/tradingd",
    }
    settings = load_settings(None, environ)
    shown = repr(settings) + str(settings) + json.dumps(redacted_settings(settings))
    for value in (*environ.values(), "pa55word"):
        if value.startswith("postgresql://"):
            continue
        assert value not in shown
    assert "pa55word" not in shown
    assert redacted_settings(settings)["storage"]["timescale_url"] == (
        "postgresql://trader:[REDACTED]@db.internal:5432/tradingd"
    )
    assert set(settings.secret_values()) >= {"key-123456789", "secret-abcdefgh", "token-zyxwvut", "pa55word"}


def test_percent_encoded_database_password_is_registered_in_both_forms() -> None:
    settings = load_settings(None, {"TIMESCALE_URL": "postgresql://u:p%40ss-w0rd@h/db"})
    assert {"p%40ss-w0rd", "p@ss-w0rd"} <= set(settings.secret_values())


def test_bad_secret_value_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(None, {"TIMESCALE_URL": "postgresql://u:hunter2@h/db", "DATA_GAP_MONITOR_INTERVAL_MIN": "x"})
    assert "hunter2" not in str(error.value)


def test_file_with_secrets_must_be_private(tmp_path: Path) -> None:
    path = write(tmp_path, '[control]\napi_token = "s3cr3t-token"\n', mode=0o644)
    with pytest.raises(ConfigError, match=r"holds secrets \(control\.api_token\) but its mode is 0644"):
        load_settings(path, {})
    path.chmod(0o600)
    assert load_settings(path, {}).control.api_token is not None


def test_live_mode_requires_both_exchange_secrets() -> None:
    with pytest.raises(UnsafeConfigError) as error:
        load_settings(None, {"TRADINGD_TRADING_MODE": "live", "BINGX_API_KEY": "key-123456789"})
    assert error.value.faults == ["exchange.mode = live needs BINGX_SECRET_KEY (exchange.secret_key)"]


def test_live_mode_refuses_non_live_market_data() -> None:
    environ = {
        "TRADINGD_TRADING_MODE": "live",
        "BINGX_API_KEY": "key-123456789",
        "BINGX_SECRET_KEY": "secret-abcdefgh",
        "TRADINGD_MARKET_DATA_SOURCE": "simulator",
    }
    with pytest.raises(UnsafeConfigError, match=r"cannot trade on market_data\.source = 'simulator'"):
        load_settings(None, environ)


def test_live_mode_with_secrets_starts() -> None:
    environ = {"TRADINGD_TRADING_MODE": "live", "BINGX_API_KEY": "key-1234", "BINGX_SECRET_KEY": "secret-1234"}
    assert load_settings(None, environ).exchange.mode == "live"


def test_live_mode_refuses_a_limit_set_without_a_stop_loss(tmp_path: Path) -> None:
    path = tmp_path / "tradingd.toml"
    path.write_text('[exchange]\nmode = "live"\n\n[risk]\nstop_loss_pct = 0.03\n')
    environ = {"BINGX_API_KEY": "key-1234", "BINGX_SECRET_KEY": "secret-1234"}
    settings = load_settings(path, environ)  # a stop-loss: accepted
    unprotected = settings.model_copy(update={"risk": settings.risk.model_copy(update={"stop_loss_pct": None})})
    assert live_mode_faults(unprotected) == [
        "exchange.mode = live needs risk.stop_loss_pct: every live position carries a protective stop"
    ]


PRODUCTION_OK = {"TRADINGD_ENV": "production", "DISABLE_TEST_DATA_IN_DB": "true"}


def test_production_with_safe_settings_starts() -> None:
    assert load_settings(None, PRODUCTION_OK).env == "production"


def test_production_requires_disable_test_data() -> None:
    with pytest.raises(UnsafeConfigError) as error:
        load_settings(None, {"TRADINGD_ENV": "production"})
    assert error.value.faults == [
        "TRADINGD_ENV=production requires DISABLE_TEST_DATA_IN_DB=true (storage.disable_test_data_in_db)"
    ]


@pytest.mark.parametrize(
    ("extra", "fault"),
    [
        ({"E2E_RUN": "false"}, "E2E_RUN (e2e_run) is a fixture/mock source"),
        ({"BINGX_MARKET_DATA_MOCK": "true"}, "BINGX_MARKET_DATA_MOCK (market_data.mock) is a fixture/mock source"),
        ({"TRADINGVIEW_USE_HTML": "1"}, "TRADINGVIEW_USE_HTML (sources.tradingview_use_html)"),
        ({"TRADINGVIEW_HTML_PATH": "/tmp/ideas.html"}, "TRADINGVIEW_HTML_PATH (sources.tradingview_html_path)"),
        ({"TELEGRAM_MESSAGES_PATH": "/tmp/m.json"}, "TELEGRAM_MESSAGES_PATH (sources.telegram_messages_path)"),
        ({"TRADINGD_REPLAY_FILE": "/tmp/c.csv"}, "TRADINGD_REPLAY_FILE (market_data.replay_file)"),
        ({"TRADINGD_MARKET_DATA_SOURCE": "simulator"}, "market_data.source = 'simulator'"),
        ({"BINGX_REST_URL": "http://127.0.0.1:8080"}, "exchange.rest_url (BINGX_REST_URL) = http://127.0.0.1:8080"),
        ({"BINGX_WS_URL": "ws://localhost:8081/swap-market"}, "exchange.ws_url (BINGX_WS_URL)"),
    ],
)
def test_production_refuses_each_test_source(extra: dict[str, str], fault: str) -> None:
    with pytest.raises(UnsafeConfigError) as error:
        load_settings(None, {**PRODUCTION_OK, **extra})
    assert len(error.value.faults) == 1
    assert fault in error.value.faults[0]


def test_production_refuses_fixture_set_in_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'env = "production"\n[storage]\ndisable_test_data_in_db = true\n[sources]\ntradingview_use_html = true\n',
    )
    with pytest.raises(UnsafeConfigError, match="TRADINGVIEW_USE_HTML"):
        load_settings(path, {})


def test_production_lists_every_fault_at_once() -> None:
    with pytest.raises(UnsafeConfigError) as error:
        load_settings(None, {"TRADINGD_ENV": "production", "E2E_RUN": "1", "BINGX_MARKET_DATA_MOCK": "true"})
    assert len(error.value.faults) == 3
