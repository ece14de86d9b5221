"""Actor state saved one way (`storage.checkpoints.ActorState`), on a real PostgreSQL: a role's document
round-trips under its key and version, a document of another version is refused rather than half-read,
a key claimed but never written loads as nothing, and an instance fenced off by a newer claim writes
nothing more."""

from __future__ import annotations

import pytest

from storage.checkpoints import ActorState, CheckpointStore, FencedError
from storage.database import Database


async def test_a_document_round_trips_under_its_key_and_version(database: Database) -> None:
    store = CheckpointStore(database.pool)
    risk = ActorState(store, "risk:run:BTC-USDT", "risk", "BTC-USDT", 1)
    assert await risk.load() is None
    await risk.save({"version": 1, "operator": True}, sequence=7)
    saved = await ActorState(store, "risk:run:BTC-USDT", "risk", "BTC-USDT", 1).load()
    assert saved is not None
    assert (dict(saved.state), saved.sequence, saved.state_version) == ({"version": 1, "operator": True}, 7, 1)
    with pytest.raises(ValueError, match="saved state version 1 is not 2"):
        await ActorState(store, "risk:run:BTC-USDT", "risk", "BTC-USDT", 2).load()


async def test_a_claimed_key_loads_as_nothing_and_an_older_instance_is_fenced_off(database: Database) -> None:
    store = CheckpointStore(database.pool)
    old = ActorState(store, "execution:run:BTC-USDT", "execution", "BTC-USDT", 1)
    assert await old.claim() == 1
    assert await old.load() is None  # the claim wrote no document
    await old.save({"book": "old"})
    new = ActorState(store, "execution:run:BTC-USDT", "execution", "BTC-USDT", 1)
    assert await new.claim() == 2
    with pytest.raises(FencedError):
        await old.save({"book": "stale"})
    await new.save({"book": "new"})
    saved = await new.load()
    assert saved is not None
    assert (dict(saved.state), saved.fence) == ({"book": "new"}, 2)
