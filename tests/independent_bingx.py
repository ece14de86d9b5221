"""A BingX client written from ../shared/bingx/API.md alone (sections 1.2 to 1.4), sharing no code with
`exchange.bingx`: what a user's own bot, ccxt or BingX.Net would send, to check that the simulator serves
any faithful client and not only ours. Synchronous (urllib); each call returns the decoded envelope.

Three placements of the parameters, as real clients use them: all in the query string, sorted (ccxt);
a form body in the caller's order (the docs' examples); a JSON object body (BingX.Net)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, Literal

Placement = Literal["query", "form", "json"]


class IndependentBingX:
    def __init__(self, base_url: str, api_key: str, secret: str, *, timeout_sec: float = 30.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("an http(s) URL")  # so every urllib request below is http(s): S310
        self.base_url = base_url.rstrip("/")
        self.timeout_sec = timeout_sec
        self.api_key = api_key
        self.secret = secret

    def public(self, path: str, **params: object) -> dict[str, Any]:
        query = urllib.parse.urlencode({k: _text(v) for k, v in params.items()})
        return self._send(urllib.request.Request(f"{self.base_url}{path}?{query}"))  # noqa: S310

    def signed(self, method: str, path: str, placement: Placement = "query", **params: object) -> dict[str, Any]:
        values = {k: _text(v) for k, v in params.items()}
        values["timestamp"] = str(time.time_ns() // 1_000_000)
        headers = {"X-BX-APIKEY": self.api_key}
        if placement == "json":
            ordered = dict(sorted(values.items()))  # a JSON body is signed with its keys sorted
            ordered["signature"] = self._sign("&".join(f"{k}={v}" for k, v in ordered.items()))
            headers["Content-Type"] = "application/json"
            request = urllib.request.Request(  # noqa: S310
                f"{self.base_url}{path}", json.dumps(ordered).encode(), headers, method=method
            )
        elif placement == "form":
            raw = "&".join(f"{k}={v}" for k, v in values.items())  # signed in the order sent
            body = urllib.parse.urlencode(values) + f"&signature={self._sign(raw)}"
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            request = urllib.request.Request(f"{self.base_url}{path}", body.encode(), headers, method=method)  # noqa: S310
        else:
            ordered = dict(sorted(values.items()))
            raw = "&".join(f"{k}={v}" for k, v in ordered.items())
            query = "&".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in ordered.items())
            url = f"{self.base_url}{path}?{query}&signature={self._sign(raw)}"
            request = urllib.request.Request(url, b"" if method != "GET" else None, headers, method=method)  # noqa: S310
        return self._send(request)

    def _sign(self, message: str) -> str:
        return hmac.new(self.secret.encode(), message.encode(), hashlib.sha256).hexdigest()

    def _send(self, request: urllib.request.Request) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_sec) as answer:  # noqa: S310
                document: dict[str, Any] = json.loads(answer.read())
        except urllib.error.HTTPError as failed:
            return {"http_status": failed.code, "body": failed.read().decode(errors="replace")}
        except (OSError, http.client.HTTPException) as failed:  # no answer: timed out, reset, refused
            return {"transport_error": type(getattr(failed, "reason", failed)).__name__}
        return document


async def call_in_thread(
    client: IndependentBingX, method: str, path: str, placement: Placement = "query", **params: object
) -> dict[str, Any]:
    """A call from a test whose simulator runs in the test's own event loop: off the loop, in a thread."""
    if method == "PUBLIC":
        return await asyncio.to_thread(client.public, path, **params)
    return await asyncio.to_thread(client.signed, method, path, placement, **params)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def stream_events(ws: Any, count: int, wanted: Callable[[dict[str, Any]], bool] = lambda _: True) -> list[Any]:
    """The next `count` events of a user-data stream websocket (aiohttp) that `wanted` keeps, gunzipped
    and decoded, answering its pings, within a generous deadline."""
    found: list[Any] = []
    async with asyncio.timeout(60):
        while len(found) < count:
            message = await ws.receive()
            if not isinstance(message.data, bytes):
                raise AssertionError(f"the stream ended: {message.type}")
            text = gzip.decompress(message.data).decode()
            if text == "Ping":
                await ws.send_str("Pong")
                continue
            event = json.loads(text)
            if wanted(event):
                found.append(event)
    return found
