"""Reconciliation of a live pair's book with the venue, fail-closed.

Run by the execution actor at start (before the risk guard may lift its start-up halt), every
`trading.reconcile_interval_min`, and on `tradingd ctl reconcile`, always between plans. It compares
what the database holds (the execution book: working orders, position) with what the venue shows,
resolves what it can, and answers with every finding (`Reconciliation`):

1. **Our working orders**, each read by its client order id: a fill or an end the book had not heard is
   booked from the venue's totals (a fill missed while the process was down). An order whose submit was
   never answered is looked up with bounded retries, by id and in the symbol's order history; when the
   venue cleanly answers that it has no such order, it never reached the order book and is `rejected`
   with that evidence; while the venue cannot say, it stays unresolved.
2. **Open orders on the symbol that are not ours**: nothing here placed them, so nothing here may manage
   them; they are named, and the pair halts until they are gone.
3. **The position**: after the orders are booked the venue's position must equal the book's. A venue
   position the book does not know (nothing held, nothing working) is adopted as an external trade with
   `trading.external_positions = "adopt"`, or named and the pair halted with `"halt"` (the default: a
   position nobody here opened is the operator's to look at first). Any other difference halts the pair.
4. **Protection**: our protective orders are read too (a stop that triggered while the process was down
   closes its trade), and every open position gets its stop again if it has none (`ExecutionStage.protect`);
   a position still without one fails the reconciliation.
5. **The balance**: read and reported beside the rest (the venue's equity and available margin).

A finding is *resolved* when reconciliation itself settled it (a fill booked, an absent order ended, a
position adopted). The pair may trade only when every finding is resolved and the venue could be read:
otherwise the risk guard holds it HALTED (`reconciliation_failed`) and the next reconciliation tries
again; one that passes lifts that hold. Everything booked is written through the execution stage with
deterministic ids (the adopted trade's derives from the run, the pair and the venue's position), so a
second reconciliation finds the book and the venue agreeing and changes nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from domain.errors import OrderNotFoundError, VenueError
from domain.trading_state import TradingState
from exchange.bingx.trading import VenueBalance, margin_balance
from pipeline.execution.bingx_orders import HISTORY_LOOKBACK_MS, WEEK_MS, update_from_order
from pipeline.execution.bingx_venue import BingXVenue
from pipeline.execution.stage import ExecutionStage

ExternalPositions = Literal["halt", "adopt"]
RECONCILED = "reconciled"
FAILED = "reconciliation_failed"
UNANSWERED: frozenset[str] = frozenset({"submitted", "unknown"})
"""Order states whose submit the venue never answered: a read that finds nothing means a lookup."""
ADOPTED_TRADES = uuid.UUID("3f0c7a52-9d1e-4d6a-8f7b-2b8f6f0e9a11")
"""The namespace of adopted trades' ids."""


@dataclass(frozen=True)
class Finding:
    kind: str
    """`order_booked`, `order_absent`, `order_unresolved`, `order_missing`, `foreign_order`,
    `position_adopted`, `external_position`, `position_mismatch`, `unprotected`."""
    detail: str
    resolved: bool

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "resolved": self.resolved}


@dataclass(frozen=True)
class Reconciliation:
    pair: str
    findings: tuple[Finding, ...] = ()
    book_position: Decimal | None = None
    venue_position: Decimal | None = None
    balance: VenueBalance | None = None
    error: str | None = None
    """The venue could not be read: nothing is known, so nothing passes."""
    took_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and all(finding.resolved for finding in self.findings)

    @property
    def hold(self) -> tuple[TradingState, str]:
        """What the pair's risk guard is told: passed (lifts a hold reconciliation put on) or failed."""
        return ("ACTIVE", RECONCILED) if self.ok else ("HALTED", FAILED)

    def unresolved(self) -> list[str]:
        problems = [f.detail for f in self.findings if not f.resolved]
        return ([f"the venue could not be read: {self.error}"] if self.error else []) + problems

    def to_json(self) -> dict[str, Any]:
        balance = self.balance
        return {
            "pair": self.pair,
            "ok": self.ok,
            "findings": [finding.to_json() for finding in self.findings],
            "book_position": None if self.book_position is None else str(self.book_position),
            "venue_position": None if self.venue_position is None else str(self.venue_position),
            "balance": None
            if balance is None
            else {"asset": balance.asset, "equity": str(balance.equity), "available": str(balance.available_margin)},
            "error": self.error,
            "took_ms": round(self.took_ms, 1),
        }


