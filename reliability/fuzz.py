"""Every input boundary fed `fuzz_inputs` inputs each, in process: valid samples mutated (bytes flipped,
inserted, deleted, cut, repeated, spliced), and random bytes. Each input must give a result or the
boundary's own refusal; anything else escaping is a crash, and one crash fails the scenario."""

from __future__ import annotations

import contextlib
import gzip
import json
import random
from collections.abc import Callable
from pathlib import Path

from config import ConfigError, load_settings
from daemon.control_protocol import ProtocolError, encode_response, error, parse_request
from domain.errors import VenueError
from exchange.bingx.wire import decode_frame, parse_kline_response
from exchange.bingx.ws import MarketDataStream
from exchange.sim.candle_file import CandleFileError, load_candle_file
from reliability.scenario import Context, Result

TOPIC = "BTC-USDT@kline_1m"
FRAME = json.dumps(
    {
        "code": 0,
        "dataType": TOPIC,
        "s": "BTC-USDT",
        "data": [{"c": "94296.2", "o": "94290.0", "h": "94300.1", "l": "94280.5", "v": "12.5", "T": 1746450120000}],
    }
).encode()
REST = json.dumps(
    {
        "code": 0,
        "msg": "",
        "data": [{"open": "1", "close": "1.5", "high": "2", "low": "0.5", "volume": "3", "time": 60000}],
    }
).encode()
REQUEST = b'{"cmd":"pause","token":"t0ken","pair":"BTC-USDT","reason":"operator_pause","id":7}'
CONFIG = (
    b'[market_data]\npairs = ["BTC-USDT", "ETH-USDT"]\nintervals = ["1m", "5m"]\n'
    b'[run]\ninterval = "1m"\n[risk]\nmax_order_notional = 1000\n'
)
CANDLES = (
    b"open_time_ms,open,high,low,close,volume\n"
    b"1700000040000,100.5,101,99.5,100.25,3.5\n1700000100000,100.25,102,100,101.5,4\n"
)


def mutate(seed: bytes, rng: random.Random) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(7)
        at = rng.randrange(len(data) + 1)
        if kind == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif kind == 1:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == 2:
            del data[at : at + rng.randint(1, 8)]
        elif kind == 3:
            data = data[:at]
        elif kind == 4:
            data[at:at] = data[at : at + rng.randint(1, 64)] * rng.randint(2, 50)
        elif kind == 5:
            data[at:at] = rng.choice([b"[" * 3000, b"1e400", b"\\ud800", b"\x00", b"-", b"9" * 400, b'"', b"{}"])
        else:
            data = bytearray(rng.randbytes(rng.randint(0, 64)))
    return bytes(data)


def _frame(data: bytes, _directory: Path) -> None:
    client = MarketDataStream("ws://127.0.0.1:9", [TOPIC])
    for frame in (data, gzip.compress(data)):
        try:
            text = decode_frame(frame)
        except VenueError:
            continue
        client._handle(text, {})


def _rest(data: bytes, _directory: Path) -> None:
    for status in (200, 429, 500):
        with contextlib.suppress(VenueError):
            parse_kline_response(status, data, "BTC-USDT", "1m")


def _request(data: bytes, _directory: Path) -> None:
    try:
        parse_request(data, "t0ken", frozenset({"pause", "status"}))
    except ProtocolError as refused:
        encode_response(error(refused.code, refused.message, refused.request_id))


Boundary = Callable[[bytes, Path], None]
"""Feeds one input to a boundary; the path is the scenario's own directory, where file inputs are written."""


def _file(loader: Callable[[Path], object], refusal: type[Exception], suffix: str) -> Boundary:
    def run(data: bytes, directory: Path) -> None:
        path = directory / f"input{suffix}"
        path.write_bytes(data)
        path.chmod(0o600)
        with contextlib.suppress(refusal):
            loader(path)

    return run


BOUNDARIES: dict[str, tuple[bytes, Boundary]] = {
    "websocket frames": (FRAME, _frame),
    "REST kline answers": (REST, _rest),
    "control requests": (REQUEST, _request),
    "config files": (CONFIG, _file(lambda path: load_settings(path, {}), ConfigError, ".toml")),
    "candle files": (CANDLES, _file(load_candle_file, CandleFileError, ".csv")),
}


def fuzz(context: Context, result: Result) -> None:
    rng = random.Random(context.plan.seed)
    directory = context.work / "fuzz"
    directory.mkdir(parents=True, exist_ok=True)
    for name, (seed, run) in BOUNDARIES.items():
        crashes: dict[str, int] = {}
        for index in range(context.plan.fuzz_inputs):
            data = mutate(seed, rng) if index % 10 else rng.randbytes(rng.randint(0, 200))
            try:
                run(data, directory)
            except Exception as escaped:  # the boundary let something through
                key = f"{type(escaped).__name__}: {str(escaped)[:80]}"
                crashes[key] = crashes.get(key, 0) + 1
        result.figures[name] = {"inputs": context.plan.fuzz_inputs, "crashes": sum(crashes.values())}
        result.failures.extend(f"{name}: {count} x {key}" for key, count in crashes.items())
