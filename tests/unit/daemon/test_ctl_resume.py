"""`tradingd ctl resume` reads as what governs each pair now and what still blocks trading."""

from __future__ import annotations

from daemon.cli_ctl import render


def test_resume_lists_each_pair_and_what_still_blocks_it() -> None:
    answer = {
        "ok": True,
        "id": "c1",
        "account": {"trading_state": "HALTED", "circuit_breaker": "closed", "still_blocked": "the daily loss limit"},
        "pairs": {"BTC-USDT": "HALTED", "ETH-USDT": "HALTED"},
        "blocked": True,
        "blocked_by": {"BTC-USDT": ["daily_loss_limit"], "ETH-USDT": ["daily_loss_limit", "source_stale"]},
        "still_blocked": [
            "account: daily_loss_limit: no new exposure until the next trading day, 2025-05-06 00:00 UTC",
            "ETH-USDT: source_stale: no market data for 130 s (stale after 120 s)",
        ],
    }
    assert render("resume", answer).splitlines() == [
        "BTC-USDT: HALTED",
        "ETH-USDT: HALTED",
        "account: HALTED, circuit breaker closed",
        "still blocked:",
        "  account: daily_loss_limit: no new exposure until the next trading day, 2025-05-06 00:00 UTC",
        "  ETH-USDT: source_stale: no market data for 130 s (stale after 120 s)",
    ]
    resumed = {"ok": True, "pairs": {"BTC-USDT": "ACTIVE"}, "blocked": False, "blocked_by": {}, "still_blocked": []}
    assert render("resume", resumed).splitlines() == ["BTC-USDT: ACTIVE"]
