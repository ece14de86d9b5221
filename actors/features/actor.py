"""The feature actor's Ray shell.

`ready()` finds where to resume: after the last candle this run decided for the pair, or, for a new
run, after the newest candle stored when the pair started (kept in its checkpoint, so a restart
before the first decision starts at the same place). It opens the pipeline on the stored history,
then passes on every stored candle since. Candles from the feed, and a one-second tick that looks up
what the core waits for in the store, keep it going. `rewind()` does the opening again: after an
actor downstream restarted, whatever was in flight to it is decided again (execution refuses what
was recorded already).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from actors.shell import ActorShell, Inbox, WorkerEnv, fatal
from actors.transport import Peers, PolicyHandle
from domain.candles import Candle, datetime_to_ms, interval_ms
from domain.messages import MarketInput
from features.definitions import feature_set
from features.normalization import NormalizationStats
from observability import get_logger
from pipeline.features.core import GATE_WINDOW_BARS, FeatureCore, GateSettings
from storage.candles import CandleStore
from storage.checkpoints import ActorState, CheckpointStore
from storage.journal import TradingJournal
from trading.context import PairContext

log = get_logger("tradingd.features")
ROLE = "features"
STATE_VERSION = 1
TICK_SEC = 1.0
FAR_FUTURE_MS = 4_102_444_800_000  # 2100-01-01: "everything stored after"


@dataclass(frozen=True)
class FeatureSource:
    feature_set: str
    gates: GateSettings
    stats: dict[str, object] | None = None
    """The trained agent's normalisation statistics (for the out-of-distribution gate)."""
    feature_set_version_id: str | None = None


Message = tuple[Literal["candles"], list[Candle]] | tuple[Literal["tick"], None] | tuple[Literal["rewind"], None]


class NoHistoryError(RuntimeError):
    """Nothing is stored for the pair yet: the feed must warm up first."""


class FeatureActor(ActorShell):
    def __init__(self, env: WorkerEnv, context: PairContext, source: FeatureSource) -> None:
        super().__init__(env)
        self.context = context
        self.source = source
        self.spec = feature_set(source.feature_set)
        self.policy: PolicyHandle | None = None
        self.core: FeatureCore | None = None
        self.inbox: Inbox[Message] = Inbox("features", self._handle, fatal)
        self.ticker: asyncio.Task[None] | None = None
        self.emitted = 0

    async def ready(self, peers: Peers) -> dict[str, Any]:
        self.policy = peers.get("policy", PolicyHandle)
        if self.database is None:
            self.database = await self.env.open_database()
            await self._open()
            self.inbox.start()
            self.ticker = asyncio.get_running_loop().create_task(self._tick())
        assert self.core is not None
        return {"pid": os.getpid(), "resume_after_ms": self.core.last_open_ms, "warming_up": self.core.warming_up}

    async def on_candles(self, candles: list[Candle]) -> None:
        self.inbox.put(("candles", candles))

    async def rewind(self) -> None:
        self.inbox.put(("rewind", None))

    def status(self) -> dict[str, Any]:
        core = self.core
        return {
            "last_decided_open_ms": None if core is None else core.last_open_ms,
            "newest_known_open_ms": None if core is None else core.newest_known_ms,
            "warming_up": None if core is None else core.warming_up,
            "emitted": self.emitted,
            "inbox": self.inbox.status(),
        }

    async def stop_tasks(self) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.ticker

    # ---------------------------------------------------------------- internals

    async def _open(self) -> None:
        assert self.database is not None
        pool = self.database.pool
        store = CandleStore.of(self.database)
        context = self.context
        state = ActorState(CheckpointStore(pool), context.actor_key(ROLE), ROLE, context.pair, STATE_VERSION)
        saved = await state.load()
        start = None if saved is None else saved.state.get("start_after_ms")
        if start is None:
            span = await store.span(context.pair, context.interval)
            if span is None:
                raise NoHistoryError(f"no {context.interval} candles of {context.pair} are stored yet")
            start = span[1]
            await state.save({"start_after_ms": start})
        decided = await TradingJournal(pool).last_decided(uuid.UUID(context.run_id), context.pair, context.interval)
        resume = max(int(start), datetime_to_ms(decided) if decided is not None else int(start))
        step = interval_ms(context.interval)
        warmup = self.spec.warmup_bars
        history = await store.read_columns(
            context.pair, context.interval, resume - (warmup + GATE_WINDOW_BARS) * step, resume + step
        )
        context_history = {
            iv: await store.read_columns(context.pair, iv, resume - (warmup + 2) * interval_ms(iv), resume + step)
            for iv in self.spec.context
        }
        stats = None if self.source.stats is None else NormalizationStats.from_json(self.source.stats)
        core = FeatureCore(
            context,
            self.spec,
            self.source.gates,
            stats=stats,
            feature_set_version_id=self.source.feature_set_version_id,
        )
        core.open(history, context_history, resume)
        core.add(await store.read(context.pair, context.interval, resume + step, FAR_FUTURE_MS))
        for iv in self.spec.context:
            core.add(await store.read(context.pair, iv, resume - interval_ms(iv), FAR_FUTURE_MS))
        self.core = core
        log.info(
            "features_opened",
            pair=context.pair,
            run_id=context.run_id,
            resume_after_ms=resume,
            history=len(history),
            warming_up=core.warming_up,
        )
        await self._emit(core.process())

    async def _handle(self, message: Message) -> None:
        kind, payload = message
        if kind == "rewind":
            await self._open()
            return
        core = self.core
        assert core is not None
        assert self.database is not None
        if kind == "candles":
            assert payload is not None
            core.add(payload)
        else:
            store = CandleStore.of(self.database)
            for missing in core.missing():
                core.add(await store.read(self.context.pair, missing.interval, missing.start_ms, missing.end_ms))
        await self._emit(core.process())

    async def _emit(self, inputs: list[MarketInput]) -> None:
        # Ray does not keep the order of calls to an async actor: each is awaited (it only enqueues)
        # before the next is sent, so the policy receives the candles in order.
        assert self.policy is not None
        for market in inputs:
            await self.policy.on_input(market)
            self.emitted += 1

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SEC)
            if self.inbox.backlog == 0:
                self.inbox.put(("tick", None))
