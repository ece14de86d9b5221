"""The simulator's network face: BingX's REST wire format on a loopback port (aiohttp).

Business errors come back with HTTP 200 and a non-zero `code`, exactly like the venue; HTTP errors
(429, 418, 5xx, 504) are injected by tests through `Faults`. Every request is recorded in
`request_log`, so tests can assert what a client asked for (for example, that a dataset build
fetched only the missing windows).
"""

from __future__ import annotations

import asyncio
import base64
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from aiohttp import web

from domain.fills import FillRules
from domain.funding import BASE_RATE, FUNDING_INTERVAL_MS, funding_payment
from domain.instruments import Contract
from domain.market import INTERVALS, parse_interval
from exchange.sim.account import AccountError, SimAccount
from exchange.sim.envelope import error, ok, ok_encoded
from exchange.sim.replay import KlineView, ReplayClock, ReplaySeries
from exchange.sim.stream import MarketLoop, MarketStream, Pace
from exchange.sim.trading import TradingRoutes
from exchange.sim.user_stream import UserStreams

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
KLINE_LIMIT_DEFAULT = 500
KLINE_LIMIT_MAX = 1440
FUNDING_LIMIT_DEFAULT = 100
FUNDING_LIMIT_MAX = 1000
REQUEST_LOG_SIZE = 100_000
FAULTS_PATH = "/sim/faults"
DAY_MS = 86_400_000


@dataclass
class Faults:
    """Switches a test flips to make the venue misbehave."""

    http_errors: deque[int] = field(default_factory=deque)
    """Statuses returned, one per request, before normal service resumes (e.g. [429, 429, 503])."""
    latency_sec: float = 0.0

    def burst(self, status: int, count: int) -> None:
        self.http_errors.extend([status] * count)


@dataclass(frozen=True)
class SimulatorOptions:
    kline_order: Literal["asc", "desc"] = "asc"
    """The venue does not document the order of kline pages; clients must cope with both."""
    kline_end_inclusive: bool = False
    limit_volume_share: str | None = "0.25"
    """A resting limit fills at most this share of each candle's volume (None: at once, whatever its size)."""
    funding_rate: str = str(BASE_RATE)
    """The rate `GET /openApi/swap/v2/quote/fundingRate` reports at every funding time (00:00, 08:00 and
    16:00 UTC) a pair's candles span, up to the replay clock: BingX's rate when the premium is nil."""


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    params: dict[str, str]
    status: int
    at_wall_ms: int


@dataclass(frozen=True)
class ContractSpec:
    price_precision: int = 1
    quantity_precision: int = 4
    min_quantity: str = "0.0001"
    min_notional: str = "2"
    maker_fee_rate: str = "0.0002"
    taker_fee_rate: str = "0.0005"
    max_leverage: int = 125

    def contract(self, symbol: str) -> Contract:
        """The contract as the simulated venue lists it for `symbol` (online, open to API orders)."""
        return Contract(
            symbol,
            self.price_precision,
            self.quantity_precision,
            Decimal(self.min_quantity),
            Decimal(self.min_notional),
            Decimal(self.maker_fee_rate),
            Decimal(self.taker_fee_rate),
            self.max_leverage,
            self.max_leverage,
            1,
            True,
        )

    def fill_rules(self) -> FillRules:
        """How the simulated venue fills this contract's orders (its default slippage included)."""
        return FillRules(
            Decimal(1).scaleb(-self.price_precision),
            Decimal(1).scaleb(-self.quantity_precision),
            Decimal(self.min_quantity),
            Decimal(self.min_notional),
            Decimal(self.maker_fee_rate),
            Decimal(self.taker_fee_rate),
        )


