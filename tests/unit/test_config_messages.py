"""Configuration errors read as sentences: the setting, its environment variable, the value given (never a
secret's) and what is allowed; no pydantic internals; the nearest key for a typo. Agent configurations
share the formatter."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_settings
from learning.agent_config import AgentConfigError, load_agent_config

PYDANTIC_NOISE = ("constrained-float", "literal[", "Input should", "function-after", "Extra inputs", "type=")


def error_of(tmp_path: Path, toml: str, environ: dict[str, str] | None = None) -> str:
    path = tmp_path / "tradingd.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ or {})
    message = str(raised.value)
    for noise in PYDANTIC_NOISE:
        assert noise not in message, message
    return message


def test_a_union_is_one_sentence_without_pydantic_tags(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[replay]\nspeed = "quick"\n')
    assert message.splitlines()[1:] == ['  replay.speed = "quick": must be a number or "fast"']


def test_a_bound_names_the_variable_the_value_and_the_limit(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[features]\nood_zscore_limit = -1\n[exchange]\nrecv_window_ms = 999999\n")
    assert "  features.ood_zscore_limit (RL_FEATURE_OOD_ZSCORE_LIMIT) = -1: must be greater than 0" in message
    assert "  exchange.recv_window_ms (BINGX_RECV_WINDOW_MS) = 999999: must be at most 60000" in message


def test_a_choice_lists_what_is_allowed(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[logging]\nlevel = "loud"\n')
    assert '  logging.level (TRADINGD_LOG_LEVEL) = "loud": must be one of "debug", "info", "warning", "error", ' in (
        message
    )


def test_a_list_item_is_named_once_with_the_pattern_in_words(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[market_data]\npairs = ["btc-usdt"]\n')
    assert message.splitlines()[1:] == [
        '  market_data.pairs (TRADINGD_PAIRS) = ["btc-usdt"]: item 1 ("btc-usdt") must be a BingX symbol: '
        "BASE-QUOTE in upper case, e.g. BTC-USDT"
    ]


def test_whole_numbers_and_booleans_are_named_plainly(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[storage]\npool_min_size = 1.5\n[market_data]\nbackfill_enabled = 1\n")
    assert "  storage.pool_min_size = 1.5: must be a whole number" in message
    assert "  market_data.backfill_enabled (BINGX_MARKET_DATA_BACKFILL) = 1: must be true or false" in message


def test_an_unknown_key_suggests_the_nearest(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[market_data]\nintervall = ["1m"]\n[exchnage]\nmode = "paper"\n')
    assert "  market_data.intervall: unknown key; did you mean market_data.intervals?" in message
    assert "  exchnage: unknown key; did you mean exchange?" in message


def test_an_unknown_key_far_from_any_lists_the_section(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[logging]\ncolour = true\n")
    assert "  logging.colour: unknown key; [logging] takes format, level" in message


def test_a_secret_value_is_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "secret.toml"
    path.write_text("[control]\napi_token = 1234567\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError) as raised:
        load_settings(path, {})
    message = str(raised.value)
    assert "  control.api_token (API_TOKEN) = [REDACTED]: must be a string (in quotes)" in message
    assert "1234567" not in message


def test_a_bad_environment_value_reads_like_a_file_error() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(None, {"TRADINGD_LOG_FORMAT": "xml", "TRADINGD_PAIRS": "BTC-USDT"})
    assert str(raised.value) == (
        "invalid environment variable TRADINGD_LOG_FORMAT:\n"
        '  logging.format (TRADINGD_LOG_FORMAT) = "xml": must be one of "auto", "json", "console"'
    )


def test_an_unknown_variable_suggests_the_nearest() -> None:
    with pytest.raises(ConfigError, match=r"TRADINGD_LOG_LEVLE \(did you mean TRADINGD_LOG_LEVEL\?\)"):
        load_settings(None, {"TRADINGD_LOG_LEVLE": "info"})


def test_agent_configuration_errors_read_like_daemon_configuration_errors(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('name = "a"\n[hyperparameters]\nlr = 2\nlamda = 0.9\n[environment]\nepisode_bars = "day"\n')
    with pytest.raises(AgentConfigError) as raised:
        load_agent_config(path)
    lines = str(raised.value).splitlines()
    assert lines[0] == f"invalid agent configuration ({path}):"
    assert set(lines[1:]) == {
        "  hyperparameters.lr = 2: must be less than 1",
        '  environment.episode_bars = "day": must be a whole number',
        "  hyperparameters.lamda: unknown key; did you mean hyperparameters.lambda?",
    }


def test_a_validators_message_that_names_its_settings_stands_alone(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[market_data]\nsource = "replay"\npairs = ["BTC-USDT", "BTC-USDT"]\n')
    assert message.splitlines()[1:] == ["  market_data.pairs lists a value twice: ['BTC-USDT', 'BTC-USDT']"]
    message = error_of(tmp_path, '[market_data]\nsource = "replay"\n')
    assert message.splitlines()[1:] == ["  market_data.source = replay needs replay.candles (PAIR:INTERVAL:FILE)"]
