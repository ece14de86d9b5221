"""Async REST client for BingX USDT-M perpetual swaps.

Reads (GET) are retried on temporary failures and rate limits with exponential backoff and jitter; a
timestamp rejection (100421) re-syncs the clock offset first. Writes are never retried here: a write
that failed after it may have reached the venue raises `UnknownOutcomeError`, and the caller resolves
it (for orders: by client order id) before acting again.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import aiohttp
from yarl import URL

from domain.errors import (
    NotSentError,
    RateLimitedError,
    TemporaryVenueError,
    UnknownOutcomeError,
    VenueError,
    WireFormatError,
)
from domain.instruments import Contract
from domain.market import Interval
from exchange.bingx import signing
from exchange.bingx.wire import (
    TIMESTAMP_MISMATCH,
    KlineBatch,
    error_for_code,
    error_for_status,
    parse_contracts,
    parse_envelope,
    parse_funding_rates,
    parse_kline_response,
)

KLINES_MAX_LIMIT = 1440
FUNDING_MAX_LIMIT = 1000
LISTEN_KEY_PATH = "/openApi/user/auth/userDataStream"


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Credentials:
    api_key: str
    secret_key: str

    def __repr__(self) -> str:
        return "Credentials(api_key=[REDACTED], secret_key=[REDACTED])"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay_sec: float = 0.25
    max_delay_sec: float = 30.0

    def delay(self, attempt: int, at_least: float = 0.0) -> float:
        """Exponential backoff with full jitter, never below what the venue asked for."""
        ceiling = min(self.max_delay_sec, self.base_delay_sec * 2**attempt)
        return max(at_least, random.uniform(0, ceiling))  # noqa: S311 (jitter, not security)


SIGNED_PER_SEC = 5
"""The account's signed requests per second this side of BingX's per-account limits (API.md 3)."""


class TokenBucket:
    """At most `rate` requests per `per_sec`, smoothed; callers wait for a token."""

    def __init__(self, rate: int, per_sec: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._capacity = float(rate)
        self._tokens = float(rate)
        self._refill_per_sec = rate / per_sec
        self._monotonic = monotonic
        self._updated = monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        async with self._lock:
            while True:
                now = self._monotonic()
                self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._refill_per_sec)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await sleep((1 - self._tokens) / self._refill_per_sec)


def signed_bucket(share: float, monotonic: Callable[[], float] = time.monotonic) -> TokenBucket:
    """`share` of the account's `SIGNED_PER_SEC`, with a burst of its whole requests per second (at least 1)."""
    per_sec = SIGNED_PER_SEC * share
    burst = max(1, int(per_sec))
    return TokenBucket(rate=burst, per_sec=burst / per_sec, monotonic=monotonic)


