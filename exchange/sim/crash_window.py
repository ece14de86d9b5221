"""The simulator's crash windows: the venue as the daemon leaves it when it dies at one chosen instant.

A test that kills the daemon (`kill -9` of its whole tree) at "after the order was sent, before its
answer" cannot time the kill from outside: the answer comes within milliseconds. So the simulator holds
the daemon at that instant instead. Armed (`POST /sim/faults` `{"crash_window": POINT}`), the next
request that reaches the point is held there and the venue **freezes**: every later REST request waits,
unprocessed, and the user stream tells nothing (each event is dropped, as it would be to a dead
daemon), while the candles, and the stops they trigger, go on. The test sees the window caught
(`held`), kills the daemon at leisure, then thaws the venue (`{"release": true}`): whatever was held is
answered 503 and never processed (its client is gone), so nothing the frozen daemon asked for happens
later behind its back.

The points, each a moment of the issue's `kill -9` matrix:

- `before_submit`: the next MARKET or LIMIT order with a client order id never reaches the account (not
  booked, not in the order log): the daemon committed the intent and died before sending it.
- `before_answer`: that order is booked (and filled, for a market order); its answer is held.
- `before_fill_recorded`: that order is booked and answered; its fill is never streamed.
- `stop_replacement`: the next cancel of a stop (or take-profit) while another of the same type is open
  on the symbol is held unexecuted: the new stop is placed, the old one not yet cancelled.

An order the account refuses (margin, say) is answered at once and the window waits for the next one:
the instant is that of an order the venue booked.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal, get_args

from aiohttp import web

CrashPoint = Literal["before_submit", "before_answer", "before_fill_recorded", "stop_replacement"]
CRASH_POINTS: tuple[str, ...] = get_args(CrashPoint)
ORDER_POINTS = frozenset({"before_submit", "before_answer", "before_fill_recorded"})
CONDITIONAL_TYPES = frozenset({"STOP_MARKET", "TAKE_PROFIT_MARKET"})


@dataclass
class CrashWindow:
    armed: CrashPoint | None = None
    frozen: bool = False
    held: dict[str, str] = field(default_factory=dict)
    """What was caught: the point, the symbol, and the order's client order id (or venue id)."""
    _thaw: asyncio.Event | None = None

    def arm(self, point: str) -> None:
        if point not in CRASH_POINTS:
            raise ValueError(f"crash_window: {point!r} is not one of {', '.join(CRASH_POINTS)}")
        if self.frozen:
            raise ValueError("crash_window: the venue is frozen; release it first")
        self.armed = point  # type: ignore[assignment]
        self.held = {}

    def catches_order(self, params: dict[str, str]) -> CrashPoint | None:
        """The point at which this order request is caught (the window freezes), or None."""
        client_id = params.get("clientOrderId", params.get("clientOrderID", ""))
        if self.armed not in ORDER_POINTS or not client_id:
            return None
        if params.get("type", "").upper() not in ("MARKET", "LIMIT"):
            return None
        point = self.armed
        self._freeze(point, params.get("symbol", ""), client_order_id=client_id)
        return point

    def catches_cancel(self, symbol: str, order_type: str, order_id: int, others_of_type: int) -> bool:
        """Whether this cancel (of an order of `order_type`, while `others_of_type` more are open on the
        symbol) is a stop being replaced, caught now."""
        if self.armed != "stop_replacement" or order_type not in CONDITIONAL_TYPES or others_of_type < 1:
            return False
        self._freeze("stop_replacement", symbol, order_id=str(order_id), order_type=order_type)
        return True

    async def hold(self) -> web.Response:
        """Wait until released, then answer without processing anything."""
        assert self._thaw is not None
        await self._thaw.wait()
        return web.Response(status=503, text="held by the simulator's crash window: never processed")

    async def hold_answer(self, answer: web.Response) -> web.Response:
        """An answer held until released (its client is gone by then)."""
        assert self._thaw is not None
        await self._thaw.wait()
        return answer

    def rearm(self, point: CrashPoint) -> None:
        """The order caught was refused (not booked): it is not the instant, so the window waits for the
        next one (nothing was held: the refusal is answered at once)."""
        self.release()
        self.arm(point)

    def release(self) -> None:
        self.armed = None
        self.frozen = False
        if self._thaw is not None:
            self._thaw.set()
            self._thaw = None

    def status(self) -> dict[str, object]:
        return {"armed": self.armed, "frozen": self.frozen, "held": dict(self.held)}

    def _freeze(self, point: CrashPoint, symbol: str, **what: str) -> None:
        self.armed = None
        self.frozen = True
        self._thaw = asyncio.Event()
        self.held = {"point": point, "symbol": symbol, **what}