@dataclass
class Reconciler:
    stage: ExecutionStage
    venue: BingXVenue
    external_positions: ExternalPositions = "halt"
    clock: Callable[[], float] = time.time
    findings: list[Finding] = field(default_factory=list, init=False)

    async def run(self) -> Reconciliation:
        """Compare, resolve what can be, and say what could not (see the module docstring). Never raises
        for the venue's errors: they make the answer a failure."""
        started = time.perf_counter()
        self.findings = []
        pair = self.stage.pair
        try:
            await self._our_orders()
            await self._our_protection()
            book, venue = await self._position()
            await self.stage.protect()  # every position with its stop (re-attached after a crash)
            self._unprotected()
            await self._foreign_orders()
            balance = await self._balance()
        except VenueError as error:
            took = (time.perf_counter() - started) * 1000
            return Reconciliation(pair, tuple(self.findings), error=f"{type(error).__name__}: {error}", took_ms=took)
        took = (time.perf_counter() - started) * 1000
        return Reconciliation(pair, tuple(self.findings), book, venue, balance, took_ms=took)

    # ---------------------------------------------------------------- 1. our working orders

    async def _our_orders(self) -> None:
        book = self.stage.core.book
        for cid, order in list(book.working.items()):
            if order.state == "intent":
                continue  # its submit comes first (the stage's restore sends it)
            try:
                news = await self.venue.read(cid)
            except OrderNotFoundError:
                if order.state not in UNANSWERED:
                    self._found("order_missing", f"order {cid} ({order.state}) is not on the venue", False)
                    continue
                placement = await self.venue.orders.resolve(cid, self._history_from_ms())
                if placement.order is not None:
                    news = update_from_order(placement.order, "reconciliation", self._now_ms())
                elif placement.absent:
                    evidence = {"venue": self.venue.name, "lookups": self.venue.orders.resolve_backoff.attempts}
                    await self.stage.mark_absent(cid, evidence)
                    self._found("order_absent", f"order {cid} never reached the venue: rejected", True)
                    continue
                else:
                    self._found("order_unresolved", placement.reason or f"order {cid} is unresolved", False)
                    continue
            if await self.stage.on_venue_update(news) is not None:
                detail = f"order {cid}: {news.state} on the venue, {news.filled} filled, booked"
                self._found("order_booked", detail, True)

    async def _our_protection(self) -> None:
        """Our protective orders, read by the venue's order id: one that triggered while the process was
        down closes its trade here (and one the venue dropped is ended)."""
        for cid, order in list(self.stage.core.book.protection.items()):
            if order.exchange_order_id is None or cid not in self.stage.core.book.protection:
                continue
            try:
                news = await self.venue.read(cid)
            except OrderNotFoundError:
                self._found("order_missing", f"protective order {cid} ({order.exchange_order_id}) is not on the venue",
                            False)  # fmt: skip
                continue
            if await self.stage.on_venue_update(news) is not None:
                self._found("order_booked", f"protective order {cid}: {news.state} on the venue, booked", True)

    def _unprotected(self) -> None:
        book = self.stage.core.book
        if book.position.quantity == 0 or self.stage.protection is None:
            return
        if not any(p.kind == "stop_loss" and p.state == "accepted" for p in book.protection.values()):
            self._found("unprotected", f"the position of {book.position.quantity} has no stop on the venue yet", False)

    # ---------------------------------------------------------------- 2. orders that are not ours

    async def _foreign_orders(self) -> None:
        book = self.stage.core.book
        ours = set(book.working) | {p.exchange_order_id for p in book.protection.values() if p.exchange_order_id}
        for order in await self.venue.orders.trading.open_orders(self.venue.orders.symbol):
            if order.client_order_id not in ours and str(order.order_id) not in ours:
                detail = (
                    f"order {order.order_id} ({order.client_order_id or 'no client id'}: {order.side} "
                    f"{order.quantity} {order.type}) is open on {order.symbol} and was not placed by this "
                    "run: cancel it on the venue"
                )
                self._found("foreign_order", detail, False)

    # ---------------------------------------------------------------- 3. the position

    async def _position(self) -> tuple[Decimal, Decimal]:
        symbol = self.venue.orders.symbol
        positions = [p for p in await self.venue.orders.trading.positions(symbol) if p.symbol == symbol]
        venue = sum((p.quantity for p in positions), Decimal(0))
        book = self.stage.core.book
        held = book.position.quantity
        if venue == held:
            return held, venue
        if held == 0 and book.trade is None and not book.working:
            entry = positions[0].entry_price if positions else Decimal(0)
            if self.external_positions == "adopt":
                trade_id = uuid.uuid5(ADOPTED_TRADES, f"{self.stage.run_id}:{self.stage.pair}:{venue}:{entry}")
                await self.stage.adopt_external(venue, entry, self._now_ms(), trade_id)
                self._found(
                    "position_adopted", f"a venue position of {venue} at {entry} adopted as trade {trade_id}", True
                )
                return venue, venue
            detail = (
                f"the venue holds a position of {venue} at {entry} that this run did not open: close it on the "
                'venue, or set trading.external_positions = "adopt" to manage it'
            )
            self._found("external_position", detail, False)
            return held, venue
        self._found("position_mismatch", f"the book holds {held}, the venue {venue}", False)
        return held, venue

    # ---------------------------------------------------------------- 4. the balance

    async def _balance(self) -> VenueBalance | None:
        balances = await self.venue.orders.trading.balance()
        return margin_balance(balances) or (balances[0] if balances else None)

    # ---------------------------------------------------------------- helpers

    def _found(self, kind: str, detail: str, resolved: bool) -> None:
        self.findings.append(Finding(kind, detail, resolved))

    def _now_ms(self) -> int:
        return int(self.clock() * 1000) + self.venue.orders.trading.rest.clock_offset_ms

    def _history_from_ms(self) -> int:
        """The intent time the lookups search the history from: as far back as the venue answers (a
        week), so an order of any age in that window is found."""
        return self._now_ms() - WEEK_MS + HISTORY_LOOKBACK_MS + 60_000