class SlidingWindowLimiter:
    """At most `max_events` in any window of `window_sec` (a token bucket allows one more than its
    burst inside a sliding window; some venue rules are stated per sliding second)."""

    def __init__(self, max_events: int, window_sec: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._max = max_events
        self._window = window_sec
        self._monotonic = monotonic
        self._sent: deque[float] = deque()

    async def acquire(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        while True:
            now = self._monotonic()
            while self._sent and now - self._sent[0] >= self._window:
                self._sent.popleft()
            if len(self._sent) < self._max:
                self._sent.append(now)
                return
            await sleep(self._window - (now - self._sent[0]))


class BingXRest:
    """One venue endpoint (live BingX or the simulator), public and signed calls."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None = None,
        *,
        recv_window_ms: int = 5000,
        time_sync_every_sec: float = 300.0,
        timeout_sec: float = 10.0,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        signed_share: float = 1.0,
    ) -> None:
        """`signed_share`: this client's share of the account's signed budget (BingX limits most account and
        trade endpoints to 5 requests/s per account, API.md 3), for clients that sign for one account from
        several processes (a live daemon's pairs): 1/n each."""
        if not 0 < signed_share <= 1:
            raise ValueError("signed_share must be in (0, 1]")
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_sec)
        self._http: aiohttp.ClientSession | None = None  # opened on first use, inside the event loop
        self._credentials = credentials
        self._recv_window_ms = recv_window_ms
        self._retry = retry or RetryPolicy()
        self._clock = clock or SystemClock()
        self._sleep = sleep
        self._offset_ms = 0
        self._synced_at_ms: int | None = None
        self._time_sync_every_ms = int(time_sync_every_sec * 1000)
        # BingX shares one market-data bucket of 500 requests / 10 s per IP; stay well inside it.
        self._market_bucket = TokenBucket(rate=250, per_sec=10.0)
        self._trade_bucket = signed_bucket(signed_share)
        self.requests_sent = 0

    @property
    def base_url(self) -> str:
        return self._base_url

    def use_credentials(self, credentials: Credentials) -> None:
        """The account's keys rotated (`tradingd secrets rotate`): every later signed call signs with these."""
        self._credentials = credentials

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> BingXRest:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def clock_offset_ms(self) -> int:
        """Server time minus local time, as last measured."""
        return self._offset_ms

    # ---------------------------------------------------------------- market data (public)

    async def server_time_ms(self) -> int:
        data: Any = await self._get("/openApi/swap/v2/server/time", {})
        return _require_int(data, "serverTime")

    async def sync_time(self) -> int:
        """Measure the offset to server time (assumes a symmetric round trip) and keep it."""
        sent = self._clock.now_ms()
        server = await self.server_time_ms()
        received = self._clock.now_ms()
        self._offset_ms = server - (sent + received) // 2
        self._synced_at_ms = received
        return self._offset_ms

    async def contracts(self, symbol: str | None = None) -> list[Contract]:
        return parse_contracts(await self._get("/openApi/swap/v2/quote/contracts", _drop_none(symbol=symbol)))

    async def klines(
        self,
        symbol: str,
        interval: Interval,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> KlineBatch:
        """One page of candles, sorted ascending and de-duplicated (the venue documents neither)."""
        if not 1 <= limit <= KLINES_MAX_LIMIT:
            raise ValueError(f"limit must be 1..{KLINES_MAX_LIMIT}")
        params = _drop_none(symbol=symbol, interval=interval, startTime=start_ms, endTime=end_ms, limit=limit)

        def decode(status: int, body: bytes) -> KlineBatch:
            return parse_kline_response(status, body, symbol, interval)

        return await self._get("/openApi/swap/v3/quote/klines", params, decode=decode)

    async def funding_rates(self, symbol: str, start_ms: int, end_ms: int) -> list[tuple[int, Decimal]]:
        """Every (funding time, rate) of `symbol` with `start_ms <= time <= end_ms`, ascending, paged by
        `startTime` (API.md 4.3: at most 1000 a request)."""
        found: list[tuple[int, Decimal]] = []
        cursor = start_ms
        while cursor <= end_ms:
            params = {"symbol": symbol, "startTime": cursor, "endTime": end_ms, "limit": FUNDING_MAX_LIMIT}
            page = parse_funding_rates(await self._get("/openApi/swap/v2/quote/fundingRate", params), symbol)
            page = [(time_ms, rate) for time_ms, rate in page if cursor <= time_ms <= end_ms]
            found += page
            if len(page) < FUNDING_MAX_LIMIT:
                break
            cursor = page[-1][0] + 1
        return found

    async def price(self, symbol: str) -> Decimal:
        data: Any = await self._get("/openApi/swap/v2/quote/price", {"symbol": symbol})
        if not isinstance(data, Mapping) or "price" not in data:
            raise WireFormatError("price: expected an object with a price")
        return Decimal(str(data["price"]))

    # ---------------------------------------------------------------- user-data stream keys

    async def listen_key(self, method: str, listen_key: str | None = None) -> str | None:
        """Create (POST: the new key), extend (PUT) or delete (DELETE) a user-data stream key (API.md
        5.5). The create answer is a bare `{"listenKey": ...}`, not an envelope; extend and delete
        answer nothing that matters. A key the venue no longer knows raises `RejectedError`."""
        if (method == "POST") != (listen_key is None) or method not in ("POST", "PUT", "DELETE"):
            raise ValueError("POST creates a key; PUT and DELETE take one")
        params = {} if listen_key is None else {"listenKey": listen_key}
        return await self._send(method, LISTEN_KEY_PATH, params, signed=True, decode=_listen_key_answer)

    # ---------------------------------------------------------------- plumbing

    async def read(self, path: str, params: Mapping[str, object], *, signed: bool = False) -> Any:
        """A GET, retried on temporary failures and rate limits."""
        return await self._get(path, params, signed=signed)

    async def write(self, method: str, path: str, params: Mapping[str, object]) -> Any:
        """A signed state-changing call, sent exactly once: it is never retried here. A failure after
        the request may have reached the venue raises `UnknownOutcomeError`."""
        if method == "GET":
            raise ValueError("writes are POST, PUT or DELETE")
        return await self._send(method, path, params, signed=True)

    async def _get[T](
        self,
        path: str,
        params: Mapping[str, object],
        *,
        signed: bool = False,
        decode: Callable[[int, bytes], T] = parse_envelope,
    ) -> T:
        attempt = 0
        while True:
            try:
                return await self._send("GET", path, params, signed=signed, decode=decode)
            except RateLimitedError as error:
                if attempt + 1 >= self._retry.attempts:
                    raise
                await self._sleep(self._retry.delay(attempt, at_least=error.retry_after_sec))
            except TemporaryVenueError as error:
                if attempt + 1 >= self._retry.attempts:
                    raise
                if error.code == TIMESTAMP_MISMATCH:
                    await self.sync_time()
                await self._sleep(self._retry.delay(attempt))
            attempt += 1

    async def _send[T](
        self,
        method: str,
        path: str,
        params: Mapping[str, object],
        *,
        signed: bool,
        decode: Callable[[int, bytes], T] = parse_envelope,
    ) -> T:
        """One request. `decode` turns the status and body into the result or a `VenueError`."""
        text_params = {key: _wire_value(value) for key, value in params.items()}
        bucket = self._trade_bucket if signed else self._market_bucket
        await bucket.acquire(self._sleep)
        headers: dict[str, str] = {}
        if signed:
            if self._credentials is None:
                raise VenueError("this call needs API credentials (BINGX_API_KEY, BINGX_SECRET_KEY)")
            # Measure the offset before the first signed call and again every few minutes (or after the
            # local clock jumped either way), so a drifting clock is corrected before the venue refuses
            # a write with 100421: writes are never retried.
            synced_at = self._synced_at_ms
            if synced_at is None or abs(self._clock.now_ms() - synced_at) > self._time_sync_every_ms:
                await self.sync_time()
            text_params["timestamp"] = str(self._clock.now_ms() + self._offset_ms)
            text_params["recvWindow"] = str(self._recv_window_ms)
            query = signing.signed_query(text_params, self._credentials.secret_key)
            headers["X-BX-APIKEY"] = self._credentials.api_key
        else:
            query = signing.encoded_query(text_params)
        # The query goes out exactly as signed: `encoded=True` stops yarl from re-quoting it.
        url = URL(f"{self._base_url}{path}?{query}" if query else f"{self._base_url}{path}", encoded=True)
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        self.requests_sent += 1
        try:
            async with self._http.request(method, url, headers=headers) as response:
                body = await response.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
            # Nothing reached the venue: safe to treat as temporary for reads and writes alike.
            raise NotSentError(f"{method} {path}: {type(error).__name__}") from None
        except (aiohttp.ClientError, TimeoutError) as error:
            if method == "GET":
                raise TemporaryVenueError(f"{method} {path}: {type(error).__name__}") from None
            raise UnknownOutcomeError(f"{method} {path} may have reached the venue: {type(error).__name__}") from None
        await self._obey_rate_headers(response.headers)
        return decode(response.status, body)

    async def _obey_rate_headers(self, headers: Mapping[str, str]) -> None:
        remain = headers.get("X-RateLimit-Requests-Remain")
        expire = headers.get("X-RateLimit-Requests-Expire")
        if remain is None or expire is None or not remain.strip().isdigit() or int(remain) > 0:
            return
        try:
            expire_value = int(expire)
        except ValueError:
            return
        # The spec does not say whether Expire is an instant or a duration; an epoch-ms value is an instant.
        wait_ms = expire_value - (self._clock.now_ms() + self._offset_ms) if expire_value > 10**12 else expire_value
        if wait_ms > 0:
            await self._sleep(min(wait_ms / 1000, self._retry.max_delay_sec))


def _listen_key_answer(status: int, body: bytes) -> str | None:
    """A listenKey call's answer: the bare `{"listenKey": ...}` of a create, or an envelope (an error, or
    the nothing an extend or delete answers)."""
    text = body.decode("utf-8", errors="replace")
    try:
        document = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError):
        raise error_for_status(status, text) if status >= 300 else WireFormatError(f"not JSON: {text[:200]}") from None
    if isinstance(document, dict) and isinstance(document.get("listenKey"), str) and status == 200:
        return str(document["listenKey"])
    if isinstance(document, dict) and document.get("code") not in (None, 0):
        raise error_for_code(_code(document["code"]), str(document.get("msg") or ""), status)
    if status >= 300:
        raise error_for_status(status, text)
    return None


def _code(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise WireFormatError(f"error code {value!r} is not a number") from None


def _wire_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _drop_none(**params: object) -> dict[str, object]:
    return {key: value for key, value in params.items() if value is not None}


def _require_int(data: Any, key: str) -> int:
    if not isinstance(data, Mapping) or not isinstance(data.get(key), int):
        raise WireFormatError(f"expected an object with an integer {key}")
    return int(data[key])
