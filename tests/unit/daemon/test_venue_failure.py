"""How a command reports the venue error that ended it: the exit code says whether running it again can help."""

from __future__ import annotations

import pytest

from daemon.cli_market import refuse_bad_pair, venue_failure
from domain.errors import FatalVenueError, RejectedError, TemporaryVenueError, UnknownSymbolError


@pytest.mark.parametrize(
    ("error", "code", "retry"),
    [
        (UnknownSymbolError("BingX error 109425: symbol FOO-USDT does not exist"), 65, False),
        (RejectedError("BingX error 109400: invalid parameter"), 65, False),
        (FatalVenueError("BingX error 100413: bad key"), 78, False),
        (TemporaryVenueError("GET /klines: ClientConnectorError"), 69, True),
    ],
)
def test_only_a_temporary_failure_suggests_running_again(
    error: Exception, code: int, retry: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    assert venue_failure(error, "backfill", "run it again to resume") == code  # type: ignore[arg-type]
    assert ("run it again" in capsys.readouterr().err) is retry


def test_a_pair_that_cannot_be_a_symbol_is_refused_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert refuse_bad_pair("BTC-USDT") is None
    assert refuse_bad_pair("btc-usdt") == 65
    assert "did you mean BTC-USDT?" in capsys.readouterr().err
    assert refuse_bad_pair("BTCUSDT") == 65
    assert "did you mean" not in capsys.readouterr().err
