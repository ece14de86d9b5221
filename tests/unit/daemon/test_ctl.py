"""`tradingd ctl`: the command line maps to the request the daemon expects, and answers read well."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from daemon.cli import build_parser
from daemon.cli_ctl import render, request_of
from daemon.control_commands import COMMANDS, _uuid
from daemon.control_protocol import RESERVED_KEYS, CommandError, parse_request

TRADE = "7f0c6a1e-3b2d-4c5e-9f80-1a2b3c4d5e6f"


def parse(*argv: str) -> tuple[str, dict[str, object]]:
    return request_of(build_parser().parse_args(["ctl", *argv]))


def wire(command: str, fields: dict[str, object]) -> dict[str, object]:
    """The request as the daemon reads it, from the line the client would send."""
    line = json.dumps({"cmd": command, **fields, "id": "c1"}).encode() + b"\n"
    return dict(parse_request(line, None, COMMANDS).args)


@pytest.mark.parametrize("command", ["close-trade", "cancel-trade"])
def test_a_trade_id_travels_under_trade_and_the_daemon_reads_it(command: str) -> None:
    name, fields = parse(command, TRADE)
    assert (name, fields) == (command, {"trade": TRADE})
    assert not RESERVED_KEYS & fields.keys()  # the client refuses reserved keys (`id` is the request id)
    assert _uuid(wire(name, fields)) == uuid.UUID(TRADE)


def test_a_malformed_or_missing_trade_id_is_refused_clearly() -> None:
    with pytest.raises(CommandError, match="'nope' is not a trade id") as refused:
        _uuid(wire(*parse("close-trade", "nope")))
    assert refused.value.code == "bad_args"
    with pytest.raises(CommandError, match="trade is required"):
        _uuid(wire("close-trade", {}))


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["pause", "BTC-USDT", "--reduce-only", "--reason", "x"],
        ["resume", "BTC-USDT"],
        ["risk"],
        ["runs", "start", "--policy", "hold", "--pairs", "BTC-USDT"],
        ["backfill", "BTC-USDT", "--interval", "1m"],
        ["reconcile"],
        ["close-trade", TRADE],
        ["cancel-trade", TRADE],
        ["retry-queue"],
        ["alerts", "--limit", "3"],
        ["shutdown"],
    ],
)
def test_no_command_line_sends_a_reserved_key(argv: list[str]) -> None:
    _, fields = parse(*argv)
    assert not RESERVED_KEYS & fields.keys()


def test_options_are_accepted_after_the_subcommand() -> None:
    parser = build_parser()
    after = parser.parse_args(["ctl", "status", "--json", "--timeout", "5", "--config", "replay.toml"])
    assert (after.json, after.timeout, after.config) == (True, 5.0, Path("replay.toml"))
    before = parser.parse_args(["--config", "a.toml", "ctl", "--json", "status"])
    assert (before.json, before.timeout, before.config) == (True, None, Path("a.toml"))  # None: the command's default
    plain = parser.parse_args(["ctl", "status"])
    assert (plain.json, plain.timeout, plain.config) == (False, None, None)
    assert parser.parse_args(["ctl", "close-trade", TRADE, "--config", "b.toml"]).config == Path("b.toml")
    # every command, not only ctl's
    assert parser.parse_args(["db", "status", "--config", "c.toml"]).config == Path("c.toml")
    assert parser.parse_args(["--config", "a.toml", "run", "--config", "d.toml"]).config == Path("d.toml")


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
    assert parse("close-trade", "7f0c") == ("close-trade", {"trade": "7f0c"})
    assert parse("alerts", "--limit", "5") == ("alerts", {"limit": 5})


STATUS = {
    "ok": True,
    "id": "c1",
    "daemon": {"pid": 42, "uptime_sec": 12.5, "stopping": False},
    "run": {
        "id": "r-1",
        "policy": "baseline:momentum",
        "status": "running",
        "started_at": "2026-12-01T09:10:11.5+00:00",
    },
    "account": {
        "trading_state": "ACTIVE",
        "gross_exposure": "1234.5678",
        "daily_pnl": "-1",
        "breaker_open": False,
        "initial_equity": "10000",
        "balance": "10010.004",
        "unrealised_pnl": "2.345",
        "equity": "10012.349",
    },
    "pairs": {
        "BTC-USDT": {
            "state": "running",
            "trading_state": "HALTED",
            "last_candle_open_ms": 1746447000000,
            "lag_sec": 0.4,
            "position": {"position": "0.05", "net_pnl": "-1.5"},
            "contract": {"tick": "0.1", "step": "0.0001"},
            "desired": {"trading_state": "HALTED", "reason": "operator_pause", "applied": True},
            "actors": {"feed": {"pid": 1, "alive": True}, "risk": {"pid": 2, "alive": False}},
        },
        "ETH-USDT": {
            "state": "FAULTED",
            "trading_state": "HALTED",
            "desired": {"trading_state": "REDUCING", "reason": "x", "applied": False},
            "actors": {},
        },
    },
    "open_trades": [
        {
            "id": TRADE,
            "pair": "BTC-USDT",
            "side": "long",
            "status": "open",
            "quantity": "0.05",
            "entry_price": "94321.05",
            "mark": "94368.0",
            "unrealised_pnl": "2.3475",
            "opened_at": "2025-05-05T12:05:00+00:00",
        }
    ],
}


def test_status_reads_as_tables_with_utc_times_units_money_and_open_trade_ids() -> None:
    text = render("status", STATUS)
    lines = text.splitlines()
    assert lines[0] == "run r-1  baseline:momentum  running  since 2026-12-01 09:10:11 UTC"
    assert lines[1] == "daemon pid 42, up 12 s"
    assert "equity 10012.35 USDT  balance 10010.00 USDT  unrealised PnL +2.35 USDT" in text
    assert "(started with 10000.00 USDT)" in text
    assert "daily PnL -1.00 USDT  gross exposure 1234.57 USDT  breaker closed" in text
    btc = next(line for line in lines if line.startswith("BTC-USDT"))
    assert " ".join(btc.split()) == (
        "BTC-USDT running HALTED HALTED (operator_pause) 2025-05-05 12:10 UTC 0.4 s 0.0500 BTC -1.50 USDT 1/2"
    )
    eth = next(line for line in lines if line.startswith("ETH-USDT")).split()
    assert eth[1] == "FAULTED"
    assert " ".join(eth[3:6]) == "REDUCING (x) (pending)"  # the desired state, kept until the pair is back
    assert "1746447000000" not in text
    trade = next(line for line in lines if line.startswith(TRADE))
    # price at the contract's tick (0.1), quantity at its step (0.0001), USDT to 2 decimals
    assert " ".join(trade.split()) == (
        f"{TRADE} BTC-USDT long open 0.0500 BTC 94321.1 94368.0 +2.35 USDT 2025-05-05 12:05 UTC"
    )
    assert "open trade (id for close-trade)" in text
    assert "entry (USDT)" in text
    assert "has not filled yet" not in text
    pending = {**STATUS["open_trades"][0], "entry_price": None, "unrealised_pnl": None}  # type: ignore[index]
    waiting = render("status", {**STATUS, "open_trades": [pending]})
    row = next(line for line in waiting.splitlines() if line.startswith(TRADE))
    assert " ".join(row.split()) == f"{TRADE} BTC-USDT long open 0.0500 BTC - 94368.0 - 2025-05-05 12:05 UTC"
    assert "(an entry of - is an opening order that has not filled yet)" in waiting


def test_status_says_when_no_trade_is_open() -> None:
    assert "open trades: none" in render("status", {**STATUS, "open_trades": []}).splitlines()


def test_trade_actions_read_as_sentences() -> None:
    closing = render("close-trade", {"ok": True, "trade": TRADE, "status": "closing", "order": "td-abc"})
    assert closing.splitlines()[0] == f"trade {TRADE}: closing with reduce-only market order td-abc"
    closed = render("close-trade", {"ok": True, "trade": TRADE, "status": "closed", "order": None})
    assert closed == f"trade {TRADE} is already closed: nothing to close"
    cancelled = render("cancel-trade", {"ok": True, "trade": TRADE, "cancelled": ["td-abc"]})
    assert cancelled == f"trade {TRADE}: cancelled 1 working order(s): td-abc"
    assert render("cancel-trade", {"ok": True, "trade": TRADE, "cancelled": []}).endswith("no working orders to cancel")


def test_other_answers_read_as_a_tree_with_units() -> None:
    tree = render("risk", {"ok": True, "account": {"breaker_open": True, "exposures": {}}, "pairs": {}})
    assert tree.splitlines() == ["account:", "  breaker_open: True", "  exposures: (none)", "pairs: (none)"]
    assert "ok" not in render("alerts", {"ok": True, "alerts": []})
    alerts = render("alerts", {"ok": True, "alerts": [{"kind": "a", "pair": None}, {"kind": "b", "pair": "X"}]})
    assert alerts.splitlines() == ["alerts:", "  kind: a", "  pair: -", "", "  kind: b", "  pair: X"]
    risk = render(
        "risk",
        {
            "ok": True,
            "account": {"daily_pnl": "3.14159", "exposures": {"BTC-USDT": "4716.0525"}, "trading_day": "2026-12-01"},
            "limits": {"max_order_notional": "6000", "max_orders_per_interval": 2},
        },
    )
    assert "  daily_pnl: +3.14 USDT" in risk.splitlines()
    assert "    BTC-USDT: 4716.05 USDT" in risk.splitlines()
    assert "  max_order_notional: 6000.00 USDT" in risk.splitlines()
    assert "  max_orders_per_interval: 2" in risk.splitlines()
    assert "  trading_day: 2026-12-01" in risk.splitlines()
    runs = render("runs", {"ok": True, "runs": [{"started_at": "2026-12-01T09:10:11.123+00:00", "latency_ms": 12}]})
    assert runs.splitlines() == ["runs:", "  started_at: 2026-12-01 09:10:11 UTC", "  latency_ms: 12"]
    assert "candle_open_ms: 2025-05-05 12:10 UTC" in render("x", {"ok": True, "candle_open_ms": 1746447000000})


def test_close_all_names_one_pair_or_all_and_waits_less_than_the_client() -> None:
    assert parse("close-all", "BTC-USDT") == ("close-all", {"pair": "BTC-USDT", "all": False, "wait_sec": 50.0})
    name, fields = parse("close-all", "--all", "--reason", "panic", "--timeout", "300")
    assert (name, fields) == ("close-all", {"all": True, "reason": "panic", "wait_sec": 290.0})
    assert not RESERVED_KEYS & fields.keys()
    for argv in (["close-all"], ["close-all", "BTC-USDT", "--all"]):
        with pytest.raises(SystemExit):
            parse(*argv)


def test_close_all_reads_well() -> None:
    answer = {
        "ok": True,
        "pairs": {"BTC-USDT": {"closed": "-0.0520", "flat": True}},
        "not_closed": {"ETH-USDT": "the pair is restarting: its position is not closed"},
        "flat": False,
        "reason": "panic",
    }
    assert render("close-all", answer).splitlines() == [
        "BTC-USDT: flat (closed -0.0520)",
        "ETH-USDT: the pair is restarting: its position is not closed",
        "the pairs stay HALTED (panic): `ctl resume` trades again",
    ]


def test_a_switch_waits_longer_than_other_commands_unless_told() -> None:
    """`runs live` / `runs paper` restart every pair: the client waits 300 s for the answer, others 60 s."""
    for argv, wanted in (
        (["runs", "live", "RUN"], 300.0),
        (["runs", "paper", "RUN"], 300.0),
        (["runs", "list"], 60.0),
        (["status"], 60.0),
        (["--timeout", "5", "runs", "live", "RUN"], 5.0),
        (["runs", "paper", "RUN", "--timeout", "7"], 7.0),
    ):
        args = build_parser().parse_args(["ctl", *argv])
        request_of(args)
        assert args.timeout == wanted, argv
