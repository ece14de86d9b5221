"""Candle files are a total boundary (issue 16): any file gives candles or a `CandleFileError` naming
the line, and what is accepted is what the simulator can serve as BingX does."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.sim.candle_file import HEADER, CandleFileError, FileCandle, load_candle_file

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
GOOD = "1700000040000,100.5,101,99.5,100.25,3.5\n"


def outcome(path: Path, data: bytes) -> list[FileCandle] | CandleFileError:
    path.write_bytes(data)
    try:
        return load_candle_file(path)
    except CandleFileError as refused:
        return refused


def check(result: list[FileCandle] | CandleFileError) -> None:
    if isinstance(result, CandleFileError):
        assert "line" in str(result) or "no candles" in str(result)
        return
    times = [row.open_time_ms for row in result]
    assert times == sorted(set(times))
    for row in result:
        assert all(math.isfinite(float(value)) for value in (row.open, row.high, row.low, row.close, row.volume))


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_bytes_give_candles_or_a_candle_file_error(tmp_path: Path, data: bytes) -> None:
    check(outcome(tmp_path / "c.csv", data))


fields = st.one_of(
    st.integers(min_value=-(10**22), max_value=10**22).map(str),
    st.floats().map(repr),
    st.sampled_from(["nan", "inf", "1_000", " 1", "1e999", "", "0x10", "\x00", "\uff11\uff12"]),
    st.text(max_size=6),
)


@FUZZ
@given(rows=st.lists(st.lists(fields, min_size=4, max_size=7), max_size=6), header=st.booleans())
def test_any_csv_of_any_fields_gives_candles_or_a_candle_file_error(
    tmp_path: Path, rows: list[list[str]], header: bool
) -> None:
    lines = ([",".join(HEADER)] if header else []) + [",".join(row) for row in rows]
    check(outcome(tmp_path / "c.csv", ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")))


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("1700000040000,nan,1,1,1,1", "not a number"),
        ("1700000040000,1e999,1,1,1,1", "not a finite number"),
        ("1_700_000_040_000,1,1,1,1,1", "not a number"),
        ("-60000,1,1,1,1,1", "not a number"),
        ("99999999999999999999,1,1,1,1,1", "is after"),
        ("1700000040000,1\x00,1,1,1,1", "line 3"),
    ],
)
def test_what_the_simulator_could_not_serve_is_refused_with_the_line(tmp_path: Path, line: str, why: str) -> None:
    result = outcome(tmp_path / "c.csv", (",".join(HEADER) + "\n" + GOOD + line + "\n").encode())
    assert isinstance(result, CandleFileError)
    assert why in str(result)


def test_invalid_utf8_names_its_line(tmp_path: Path) -> None:
    result = outcome(tmp_path / "c.csv", (",".join(HEADER) + "\n" + GOOD).encode() + b"\xff\xfe,1,1,1,1,1\n")
    assert isinstance(result, CandleFileError)
    assert "not UTF-8" in str(result)
