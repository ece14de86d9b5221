"""`tradingd secrets rotate`'s check of a new key pair (issue 17), against the simulator: a signed read with
the new pair must succeed, it must not be the pair in use, and while the pair in use still answers both
must name one account; a pair the venue refuses or cannot be asked with is refused, naming why."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from config.settings import ExchangeSettings
from daemon.secrets_rotation import RotationRefused, check_new_keys
from exchange.bingx.rest import Credentials
from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from tests.execution_plans import PAIR

OLD = Credentials("rotation-key-0001-old", "rotation-secret-0001-old-abcdefgh")
NEW = Credentials("rotation-key-0002-new", "rotation-secret-0002-new-ijklmnop")
T0 = 1_700_000_040_000


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    rows = [FileCandle(T0 + i * 60_000, "100.0", "100.5", "99.5", "100.0", "10") for i in range(3)]
    simulator = BingXSimulator(
        [ReplaySeries(PAIR, "1m", rows)],
        ReplayClock(T0 + 59_000),
        api_keys={OLD.api_key: OLD.secret_key, NEW.api_key: NEW.secret_key},
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


def exchange(sim: BingXSimulator, keys: Credentials | None = OLD) -> ExchangeSettings:
    given = {} if keys is None else {"api_key": SecretStr(keys.api_key), "secret_key": SecretStr(keys.secret_key)}
    return ExchangeSettings(mode="live", rest_url=sim.rest_url, **given)  # type: ignore[arg-type]


async def test_a_new_pair_of_the_same_account_passes(sim: BingXSimulator) -> None:
    checked = await check_new_keys(exchange(sim), NEW)
    assert (checked.credentials, checked.user_id, checked.old_keys) == (NEW, "1", "same account")


async def test_a_pair_the_venue_refuses_is_refused_with_its_code(sim: BingXSimulator) -> None:
    unknown = Credentials("rotation-key-9999-unknown", NEW.secret_key)
    with pytest.raises(RotationRefused, match=r"refused a signed read with the new keys .*100413"):
        await check_new_keys(exchange(sim), unknown)
    wrong_secret = Credentials(NEW.api_key, "rotation-secret-wrong-0000000000")
    with pytest.raises(RotationRefused, match="refused a signed read"):
        await check_new_keys(exchange(sim), wrong_secret)


async def test_the_pair_in_use_is_not_a_rotation(sim: BingXSimulator) -> None:
    with pytest.raises(RotationRefused, match="in use already"):
        await check_new_keys(exchange(sim), OLD)


async def test_with_the_old_pair_revoked_the_new_one_stands_on_its_own_read(sim: BingXSimulator) -> None:
    sim.trading.api_keys.pop(OLD.api_key)
    checked = await check_new_keys(exchange(sim), NEW)
    assert checked.old_keys.startswith("not compared: the keys in use did not answer")
    assert (await check_new_keys(exchange(sim, None), NEW)).old_keys == "not configured"


async def test_an_unreachable_venue_is_refused(sim: BingXSimulator) -> None:
    settings = exchange(sim).model_copy(update={"rest_url": "http://127.0.0.1:9"})
    with pytest.raises(RotationRefused, match=r"did not answer the check of the new keys .*nothing changed"):
        await check_new_keys(settings, NEW)
