"""BingX's response envelope, as the simulator writes it."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def ok(data: Any) -> web.Response:
    """`{"code":0,"msg":"","data":...}`; integers stay JSON integers (order ids exceed 2^53)."""
    return web.Response(
        text=json.dumps({"code": 0, "msg": "", "data": data}, separators=(",", ":")), content_type="application/json"
    )


def ok_without_data() -> web.Response:
    """`{"code":0,"msg":""}`: what the venue answers to a setting it changed and has nothing to report
    of (setting the margin type, API.md 6.9)."""
    return web.Response(text='{"code":0,"msg":""}', content_type="application/json")


def ok_encoded(data_json: bytes) -> web.Response:
    """`ok` for a `data` already encoded as JSON (the kline pages, built from cached rows)."""
    return web.Response(body=b'{"code":0,"msg":"","data":' + data_json + b"}", content_type="application/json")


def error(code: int, message: str, status: int = 200) -> web.Response:
    """A business error: HTTP 200 with a non-zero code, like the venue (unless `status` says otherwise)."""
    return web.Response(
        status=status,
        text=json.dumps({"code": code, "msg": message, "data": {}}, separators=(",", ":")),
        content_type="application/json",
    )
