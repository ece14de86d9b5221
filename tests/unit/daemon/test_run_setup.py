"""Start-up checks without the daemon: an active run is compared with the configuration (and refused,
saying how they differ and what to do), and an unreachable venue is reported at once, naming the host
and the offline route."""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from config import load_settings
from daemon import exit_codes
from daemon.run_setup import (
    ORIGIN_CONTROL,
    RunSetupError,
    check_reachable,
    check_resumable,
    live_venue_source,
    risk_limits,
    run_differences,
)
from storage.runs import Run


def a_run(**changes: object) -> Run:
    values: dict[str, object] = {
        "id": uuid.UUID(int=7),
        "agent_version_id": None,
        "baseline_policy": "momentum",
        "mode": "paper",
        "status": "running",
        "pairs": ("BTC-USDT",),
        "interval": "1m",
        "feature_set": "v2",
        "decision_threshold": 1.0,
        "risk_limit_set_id": None,
        "settings": {"origin": "config"},
        "started_at": datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        "stopped_at": None,
        "stop_reason": None,
    }
    values.update(changes)
    return Run(**values)  # type: ignore[arg-type]


def test_a_run_matching_the_configuration_resumes() -> None:
    settings = load_settings(None, {})
    assert run_differences(settings, a_run()) == []
    check_resumable(settings, a_run(), resume_as_is=False)


def test_a_run_that_differs_is_refused_with_each_difference_and_the_way_out() -> None:
    settings = load_settings(None, {})
    run = a_run(pairs=("FOO-USDT",), baseline_policy="ema_cross")
    with pytest.raises(RunSetupError) as refused:
        check_resumable(settings, run, resume_as_is=False, command="tradingd --config x.toml")
    message = str(refused.value)
    assert refused.value.exit_code == exit_codes.CONFIG
    assert "pairs: the run trades FOO-USDT; market_data.pairs is BTC-USDT" in message
    assert "policy: the run trades baseline:ema_cross; run.policy is baseline:momentum" in message
    assert f"`tradingd --config x.toml runs stop {run.id}`" in message
    assert "`tradingd --config x.toml run --resume-as-is`" in message


def test_interval_and_feature_set_differences_are_named() -> None:
    settings = load_settings(None, {})
    differences = run_differences(settings, a_run(interval="5m", feature_set="v1"))
    assert [d.split(":")[0] for d in differences] == ["interval", "feature set"]


def test_resume_as_is_and_operator_started_runs_resume_as_they_are() -> None:
    settings = load_settings(None, {})
    check_resumable(settings, a_run(pairs=("ETH-USDT",)), resume_as_is=True)
    check_resumable(settings, a_run(pairs=("ETH-USDT",), settings={"origin": ORIGIN_CONTROL}), resume_as_is=False)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends: nothing listens there


async def test_a_closed_port_fails_at_once_naming_the_host_and_the_offline_route() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(RunSetupError) as refused:
        await check_reachable(url)
    assert time.monotonic() - started < 5
    assert refused.value.exit_code == exit_codes.UNAVAILABLE
    message = str(refused.value)
    assert message.startswith(f"cannot reach the venue at {url} (")
    assert "refused" in message.lower()
    assert "tradingd --config config/replay.toml run" in message


async def test_an_unresolvable_host_fails_within_the_bound() -> None:
    started = time.monotonic()
    with pytest.raises(RunSetupError) as refused:
        await check_reachable("https://venue.tradingd-test.invalid", timeout_sec=3)
    assert time.monotonic() - started < 5
    assert "venue.tradingd-test.invalid" in str(refused.value)
    assert refused.value.exit_code == exit_codes.UNAVAILABLE


async def test_a_listening_venue_passes() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        await check_reachable(f"http://127.0.0.1:{server.getsockname()[1]}")


def test_a_live_run_reaches_the_venue_with_the_accounts_keys_and_the_guards_leverage() -> None:
    settings = load_settings(
        None,
        {
            "BINGX_API_KEY": "marker-key-0001", "BINGX_SECRET_KEY": "marker-secret-0001",
            "BINGX_MARGIN_TYPE": "CROSSED",
        },
    )  # fmt: skip
    live = live_venue_source(settings, replace(risk_limits(settings), max_leverage=Decimal("1.5")), 4)
    assert (live.credentials.api_key, live.credentials.secret_key) == ("marker-key-0001", "marker-secret-0001")
    assert (live.leverage, live.margin_type) == (2, "CROSSED")
    assert "marker" not in repr(live)
    assert live.signed_share == 0.25, "4 pairs sign for one account: a quarter of its budget each"
    assert live.protection.stop_loss_pct == risk_limits(settings).stop_loss_pct
    with pytest.raises(RunSetupError, match="BINGX_API_KEY"):
        live_venue_source(load_settings(None, {}), risk_limits(settings), 1)
    with pytest.raises(RunSetupError, match="stop_loss_pct"):
        live_venue_source(settings, replace(risk_limits(settings), stop_loss_pct=None), 1)
