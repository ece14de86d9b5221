"""Issue 17: `tradingd sim` takes API keys (`--api-key KEY:SECRET`, repeatable, and BINGX_API_KEY with
BINGX_SECRET_KEY from the environment) and prints the keys it accepts, never their secrets, with its URLs;
a client written from the spec alone then trades on it. Without a key it says signed calls will fail."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from exchange.sim.candle_file import FileCandle, write_candle_file
from tests.e2e.conftest import TRADINGD
from tests.independent_bingx import IndependentBingX

T0 = 1_700_000_040_000
SECRET_ONE = "first-secret-marker-0001"
SECRET_ENV = "env-secret-marker-0002"


def candles(tmp_path: Path) -> Path:
    path = tmp_path / "btc.csv"
    rows = [FileCandle(T0 + i * 60_000, "100.0", "101.0", "99.0", "100.5", "4") for i in range(120)]
    write_candle_file(path, rows)
    return path


@contextmanager
def sim(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[tuple[dict[str, Any], Path]]:
    assert TRADINGD is not None
    command = [TRADINGD, "sim", "--candles", f"BTC-USDT:1m:{candles(tmp_path)}", "--start", str(T0 + 30 * 60_000)]
    errors = tmp_path / "sim.err"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_"))}
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            [*command, *args], stdout=subprocess.PIPE, stderr=stderr, text=True, env={**base, **(env or {})}
        )
    assert process.stdout is not None
    try:
        yield json.loads(process.stdout.readline()), errors
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        process.stdout.close()


def test_sim_accepts_the_keys_it_is_given_and_an_independent_client_trades_on_it(tmp_path: Path) -> None:
    env = {"BINGX_API_KEY": "env-key", "BINGX_SECRET_KEY": SECRET_ENV}
    with sim(tmp_path, "--api-key", f"first-key:{SECRET_ONE}", env=env) as (started, errors):
        assert started["api_keys"] == ["env-key", "first-key"]
        assert started["rest_url"].startswith("http://127.0.0.1:")
        first = IndependentBingX(started["rest_url"], "first-key", SECRET_ONE)
        assert (
            first.signed("POST", "/openApi/swap/v2/trade/leverage", symbol="BTC-USDT", side="BOTH", leverage=3)["code"]
            == 0
        )
        placed = first.signed(
            "POST", "/openApi/swap/v2/trade/order", "json", symbol="BTC-USDT", side="BUY", positionSide="BOTH",
            type="MARKET", quantity="0.2", clientOrderId="cli-walk-1",
        )  # fmt: skip
        assert placed["code"] == 0, placed
        order = placed["data"]["order"]
        assert (order["clientOrderID"], order["status"]) == ("cli-walk-1", "FILLED")
        by_env = IndependentBingX(started["rest_url"], "env-key", SECRET_ENV)
        queried = by_env.signed("GET", "/openApi/swap/v2/trade/order", symbol="BTC-USDT", clientOrderId="cli-walk-1")
        assert queried["data"]["order"]["orderId"] == order["orderId"], "one account, either key"
        (position,) = by_env.signed("GET", "/openApi/swap/v2/user/positions")["data"]
        assert (position["positionAmt"], position["leverage"]) == ("0.2000", 3)
        ticker = by_env.public("/openApi/swap/v2/quote/ticker", symbol="BTC-USDT")
        price = by_env.public("/openApi/swap/v2/quote/price", symbol="BTC-USDT")["data"]["price"]
        assert ticker["data"]["lastPrice"] == price
        assert (
            IndependentBingX(started["rest_url"], "first-key", "wrong").signed(
                "GET", "/openApi/swap/v2/user/positions"
            )["code"]
            == 100001
        )
    printed = json.dumps(started) + errors.read_text()
    assert SECRET_ONE not in printed, "the keys are printed, never their secrets"
    assert SECRET_ENV not in printed


def test_sim_without_a_key_says_signed_calls_fail_and_a_malformed_key_is_refused(tmp_path: Path) -> None:
    with sim(tmp_path) as (started, errors):
        assert started["api_keys"] == []
        answer = IndependentBingX(started["rest_url"], "any", "any").signed("GET", "/openApi/swap/v2/user/positions")
        assert answer["code"] == 100413
    assert "no API key (--api-key KEY:SECRET): signed calls will answer 100413" in errors.read_text()
    assert TRADINGD is not None
    for bad, env in (("--api-key=nocolon", {}), ("--api-key=k:s", {"BINGX_API_KEY": "only-the-key"})):
        done = subprocess.run(
            [TRADINGD, "sim", "--candles", f"BTC-USDT:1m:{candles(tmp_path)}", bad],
            capture_output=True, text=True, timeout=60,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("BINGX_")}, **env},
        )  # fmt: skip
        assert done.returncode == 2, (bad, done.stderr)  # a usage error
        assert done.stderr.startswith("tradingd: --api-key: "), done.stderr


def test_the_faults_route_arms_lost_answers_refusals_and_outside_positions(tmp_path: Path) -> None:
    with sim(tmp_path, "--faults", "--api-key", f"first-key:{SECRET_ONE}") as (started, _):
        client = IndependentBingX(started["rest_url"], "first-key", SECRET_ONE)

        def faults(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            request = urllib.request.Request(  # noqa: S310 (the simulator's own http URL)
                f"{started['rest_url']}/sim/faults", json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                    return answer.status, json.loads(answer.read())
            except urllib.error.HTTPError as refused:
                return refused.code, json.loads(refused.read())

        assert faults({"external_order": {"symbol": "BTC-USDT", "side": "BUY", "quantity": "0.4"}})[0] == 200
        (position,) = client.signed("GET", "/openApi/swap/v2/user/positions")["data"]
        assert (position["positionSide"], position["positionAmt"]) == ("LONG", "0.4000")
        assert faults({"reject_orders": [101204], "order_outcomes": ["504"]})[0] == 200
        order = {"symbol": "BTC-USDT", "side": "SELL", "positionSide": "BOTH", "type": "MARKET", "quantity": "0.1"}
        assert client.signed("POST", "/openApi/swap/v2/trade/order", **order, clientOrderId="f-1")["code"] == 101204
        assert client.signed("POST", "/openApi/swap/v2/trade/order", **order, clientOrderId="f-2")["http_status"] == 504
        booked = client.signed("GET", "/openApi/swap/v2/trade/order", symbol="BTC-USDT", clientOrderId="f-2")
        assert booked["data"]["order"]["status"] == "FILLED"
        status, refused = faults({"order_outcomes": ["lost"]})
        assert status == 400
        assert "not 504, timeout or reset" in refused["error"]
