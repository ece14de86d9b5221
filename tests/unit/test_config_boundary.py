"""Config loading is a total boundary (issue 16, defect 5): any file and any environment give settings
or a `ConfigError` (exit 78 with a sentence), never another exception; each fault the issue found is
refused with one line naming the setting."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import ConfigError, load_settings
from config.loader import ENV_VARIABLES
from config.settings import Settings

SECTIONS = sorted(Settings.model_fields)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def write(tmp_path: Path, data: bytes | str) -> Path:
    path = tmp_path / "tradingd.toml"
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(0o600)
    return path


def outcome(path: Path | None, environ: dict[str, str]) -> Settings | ConfigError:
    """Settings, or the ConfigError refusing them (anything else escapes and fails the test)."""
    try:
        return load_settings(path, environ)
    except ConfigError as error:
        return error


def only_line(error: pytest.ExceptionInfo[ConfigError]) -> str:
    lines = [line.strip() for line in str(error.value).splitlines()]
    assert len(lines) <= 2, lines  # the one fault (under the "invalid configuration" heading, if any)
    return lines[-1]


@pytest.mark.parametrize(
    ("content", "environ", "line"),
    [
        (b'log = "\xff\xfe"\n', {}, "is not UTF-8 text: byte 8 cannot be read"),
        ("a = " + "[" * 50_000 + "]" * 50_000 + "\n", {}, "nests arrays or tables too deeply"),
        (
            "",
            {"TIMESCALE_URL": "mysql://user:hunter2@localhost/db"},
            "storage.timescale_url (TIMESCALE_URL) must be a postgresql:// URL, not mysql://",
        ),
        ('[run]\ninterval = "4h"\n', {}, "run.interval 4h is not collected: add it to market_data.intervals"),
        ("", {"TRADINGD_PAIRS": "BTC-USDT,,"}, "TRADINGD_PAIRS: an empty item in 'BTC-USDT,,'"),
        (
            '[storage]\ndata_dir = "/etc/passwd"\n',
            {},
            "storage.data_dir (TRADINGD_DATA_DIR): /etc/passwd is not a directory",
        ),
        (
            '[storage]\ndata_dir = "/etc/passwd/tradingd"\n',
            {},
            "storage.data_dir (TRADINGD_DATA_DIR): /etc/passwd/tradingd cannot be made: /etc/passwd is not a directory",
        ),
        (
            '[control]\nsocket_path = "/etc/passwd/ctl.sock"\n',
            {},
            "control.socket_path (TRADINGD_CONTROL_SOCKET): /etc/passwd is not a directory",
        ),
        ('[storage]\ndata_dir = "/tmp/a\\u0000b"\n', {}, "a path cannot hold a NUL character"),
        (
            '[replay]\ncandles = ["BTC-USDT.csv"]\n',
            {},
            'replay.candles = ["BTC-USDT.csv"]: expected PAIR:INTERVAL:FILE',
        ),
        ('[replay]\ncandles = ["BTC-USDT:2m:a.csv"]\n', {}, "unknown interval '2m'"),
    ],
)
def test_each_fault_found_is_refused_with_one_line(
    tmp_path: Path, content: bytes | str, environ: dict[str, str], line: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, content), environ)
    assert line in only_line(error)
    assert "hunter2" not in str(error.value)


def test_a_missing_data_directory_under_a_directory_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, f'[storage]\ndata_dir = "{tmp_path / "a" / "b"}"\n')
    assert load_settings(path, {}).storage.data_dir == tmp_path / "a" / "b"


@FUZZ
@given(content=st.binary(max_size=400))
def test_any_bytes_as_a_config_file_give_settings_or_a_config_error(tmp_path: Path, content: bytes) -> None:
    result = outcome(write(tmp_path, content), {})
    assert isinstance(result, Settings) or str(result).strip()


scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["1m", "5m", "BTC-USDT", "paper", "live", "replay", "/etc/passwd", "postgresql://x@y/z"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4), max_leaves=8)
keys = st.one_of(st.sampled_from(["pairs", "intervals", "interval", "data_dir", "mode", "level"]), st.text(max_size=8))


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(value) if isinstance(value, str) else str(value)


@FUZZ
@given(
    document=st.dictionaries(
        st.sampled_from([*SECTIONS, "unknown"]), st.dictionaries(keys, values, max_size=4), max_size=4
    )
)
def test_any_toml_document_gives_settings_or_a_config_error(tmp_path: Path, document: dict[str, Any]) -> None:
    text = "".join(
        f"[{section}]\n" + "".join(f"{json.dumps(key)} = {toml_value(value)}\n" for key, value in table.items())
        for section, table in document.items()
    )
    result = outcome(write(tmp_path, text), {})
    assert isinstance(result, Settings) or str(result).strip()


@FUZZ
@given(name=st.sampled_from(sorted(ENV_VARIABLES)), raw=st.text(max_size=40))
def test_any_value_of_any_variable_gives_settings_or_a_config_error(tmp_path: Path, name: str, raw: str) -> None:
    result = outcome(None, {name: raw, "TRADINGD_DATA_DIR": str(tmp_path / "data")})
    assert isinstance(result, Settings) or str(result).strip()


@pytest.mark.parametrize(
    ("name", "raw"), [("TRADINGD_CONTROL_SOCKET", "~0"), ("TRADINGD_DATA_DIR", "~no-such-user-here/x")]
)
def test_a_home_this_system_does_not_know_is_a_config_error(tmp_path: Path, name: str, raw: str) -> None:
    """Found by the property above in CI: `~0` raised RuntimeError from Path.expanduser."""
    found = outcome(None, {name: raw})
    assert isinstance(found, ConfigError)
    assert "home directory of user" in str(found)
