"""Settings with no behaviour yet (`online_learning.*`, `sources.*`, `trading.reconcile_interval_min`):
a value other than the default is refused when the configuration loads (so by every command, `tradingd
config check` included), in the TOML and in the environment, with one line naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_settings
from config.errors import UnavailableSettingError, UnsafeConfigError
from config.guard import NOT_AVAILABLE_YET
from config.loader import ENV_NAMES
from config.settings import Settings

ONLINE_LEARNING = [
    ("enabled", "true", "RL_ONLINE_LEARNING_ENABLED", "true"),
    ("auto_roll_forward", "true", "RL_ONLINE_LEARNING_AUTO_ROLL_FORWARD", "1"),
    ("pairs", '["BTC-USDT"]', "RL_ONLINE_LEARNING_PAIRS", "BTC-USDT"),
    ("interval", '"5m"', "RL_ONLINE_LEARNING_INTERVAL", "5m"),
    ("min_win_rate_delta", "0.05", "RL_ONLINE_LEARNING_MIN_WIN_RATE_DELTA", "0.05"),
    ("min_net_pnl_delta", "10.0", "RL_ONLINE_LEARNING_MIN_NET_PNL_DELTA", "10"),
    ("max_drawdown_delta", "0.1", "RL_ONLINE_LEARNING_MAX_DRAWDOWN_DELTA", "0.1"),
    ("min_trade_count_delta", "3", "RL_ONLINE_LEARNING_MIN_TRADE_COUNT_DELTA", "3"),
]
SOURCES = [
    ("tradingview_use_html", "true", "TRADINGVIEW_USE_HTML", "true"),
    ("tradingview_html_path", '"/tmp/ideas.html"', "TRADINGVIEW_HTML_PATH", "/tmp/ideas.html"),
    ("telegram_messages_path", '"/tmp/messages.json"', "TELEGRAM_MESSAGES_PATH", "/tmp/messages.json"),
]

CASES = [
    *(("online_learning", *case) for case in ONLINE_LEARNING),
    *(("sources", *case) for case in SOURCES),
]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tradingd.toml"
    path.write_text(text)
    return path


def refusal(error: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    assert isinstance(error.value, UnavailableSettingError)
    return error.value.lines


def test_the_cases_cover_every_setting_with_no_behaviour() -> None:
    listed = {f"{section}.{key}" for section, key, *_ in CASES}
    expected = set()
    for name in NOT_AVAILABLE_YET:
        section, _, key = name.partition(".")
        fields = [key] if key else list(type(getattr(Settings(), section)).model_fields)
        expected |= {f"{section}.{field}" for field in fields}
    assert listed == expected
    assert len(expected) == 11  # eight online_learning.*, three sources.*


@pytest.mark.parametrize(("section", "key", "toml", "variable", "raw"), CASES)
def test_a_non_default_value_in_the_file_is_refused_naming_it(
    tmp_path: Path, section: str, key: str, toml: str, variable: str, raw: str
) -> None:
    path = write(tmp_path, f"[{section}]\n{key} = {toml}\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, {})
    [line] = refusal(error)
    assert line.startswith(f"{section}.{key} = {toml} (in {path}) is not available yet (")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("section", "key", "toml", "variable", "raw"), CASES)
def test_a_non_default_value_in_the_environment_is_refused_naming_the_variable(
    section: str, key: str, toml: str, variable: str, raw: str
) -> None:
    assert ENV_NAMES[(section, key)] == variable
    with pytest.raises(ConfigError) as error:
        load_settings(None, {variable: raw})
    [line] = refusal(error)
    assert line.startswith(f"{section}.{key} = {toml} (from {variable}) is not available yet (")


def test_the_message_says_what_brings_it_and_how_to_start_now(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(None, {"RL_ONLINE_LEARNING_ENABLED": "true"})
    assert str(error.value) == (
        "online_learning.enabled = true (from RL_ONLINE_LEARNING_ENABLED) is not available yet (online learning "
        "comes in a later issue): remove it or set it to its default, false"
    )
    assert load_settings(None, {"TRADE_RECONCILE_INTERVAL_MIN": "3"}).trading.reconcile_interval_min == 3  # it works
    with pytest.raises(ConfigError) as error:
        load_settings(None, {"TELEGRAM_MESSAGES_PATH": "/tmp/m.json"})
    assert str(error.value).endswith("come in a later issue): remove it")  # no default to set it to


def test_the_defaults_written_out_are_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[trading]\nreconcile_interval_min = 5\n"
        '[online_learning]\nenabled = false\npairs = []\ninterval = "1m"\nmin_win_rate_delta = 0.0\n'
        "[sources]\ntradingview_use_html = false\n",
    )
    settings = load_settings(path, {"RL_ONLINE_LEARNING_AUTO_ROLL_FORWARD": "false"})
    assert settings.online_learning.enabled is False
    assert settings.trading.reconcile_interval_min == 5


def test_every_refused_setting_is_listed_one_line_each(tmp_path: Path) -> None:
    path = write(tmp_path, '[online_learning]\nenabled = true\ninterval = "5m"\n')
    with pytest.raises(ConfigError) as error:
        load_settings(path, {"TRADINGVIEW_USE_HTML": "1"})
    lines = refusal(error)
    assert [line.split(" = ")[0] for line in lines] == [
        "online_learning.enabled",
        "online_learning.interval",
        "sources.tradingview_use_html",
    ]
    assert str(error.value).splitlines() == lines


def test_in_production_the_fixture_sources_are_refused_as_unsafe_first() -> None:
    with pytest.raises(UnsafeConfigError):
        load_settings(
            None, {"TRADINGD_ENV": "production", "DISABLE_TEST_DATA_IN_DB": "true", "TRADINGVIEW_USE_HTML": "1"}
        )
