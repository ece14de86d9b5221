"""`tradingd ctl`: the command line maps to the request the daemon expects, and answers read well."""

from __future__ import annotations

from daemon.cli import build_parser
from daemon.ctl import render, request_of


def parse(*argv: str) -> tuple[str, dict[str, object]]:
    return request_of(build_parser().parse_args(["ctl", *argv]))


def test_the_command_line_becomes_the_request() -> None:
    assert parse("status") == ("status", {})
    assert parse("pause", "BTC-USDT", "--reduce-only") == (
        "pause",
        {"pair": "BTC-USDT", "reduce_only": True},
    )
    assert parse("pause") == ("pause", {"reduce_only": False})
    assert parse("resume") == ("resume", {})
    assert parse("runs", "start", "--policy", "ema_cross", "--pairs", "BTC-USDT, ETH-USDT") == (
        "runs",
        {"action": "start", "policy": "ema_cross", "pairs": ["BTC-USDT", "ETH-USDT"]},
    )
    assert parse("runs") == ("runs", {"action": "list"})
    assert parse("backfill", "ETH-USDT", "--bars", "60") == ("backfill", {"pair": "ETH-USDT", "bars": 60})
    assert parse("close-trade", "7f0c") == ("close-trade", {"id": "7f0c"})
    assert parse("alerts", "--limit", "5") == ("alerts", {"limit": 5})


def test_status_reads_as_a_table_and_other_answers_as_a_tree() -> None:
    status = {
        "ok": True,
        "id": "c1",
        "daemon": {"pid": 42, "uptime_sec": 12.5, "stopping": False},
        "run": {"id": "r-1", "policy": "baseline:momentum", "status": "running"},
        "account": {"trading_state": "ACTIVE", "gross_exposure": "10", "daily_pnl": "-1", "breaker_open": False},
        "pairs": {
            "BTC-USDT": {
                "state": "running",
                "trading_state": "HALTED",
                "last_candle_open_ms": 1746447000000,
                "lag_sec": 0.4,
                "position": {"position": "0.05", "net_pnl": "-1.5"},
                "actors": {"feed": {"pid": 1, "alive": True}, "risk": {"pid": 2, "alive": False}},
            },
            "ETH-USDT": {"state": "FAULTED", "trading_state": "HALTED", "actors": {}},
        },
    }
    text = render("status", status)
    assert "run r-1  baseline:momentum  running" in text
    btc = next(line for line in text.splitlines() if line.startswith("BTC-USDT"))
    assert btc.split() == ["BTC-USDT", "running", "HALTED", "1746447000000", "0.4", "0.05", "-1.5", "1/2"]
    assert next(line for line in text.splitlines() if line.startswith("ETH-USDT")).split()[1] == "FAULTED"
    tree = render("risk", {"ok": True, "account": {"breaker_open": True, "exposures": {}}, "pairs": {}})
    assert tree.splitlines() == ["account:", "  breaker_open: True", "  exposures: (none)", "pairs: (none)"]
    assert "ok" not in render("alerts", {"ok": True, "alerts": []})
    alerts = render("alerts", {"ok": True, "alerts": [{"kind": "a", "pair": None}, {"kind": "b", "pair": "X"}]})
    assert alerts.splitlines() == ["alerts:", "  kind: a", "  pair: -", "", "  kind: b", "  pair: X"]
