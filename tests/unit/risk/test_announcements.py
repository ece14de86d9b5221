"""What an operator is told when a block begins or clears: event, severity, message and figures."""

from __future__ import annotations

from pipeline.risk.account import BREAKER
from pipeline.risk.announcements import account_announcement, pair_announcement
from pipeline.risk.blocks import Block, Transition

STALE = Block("source_stale", "pair", "HALTED", "automatic", "no candle for 300 s", figures={"silent_sec": "300"})
BREAKER_BLOCK = Block(BREAKER, "account", "REDUCING", "automatic", "3 losing trades in a row", figures={"losses": "3"})


def test_a_pairs_automatic_pause_is_a_warning_when_it_begins_and_news_when_it_clears() -> None:
    began = pair_announcement("BTC-USDT", Transition(STALE, True))
    assert (began.event, began.level, began.severity) == ("pair_halted", "warning", "warning")
    assert began.message == "BTC-USDT is HALTED: no candle for 300 s"
    assert began.fields == {
        "pair": "BTC-USDT", "reason": "source_stale", "detail": "no candle for 300 s", "silent_sec": "300",
        "state": "HALTED",
    }  # fmt: skip
    cleared = pair_announcement("BTC-USDT", Transition(STALE, False, "data_recovered"))
    assert (cleared.event, cleared.severity) == ("pair_resumed", "info")
    assert cleared.message == "BTC-USDT: the automatic pause (source_stale) cleared (data_recovered)"
    assert cleared.details == {"reason": "source_stale", "cleared_by": "data_recovered", "silent_sec": "300"}


def test_the_accounts_halt_is_critical_and_names_the_trade_that_tripped_the_breaker() -> None:
    at = "2025-01-02T03:04:00+00:00"
    began = account_announcement(Transition(BREAKER_BLOCK, True), at, "ETH-USDT", "t-1")
    assert (began.event, began.level, began.severity) == ("account_halted", "critical", "critical")
    assert began.message == "the account is REDUCING: 3 losing trades in a row (last: trade t-1 on ETH-USDT)"
    assert began.fields["pair"] == "ETH-USDT"
    assert began.details["trade_id"] == "t-1"
    cooled = account_announcement(Transition(BREAKER_BLOCK, False, "cooldown_over"), at)
    assert (cooled.event, cooled.severity) == ("circuit_breaker_cooled_down", "info")
    assert "`tradingd ctl resume` closes it" in cooled.message
    resumed = account_announcement(Transition(BREAKER_BLOCK, False, "operator"), at)
    assert (resumed.event, resumed.details["cleared_by"]) == ("account_resumed", "operator")
    assert resumed.message == f"the account's {BREAKER} halt cleared (operator)"
