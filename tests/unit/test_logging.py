"""Logging: JSON shape, context binding, and that secrets never reach the output."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from observability import configure_logging, get_logger, log_context
from observability.redaction import REDACTED, Redactor

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
HMAC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


class TerminalBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("debug", "auto", secrets=[API_KEY, HMAC_SECRET], stream=buffer)
    yield buffer
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
    logging.captureWarnings(False)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_lines_when_not_a_terminal(output: io.StringIO) -> None:
    get_logger("tradingd.test").info("candle_stored", pair="BTC-USDT", rows=3)
    (event,) = lines(output)
    assert list(event)[:3] == ["timestamp", "level", "event"]
    assert event["event"] == "candle_stored"
    assert event["level"] == "info"
    assert event["rows"] == 3
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", event["timestamp"])


def test_console_output_on_a_terminal() -> None:
    buffer = TerminalBuffer()
    configure_logging("info", "auto", stream=buffer)
    try:
        get_logger().info("daemon_ready", pairs=2)
        text = buffer.getvalue()
        assert "daemon_ready" in text
        assert "pairs" in text
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()


def test_level_filter(output: io.StringIO) -> None:
    configure_logging("warning", "json", stream=output)
    log = get_logger()
    log.info("hidden")
    log.warning("shown")
    assert [event["event"] for event in lines(output)] == ["shown"]


def test_context_is_bound_through_contextvars_including_tasks(output: io.StringIO) -> None:
    log = get_logger()

    async def child() -> None:
        log.info("in_task")

    async def scenario() -> None:
        with log_context(pair="ETH-USDT", run_id="run-1", trace_id="trace-9", actor="feed"):
            log.info("in_block")
            await asyncio.create_task(child())
        log.info("after_block")

    asyncio.run(scenario())
    in_block, in_task, after = [event for event in lines(output) if event.get("logger") != "asyncio"]
    for event in (in_block, in_task):
        assert (event["pair"], event["run_id"], event["trace_id"], event["actor"]) == (
            "ETH-USDT",
            "run-1",
            "trace-9",
            "feed",
        )
    assert "pair" not in after
    assert "trace_id" not in after


def test_stdlib_loggers_share_the_format_and_context(output: io.StringIO) -> None:
    with log_context(pair="BTC-USDT"):
        logging.getLogger("asyncpg.pool").warning("connection %s lost", "#3")
    (event,) = lines(output)
    assert event["event"] == "connection #3 lost"
    assert event["logger"] == "asyncpg.pool"
    assert event["level"] == "warning"
    assert event["pair"] == "BTC-USDT"


def test_secrets_never_reach_the_output(output: io.StringIO) -> None:
    signature = hmac.new(HMAC_SECRET.encode(), b"symbol=BTC-USDT&timestamp=1", hashlib.sha256).hexdigest()
    log = get_logger()
    log.info("request_sent", api_key=API_KEY, headers={"X-BX-APIKEY": API_KEY}, note=f"signed with {HMAC_SECRET}")
    log.info("url", url=f"https://open-api.bingx.com/x?symbol=BTC-USDT&timestamp=1&signature={signature}")
    try:
        raise RuntimeError(f"exchange refused key {API_KEY} (secret {HMAC_SECRET})")
    except RuntimeError:
        log.exception("order_failed")
    try:
        raise ValueError(HMAC_SECRET)
    except ValueError as error:
        log.error("raw_exception_value", error=error, items=[HMAC_SECRET, (API_KEY,)])
    logging.getLogger("websockets").error("handshake with %s failed", API_KEY, exc_info=RuntimeError(HMAC_SECRET))
    text = output.getvalue()
    assert API_KEY not in text
    assert HMAC_SECRET not in text
    assert signature not in text
    assert text.count(REDACTED) >= 8
    assert "order_failed" in text
    assert "Traceback" in text


def test_secret_fragments_and_dsn_passwords_are_scrubbed_by_shape() -> None:
    redactor = Redactor()
    text = redactor.redact_text("connect postgresql://trader:s3cret-pw@db:5432/x?password=other failed")
    assert "s3cret-pw" not in text
    assert "other" not in text
    assert "postgresql://trader:[REDACTED]@db:5432/x" in text


def test_sensitive_keys_mask_every_string_they_hold() -> None:
    event = Redactor().redact_event(
        {"password": "pw", "nested": {"apiToken": "12345"}, "tokens": ["a1", {"x": "b2"}], "count": 3}
    )
    assert event == {
        "password": REDACTED,
        "nested": {"apiToken": REDACTED},
        "tokens": [REDACTED, {"x": REDACTED}],
        "count": 3,
    }


def test_booleans_numbers_and_none_under_a_secret_looking_key_stay_readable(output: io.StringIO) -> None:
    event = Redactor().redact_event(
        {"token_required": True, "api_key_set": False, "secret_count": 2, "token_ttl_sec": 1.5, "password": None}
    )
    assert event == {
        "token_required": True,
        "api_key_set": False,
        "secret_count": 2,
        "token_ttl_sec": 1.5,
        "password": None,
    }
    # As the control socket logs it: the flag shows, the token does not.
    get_logger().info("control_socket_listening", token_required=True, token=API_KEY)
    (line,) = lines(output)
    assert line["token_required"] is True
    assert line["token"] == REDACTED


class _Opaque:
    def __str__(self) -> str:
        return f"holder of {HMAC_SECRET[:8]}"


def test_an_object_under_a_secret_looking_key_is_masked() -> None:
    assert Redactor().redact_event({"credential": _Opaque()}) == {"credential": REDACTED}


def ray_record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


@pytest.mark.parametrize(
    ("name", "level", "message", "kept"),
    [
        ("ray._private.worker", logging.WARNING, "SIGTERM handler is not set because current thread is not the "
         "main thread.", False),
        ("ray._private.worker", logging.INFO, "Started a local Ray instance.", False),
        ("ray._common.deprecation", logging.WARNING, "`config.training(num_sgd_iter=..)` has been deprecated.",
         False),
        ("ray._private.worker", logging.WARNING, "Ray cannot reach the GCS.", True),
        ("ray.rllib.algorithms.algorithm", logging.ERROR, "Env runner failed.", True),
        ("ray._common.deprecation", logging.ERROR, "deprecated and removed", True),
        ("asyncpg.pool", logging.INFO, "connection lost", True),
        ("rayleigh", logging.INFO, "not ray's", True),
    ],
)  # fmt: skip
def test_library_noise_is_filtered_and_library_problems_are_not(
    name: str, level: int, message: str, kept: bool
) -> None:
    from observability.logs import LibraryNoise

    assert LibraryNoise().filter(ray_record(name, level, message)) is kept
