"""The CLI's own behaviour: parsing, and failures that must not leak secrets."""

from __future__ import annotations

import argparse
import json
import logging

import pytest
import structlog

from config import Settings
from daemon import cli, exit_codes

SECRET = "sk-NeverShowThisKey-0123456789"


@pytest.fixture(autouse=True)
def clean_logging() -> object:
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
    logging.captureWarnings(False)


def test_an_unexpected_failure_is_logged_redacted_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BINGX_API_KEY", SECRET)
    monkeypatch.setenv("TRADINGD_LOG_FORMAT", "json")

    async def explode(_settings: Settings, _args: argparse.Namespace) -> int:
        raise RuntimeError(f"venue rejected key {SECRET}")

    monkeypatch.setattr(cli, "run_db_command", explode)
    assert cli.main(["db", "status"]) == exit_codes.FAILURE
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    event = json.loads(captured.err.strip().splitlines()[-1])
    assert event["event"] == "command_failed"
    assert "venue rejected key [REDACTED]" in event["exception"]


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["db", "explode"])
    assert exited.value.code == exit_codes.USAGE
    assert "invalid choice: 'explode'" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["version"]) == exit_codes.OK
    assert capsys.readouterr().out.startswith("tradingd 0.1.0")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strict"], "need --folds"),
        (["--purge-bars", "5"], "need --folds"),
        (["--folds", "0"], "folds must be at least 1"),
        (["--folds", "3", "--embargo-bars", "-1"], "must be >= 0"),
    ],
)
def test_fold_options_are_checked_before_anything_runs(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = "00000000-0000-0000-0000-000000000001"
    assert cli.main(["evaluate", "--policy", "hold", "--dataset", dataset, *extra]) == exit_codes.USAGE
    assert message in capsys.readouterr().err


def test_a_failure_in_a_quiet_command_is_still_logged_redacted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ctl` sets no logging up (it only prints); an unexpected failure still goes through the redactor."""
    monkeypatch.setenv("API_TOKEN", SECRET)
    monkeypatch.setenv("TRADINGD_LOG_FORMAT", "json")

    def explode(_settings: Settings, _args: argparse.Namespace) -> int:
        raise RuntimeError(f"socket said {SECRET}")

    monkeypatch.setattr(cli, "run_ctl", explode)
    assert cli.main(["ctl", "status"]) == exit_codes.FAILURE
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    event = json.loads(captured.err.strip().splitlines()[-1])
    assert event["event"] == "command_failed"
    assert "socket said [REDACTED]" in event["exception"]