class BingXSimulator:
    """Serve replayed candle series the way BingX serves live ones."""

    def __init__(
        self,
        series: list[ReplaySeries],
        clock: ReplayClock,
        *,
        options: SimulatorOptions | None = None,
        contracts: Mapping[str, ContractSpec] | None = None,
        pace: Pace = "manual",
        ping_interval_sec: float = 5.0,
        pong_timeout_sec: float = 15.0,
        api_keys: Mapping[str, str] | None = None,
        balance: Decimal = Decimal(10_000),
    ) -> None:
        self.series = {(s.pair, s.interval): s for s in series}
        self.clock = clock
        self.stream = MarketStream(
            {(pair, str(interval)): s for (pair, interval), s in self.series.items()},
            clock,
            ping_interval_sec=ping_interval_sec,
            pong_timeout_sec=pong_timeout_sec,
        )
        end_ms = max((s.last_ms + s.step_ms for s in series), default=None)
        self.market = MarketLoop(self.stream, clock, pace, end_ms=end_ms, on_tick=self._settle_orders)
        self.options = options or SimulatorOptions()
        self.contracts = {pair: (contracts or {}).get(pair, ContractSpec()) for pair, _ in self.series}
        self.account = SimAccount(
            {pair: spec.fill_rules() for pair, spec in self.contracts.items()},
            balance=balance,
            max_leverage={pair: spec.max_leverage for pair, spec in self.contracts.items()},
            limit_volume_share=None
            if self.options.limit_volume_share is None
            else Decimal(self.options.limit_volume_share),
        )
        self.trading = TradingRoutes(self.account, api_keys or {}, self.last_price)
        self.user_streams = UserStreams(
            dict(api_keys or {}), self.account, self.last_price, muted=lambda: self.trading.faults.window.frozen
        )
        self.stream.user_streams = self.user_streams
        self.faults = Faults()
        # The most recent requests only: `tradingd sim` may run for days.
        self.request_log: deque[RequestRecord] = deque(maxlen=REQUEST_LOG_SIZE)
        self._runner: web.AppRunner | None = None
        self._funded_until: int | None = None
        """The clock at the last funding settlement (None: not started; a start charges from then on)."""
        self.funding_paid: list[tuple[str, int, Decimal]] = []
        """(symbol, funding time, payment) of every funding the account paid, oldest first."""
        self.rest_url = ""
        self.ws_url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, faults_route: bool = False) -> str:
        """Serve on loopback. `faults_route`: also `POST /sim/faults` (not a BingX path, and only when
        asked), through which a test in another process makes the venue misbehave (`_set_faults`)."""
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the simulator listens on loopback only")
        app = web.Application(middlewares=[self._faults_and_log])
        if faults_route:
            app.router.add_post(FAULTS_PATH, self._set_faults)
        app.router.add_get("/openApi/swap/v2/server/time", self._server_time)
        app.router.add_get("/openApi/swap/v2/quote/contracts", self._contracts)
        app.router.add_get("/openApi/swap/v3/quote/klines", self._klines)
        app.router.add_get("/openApi/swap/v2/quote/klines", self._klines)
        app.router.add_get("/openApi/swap/v2/quote/price", self._price)
        app.router.add_get("/openApi/swap/v1/ticker/price", self._price)
        app.router.add_get("/openApi/swap/v2/quote/ticker", self._ticker)
        app.router.add_get("/openApi/swap/v2/quote/fundingRate", self._funding_rates)
        app.router.add_get("/swap-market", self.stream.handle)
        self.trading.register(app)
        self.user_streams.register(app)
        # A request the faults hold (an order whose answer is never sent) must not hold the shutdown up.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
        self.rest_url = f"http://{host}:{bound[1]}"
        self.ws_url = f"ws://{host}:{bound[1]}/swap-market"
        self.market.start()
        return self.rest_url

    async def stop(self) -> None:
        await self.market.stop()
        await self.stream.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def last_price(self, symbol: str) -> Decimal | None:
        """The close of the symbol's current (forming) candle on its smallest interval."""
        view = self._current_view(symbol)
        return Decimal(view.close) if view is not None else None

    def _current_view(self, symbol: str) -> KlineView | None:
        candidates = [s for (pair, _), s in self.series.items() if pair == symbol]
        if not candidates:
            return None
        series = min(candidates, key=lambda s: s.step_ms)
        now = self.clock.now_ms()
        _, stop = series.visible_range(now)
        return series.view(stop - 1, now) if stop else None

    def _settle_orders(self) -> None:
        self._settle_funding()
        for symbol in self.contracts:
            view = self._current_view(symbol)
            if view is not None and self.account.open_orders(symbol):
                self.account.on_price(
                    symbol,
                    Decimal(view.low),
                    Decimal(view.high),
                    _wall_ms(),  # order times are the venue's wall clock, like every order's
                    (view.open_time_ms, Decimal(view.volume)),
                )

    def _settle_funding(self) -> None:
        """Every funding time the clock passed since the last tick: each open position pays `quantity x
        mark x rate` from the balance (a long pays a positive rate), the mark being the close of the
        candle that ends at the funding time (the daemon's rule, `domain.funding`), and the user streams
        hear an `ACCOUNT_UPDATE` with `m = FUNDING_FEE` (API.md 5.5)."""
        now = self.clock.now_ms()
        settled, self._funded_until = self._funded_until, now
        if settled is None or now <= settled:
            return
        rate = Decimal(self.options.funding_rate)
        first = settled // FUNDING_INTERVAL_MS * FUNDING_INTERVAL_MS + FUNDING_INTERVAL_MS
        for time_ms in range(first, now + 1, FUNDING_INTERVAL_MS):
            for symbol, position in sorted(self.account.positions.items()):
                mark = self._close_ending_at(symbol, time_ms)
                if position.quantity == 0 or mark is None:
                    continue
                payment = funding_payment(position.quantity, mark, float(rate))
                self.account.balance -= payment
                self.funding_paid.append((symbol, time_ms, payment))
                self.user_streams.funding_fee(symbol)

    def _close_ending_at(self, symbol: str, time_ms: int) -> Decimal | None:
        """The close of the symbol's candle (smallest interval) that ends at `time_ms`, if it has one."""
        candidates = [s for (pair, _), s in self.series.items() if pair == symbol]
        if not candidates:
            return None
        series = min(candidates, key=lambda s: s.step_ms)
        index = series.index_at_or_after(time_ms - series.step_ms)
        if index >= len(series.times) or series.times[index] != time_ms - series.step_ms:
            return None
        return Decimal(series.rows[index].close)

    def requests_to(self, path: str) -> list[RequestRecord]:
        return [record for record in self.request_log if record.path == path]

    # ---------------------------------------------------------------- middleware

    async def _set_faults(self, request: web.Request) -> web.Response:
        """`{"http_errors": [429, 503], "latency_sec": 0.5, "stall": true, "drop": true, "frames": ["text"],
        "gzip_frames": ["base64 of bytes sent as a binary frame"], "drop_user_streams": true,
        "expire_listen_keys": true, "order_log": true}`, every key optional: REST statuses answered one per
        request, a delay before each REST answer, the streams silent (or not), every stream connection closed,
        raw frames sent on every connection, the user-data streams closed (their keys still valid), every
        listenKey expired;
        `"order_outcomes": ["504", "timeout", "reset"]` (each next order booked, its answer lost that way),
        `"reject_orders": [101204]` (each next order refused with that code), `"external_order": {"symbol",
        "side", "quantity"}` (a market order placed on the account from outside), `"rest_lag_sec": 30`
        (order reads show each order as it was that long ago; the user stream is not late),
        `"revoke_api_keys": ["KEY"]` (the keys deleted on the account: every later call with one is 100413),
        `"refuse_cancels": [109201]` (each next cancel refused with that code, the order left open),
        `"crash_window": "before_answer"` (the venue frozen at that instant: `exchange.sim.crash_window`)
        and `"release": true` (thawed, what it held never processed).
        Answers what is pending (and with `order_log`, `orders_posted`: each client order id's submissions)
        and the replay clock (`{}` reads it without a fault, where the REST clock
        would meet the burst)."""
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise TypeError("the body must be a JSON object")
            for status in body.get("http_errors", []):
                self.faults.http_errors.append(int(status))
            if "latency_sec" in body:
                self.faults.latency_sec = float(body["latency_sec"])
            if "stall" in body:
                self.stream.faults.stalled = bool(body["stall"])
            if body.get("drop"):
                await self.stream.drop_all()
            if body.get("drop_user_streams"):
                await self.stream.drop_user_streams()
            if body.get("expire_listen_keys"):
                self.user_streams.expire_all()
            for outcome in body.get("order_outcomes", []):
                if outcome not in ("504", "timeout", "reset"):
                    raise ValueError(f"order_outcomes: {outcome!r} is not 504, timeout or reset")
                self.trading.faults.next_order_outcomes.append(outcome)
            if "rest_lag_sec" in body:
                self.trading.faults.rest_lag_ms = int(float(body["rest_lag_sec"]) * 1000)
            for key in body.get("revoke_api_keys", []):
                self.trading.api_keys.pop(str(key), None)
                self.user_streams.api_keys.pop(str(key), None)
            for code in body.get("refuse_cancels", []):
                self.trading.faults.refuse_next_cancels.append(int(code))
            for code in body.get("reject_orders", []):
                self.trading.faults.reject_next_orders.append(int(code))
            if body.get("release"):
                self.trading.faults.window.release()
            if "crash_window" in body:
                self.trading.faults.window.arm(str(body["crash_window"]))
            external = body.get("external_order")
            if external is not None:
                side = str(external["side"]).upper()
                if side not in ("BUY", "SELL"):
                    raise ValueError("external_order.side must be BUY or SELL")
                self.trading.external_order(str(external["symbol"]), side, Decimal(str(external["quantity"])))  # type: ignore[arg-type]
            for text in body.get("frames", []):
                await self.stream.inject(str(text))
            for encoded in body.get("gzip_frames", []):
                await self.stream.inject(base64.b64decode(str(encoded)))
        except (ValueError, TypeError, KeyError, ArithmeticError, AccountError) as problem:
            return web.json_response({"ok": False, "error": str(problem)}, status=400)
        return web.json_response(
            {
                "ok": True,
                "http_errors": len(self.faults.http_errors),
                "stalled": self.stream.faults.stalled,
                "clock_ms": self.clock.now_ms(),
                "order_outcomes": len(self.trading.faults.next_order_outcomes),
                "crash_window": self.trading.faults.window.status(),
                **({"orders_posted": dict(self.trading.orders_posted)} if body.get("order_log") else {}),
            }
        )

    @web.middleware
    async def _faults_and_log(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in ("/swap-market", FAULTS_PATH):
            return await handler(request)
        if self.trading.faults.window.frozen:  # a crash window caught: nothing is processed until released
            return await self.trading.faults.window.hold()
        if self.faults.latency_sec:
            await asyncio.sleep(self.faults.latency_sec)
        if self.faults.http_errors:
            status = self.faults.http_errors.popleft()
            response: web.StreamResponse = web.Response(status=status, text=_status_body(status))
        else:
            try:
                response = await handler(request)
            except web.HTTPNotFound:
                response = error(100400, "this api is not exist", status=404)
        self.request_log.append(
            RequestRecord(request.method, request.path, dict(request.query), response.status, _wall_ms())
        )
        return response

    # ---------------------------------------------------------------- routes

    async def _server_time(self, _request: web.Request) -> web.Response:
        # Server time is wall time (clients sign with it); market data follows the replay clock.
        return ok({"serverTime": _wall_ms()})

    async def _contracts(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol")
        pairs = [symbol] if symbol else sorted(self.contracts)
        if symbol and symbol not in self.contracts:
            return error(109425, f"symbol {symbol} does not exist")
        return ok([_contract_json(pair, self.contracts[pair]) for pair in pairs])

    async def _klines(self, request: web.Request) -> web.Response:
        query = request.query
        symbol, interval = query.get("symbol"), query.get("interval")
        if not symbol or not interval:
            return error(109400, "symbol and interval are required")
        if interval not in INTERVALS:
            return error(109400, f"interval {interval} is invalid")
        series = self.series.get((symbol, parse_interval(interval)))
        if series is None:
            if symbol not in self.contracts:
                return error(109425, f"symbol {symbol} does not exist")
            return ok([])
        try:
            limit = int(query.get("limit", KLINE_LIMIT_DEFAULT))
            start = int(query["startTime"]) if "startTime" in query else None
            end = int(query["endTime"]) if "endTime" in query else None
        except ValueError:
            return error(109400, "limit, startTime and endTime must be integers")
        if not 1 <= limit <= KLINE_LIMIT_MAX:
            return error(109400, f"limit must be between 1 and {KLINE_LIMIT_MAX}")
        now = self.clock.now_ms()
        rows = [series.kline_json(index, now) for index in self._kline_indexes(series, now, start, end, limit)]
        if self.options.kline_order == "desc":
            rows.reverse()
        return ok_encoded(b"[" + b",".join(rows) + b"]")

    async def _funding_rates(self, request: web.Request) -> web.Response:
        """The funding history (API.md 4.3): `{symbol, fundingRate, fundingTime}` for each funding time
        from the pair's first candle up to the replay clock, with `startTime <= fundingTime <= endTime`,
        ascending; the earliest `limit` from `startTime`, else the latest `limit`."""
        query = request.query
        symbol = query.get("symbol", "")
        candidates = [s for (pair, _), s in self.series.items() if pair == symbol]
        if symbol not in self.contracts:
            return error(109425, f"symbol {symbol} does not exist")
        try:
            limit = int(query.get("limit", FUNDING_LIMIT_DEFAULT))
            start = int(query["startTime"]) if "startTime" in query else None
            end = int(query["endTime"]) if "endTime" in query else None
        except ValueError:
            return error(109400, "limit, startTime and endTime must be integers")
        if not 1 <= limit <= FUNDING_LIMIT_MAX:
            return error(109400, f"limit must be between 1 and {FUNDING_LIMIT_MAX}")
        if not candidates:
            return ok([])
        first = min(series.first_ms for series in candidates)
        now = self.clock.now_ms()
        low = max(first, start) if start is not None else first
        high = min(now, end) if end is not None else now
        step = FUNDING_INTERVAL_MS
        times = list(range(-(-low // step) * step, high + 1, step)) if high >= low else []
        times = times[:limit] if start is not None else times[-limit:]
        return ok([{"symbol": symbol, "fundingRate": self.options.funding_rate, "fundingTime": t} for t in times])

    async def _price(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        price = self.last_price(symbol)
        if price is None:
            return error(109425, f"symbol {symbol} does not exist")
        return ok({"symbol": symbol, "price": str(price), "time": self.clock.now_ms()})

    async def _ticker(self, request: web.Request) -> web.Response:
        """The 24 h ticker (API.md 4.3): one object for `symbol`, a list of every symbol without it."""
        symbol = request.query.get("symbol")
        if symbol:
            ticker = self._ticker_of(symbol)
            return ok(ticker) if ticker is not None else error(109425, f"symbol {symbol} does not exist")
        return ok([t for t in (self._ticker_of(pair) for pair in sorted(self.contracts)) if t is not None])

    def _ticker_of(self, symbol: str) -> dict[str, Any] | None:
        """Over the last 24 h of the symbol's smallest interval, by the replay clock; the quote volume
        counts each candle's volume at its close. The simulator has no order book: the bid is the last
        price and the ask one tick above it, each with the last candle's volume as its size."""
        candidates = [s for (pair, _), s in self.series.items() if pair == symbol]
        if not candidates or symbol not in self.contracts:
            return None
        series = min(candidates, key=lambda s: s.step_ms)
        now = self.clock.now_ms()
        _, stop = series.visible_range(now)
        first = series.index_at_or_after(now - DAY_MS + 1)
        views = [v for v in (series.view(i, now) for i in range(first, stop)) if v is not None]
        if not views:
            return None
        tick = Decimal(1).scaleb(-self.contracts[symbol].price_precision)
        opened, last = Decimal(views[0].open), Decimal(views[-1].close)
        volume = sum((Decimal(v.volume) for v in views), Decimal(0))
        quote = sum((Decimal(v.volume) * Decimal(v.close) for v in views), Decimal(0))
        change = last - opened
        percent = (change / opened * 100).quantize(Decimal("0.01")) if opened else Decimal(0)
        return {
            "symbol": symbol,
            "priceChange": _decimal_text(change),
            "priceChangePercent": _decimal_text(percent),
            "lastPrice": views[-1].close,
            "lastQty": views[-1].volume,
            "highPrice": _decimal_text(max(Decimal(v.high) for v in views)),
            "lowPrice": _decimal_text(min(Decimal(v.low) for v in views)),
            "volume": _decimal_text(volume),
            "quoteVolume": _decimal_text(quote.quantize(Decimal("0.0001"))),
            "openPrice": views[0].open,
            "openTime": views[0].open_time_ms,
            "closeTime": now,
            "bidPrice": _decimal_text(last),
            "bidQty": views[-1].volume,
            "askPrice": _decimal_text(last + tick),
            "askQty": views[-1].volume,
        }

    def _kline_indexes(self, series: ReplaySeries, now: int, start: int | None, end: int | None, limit: int) -> range:
        """Rows to answer with, all opened by `now`."""
        _, visible_stop = series.visible_range(now)
        if end is not None:
            cut = series.index_at_or_after(end + 1 if self.options.kline_end_inclusive else end)
            visible_stop = min(visible_stop, cut)
        if start is not None:
            first = series.index_at_or_after(start)
            return range(first, min(visible_stop, first + limit))
        return range(max(0, visible_stop - limit), visible_stop)


def _decimal_text(value: Decimal) -> str:
    return format(value.normalize(), "f") if value != 0 else "0"


def _status_body(status: int) -> str:
    return {429: "Too Many Requests", 418: "I'm a teapot", 504: "Gateway Timeout"}.get(status, "error")


def _contract_json(pair: str, spec: ContractSpec) -> dict[str, Any]:
    base, quote = pair.split("-", 1)
    return {
        "contractId": str(zlib.crc32(pair.encode()) % 10**6),
        "symbol": pair,
        "size": "0",
        "displayName": pair,
        "quantityPrecision": spec.quantity_precision,
        "pricePrecision": spec.price_precision,
        "feeRate": float(spec.taker_fee_rate),
        "makerFeeRate": float(spec.maker_fee_rate),
        "takerFeeRate": float(spec.taker_fee_rate),
        "tradeMinLimit": 0,
        "tradeMinQuantity": float(spec.min_quantity),
        "tradeMinUSDT": float(spec.min_notional),
        "maxLongLeverage": spec.max_leverage,
        "maxShortLeverage": spec.max_leverage,
        "currency": quote,
        "asset": base,
        "status": 1,
        "apiStateOpen": "true",
        "apiStateClose": "true",
        "ensureTrigger": False,
        "triggerFeeRate": "0.00020000",
        "brokerState": True,
        "launchTime": 0,
        "maintainTime": 0,
        "offTime": 0,
    }


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000
