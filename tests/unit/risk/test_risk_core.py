"""The pair risk guard's core: start-up halt, sizing against the projected position, flips as a close
and an open, exits, pauses (operator and automatic), limits and the account guard, each denial with
its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain.candles import Candle, ms_to_datetime
from domain.fills import FillRules
from domain.messages import MarketInput, PolicyDecision, PositionReport, decision_sequence
from domain.orders import client_order_id
from features.gates import GAP
from pipeline.risk.account import AccountPolicy, AccountVerdict
from pipeline.risk.blocks import AccountView
from pipeline.risk.core import RiskCore
from pipeline.risk.desk import AccountDesk
from trading.context import PairContext
from trading.limits import RiskLimits

D = Decimal
RULES = FillRules(D("0.1"), D("0.001"), D("0.001"), D(5), D("0.0002"), D("0.0005"), D(0))
CONTEXT = PairContext("run-1", "BTC-USDT", "1m", "paper", "v1", "baseline:momentum", D(10_000), D("0.5"))
LIMITS = RiskLimits("test", D(6_000), D(6_000), 3, D(1), D("0.02"), D("0.05"), frozenset({"BTC-USDT"}))
NOW = datetime(2025, 5, 5, tzinfo=UTC)
T0 = 1_746_403_200_000


class Account:
    """The real account guard, behind the call the risk actor makes to its actor."""

    def __init__(self, policy: AccountPolicy | None = None) -> None:
        policy = policy or AccountPolicy("test", D(20_000), D(20_000), D(1_000), 3, timedelta(minutes=10))
        self.desk = AccountDesk(policy, None, NOW)
        self.guard = self.desk.guard
        self.exposures: dict[str, Decimal] = {}
        self.observed: list[int] = []

    async def observe(self, at_ms: int) -> AccountView:
        self.observed.append(at_ms)
        return self.desk.observe(ms_to_datetime(at_ms))

    async def check(self, pair: str, after: Decimal, reduces_only: bool) -> AccountVerdict:
        return self.guard.check(self.exposures, pair, after, reduces_only, self.desk.now)


def decision(
    minute: int, target: float | None, price: float = 100.0, forced: str | None = None, pair: str = "BTC-USDT"
) -> PolicyDecision:
    open_ms = T0 + minute * 60_000
    candle = Candle(pair, "1m", open_ms, price, price, price, price, 1.0)
    market = MarketInput("run-1", pair, "1m", decision_sequence("1m", open_ms), "t", candle, (), forced, {}, None, 0.0)
    return PolicyDecision(market, "momentum", target, 1.0)


def report(
    quantity: str, entry: str = "100", working: str = "0", last_minute: int = 0, version: int = 1
) -> PositionReport:
    sequence = decision_sequence("1m", T0 + last_minute * 60_000)
    return PositionReport("BTC-USDT", D(quantity), D(entry), D(working), sequence, D(entry), D(0), D(0), 1, version)


def ready(account: Account | None = None, limits: RiskLimits = LIMITS) -> RiskCore:
    core = RiskCore(CONTEXT, limits, RULES, account or Account())
    core.reconciled()
    return core


async def test_nothing_is_sent_before_execution_has_reconciled() -> None:
    core = RiskCore(CONTEXT, LIMITS, RULES, Account())
    assert core.trading_state == "HALTED"
    plan, _ = await core.plan(decision(1, 1.0))
    assert plan.orders == ()
    assert plan.risk.reason == "trading_halted"
    assert plan.risk.details["why"] == "not_reconciled"
    change = core.reconciled()
    assert change is not None
    assert (change.before, change.after, change.origin) == ("HALTED", "ACTIVE", "startup")


async def test_a_target_is_sized_against_the_projected_position() -> None:
    core = ready()
    plan, _ = await core.plan(decision(1, 1.0))
    (order,) = plan.orders
    # 0.5 of 10,000 USDT at 100 = 50 contracts
    assert (order.side, order.quantity, order.reduce_only, order.leg) == ("BUY", D(50), False, 1)
    assert order.client_order_id == client_order_id("run-1", "BTC-USDT", plan.decision.input.sequence * 4 + 1)
    again, _ = await core.plan(decision(2, 1.0))
    assert again.orders == ()
    assert again.risk.allowed
    core.on_report(report("0", working="50", last_minute=1))
    assert (await core.plan(decision(3, 1.0)))[0].orders == ()
    core.on_report(report("50", last_minute=3, version=2))
    half, _ = await core.plan(decision(4, 0.5))
    assert [(o.side, o.quantity, o.reduce_only) for o in half.orders] == [("SELL", D(25), True)]
    assert (await core.plan(decision(5, None)))[0].target_quantity is None


async def test_a_flip_is_a_reduce_only_close_then_an_opening_order() -> None:
    core = ready()
    core.on_report(report("50"))
    plan, _ = await core.plan(decision(1, -0.5))
    assert [(o.leg, o.side, o.quantity, o.reduce_only) for o in plan.orders] == [
        (0, "SELL", D(50), True),
        (1, "SELL", D(25), False),
    ]


async def test_a_denied_opening_order_still_lets_the_close_through() -> None:
    limits = RiskLimits("small", D(6_000), D(1_000), 3, D(1))
    core = ready(limits=limits)
    core.on_report(report("5"))
    plan, _ = await core.plan(decision(1, -1.0))
    assert [(o.side, o.quantity, o.reduce_only) for o in plan.orders] == [("SELL", D(5), True)]
    assert (plan.risk.allowed, plan.risk.reason) == (False, "max_order_notional")


async def test_exits_override_the_policy() -> None:
    core = ready()
    core.on_report(report("50", entry="100"))
    stop, _ = await core.plan(decision(1, 1.0, price=97.9))
    assert [(o.side, o.quantity, o.reason) for o in stop.orders] == [("SELL", D(50), "stop_loss")]
    core = ready()
    core.on_report(report("-50", entry="100"))
    take, _ = await core.plan(decision(1, None, price=94.9))
    assert [(o.side, o.quantity, o.reason) for o in take.orders] == [("BUY", D(50), "take_profit")]


async def test_pauses_by_the_operator_and_by_the_gates() -> None:
    core = ready()
    core.on_report(report("50"))
    change = core.pause("operator", reduce_only=True)
    assert change is not None
    assert change.after == "REDUCING"
    grow, _ = await core.plan(decision(1, -1.0))
    assert [o.reduce_only for o in grow.orders] == [True]
    assert grow.risk.reason == "reduce_only"
    core.pause("maintenance")
    assert (await core.plan(decision(2, 1.0)))[0].risk.reason == "trading_halted"
    restored = RiskCore(CONTEXT, LIMITS, RULES, Account())
    restored.restore(core.to_json())
    restored.reconciled()
    assert restored.trading_state == "HALTED"
    assert restored.pauses.reason == "maintenance"
    assert restored.resume() is not None
    assert restored.trading_state == "ACTIVE"
    _, paused = await restored.plan(decision(3, None, forced=GAP))
    assert paused is not None
    assert (paused.after, paused.origin, paused.reason) == ("HALTED", "automatic", f"gate:{GAP}")
    held, _ = await restored.plan(decision(4, 1.0, forced=GAP))
    assert held.orders == ()
    _, resumed = await restored.plan(decision(5, None))
    assert resumed is not None
    assert resumed.after == "ACTIVE"
    assert resumed.reason == "data_recovered"
    with pytest.raises(ValueError, match="checkpoint version"):
        restored.restore({"version": 7})


def test_the_operators_desired_state_maps_to_a_pause_or_a_resume() -> None:
    core = ready()
    reducing = core.operator("REDUCING", None)
    assert reducing is not None
    assert (reducing.after, reducing.reason) == ("REDUCING", "operator_pause")
    halted = core.operator("HALTED", "maintenance")
    assert halted is not None
    assert (halted.after, core.pauses.reason) == ("HALTED", "maintenance")
    assert core.operator("HALTED", "maintenance") is None, "the state it is in already changes nothing"
    resumed = core.operator("ACTIVE", None)
    assert resumed is not None
    assert (resumed.after, resumed.origin) == ("ACTIVE", "operator")


async def test_the_venues_outcomes_hold_the_pair_until_the_operator_resumes() -> None:
    core = ready()
    core.on_report(report("50"))
    unresolved = core.venue_outcome("REDUCING", "order_unresolved")
    assert unresolved is not None
    assert (unresolved.after, unresolved.origin, unresolved.reason) == ("REDUCING", "venue", "order_unresolved")
    grow, _ = await core.plan(decision(1, 1.0))
    assert grow.orders == ()  # no new entry while an order's outcome is unknown
    close, _ = await core.plan(decision(2, 0.0))
    assert [(o.side, o.reduce_only) for o in close.orders] == [("SELL", True)]  # exits still go
    (block,) = core.blocks()
    assert (block.cause, block.state, block.origin) == ("order_unresolved", "REDUCING", "venue")
    assert core.venue_outcome("REDUCING", "order_unresolved") is None, "told twice: nothing changes"
    halted = core.venue_outcome("HALTED", "venue_refused_pair")
    assert halted is not None
    assert halted.after == "HALTED"
    assert core.venue_outcome("REDUCING", "order_unresolved") is None, "it only tightens"
    assert core.pauses.reason == "venue_refused_pair"
    restored = RiskCore(CONTEXT, LIMITS, RULES, Account())
    restored.restore(core.to_json())
    restored.reconciled()
    assert restored.trading_state == "HALTED", "it survives a restart"
    assert restored.operator("ACTIVE", None) is None, "the supervisor's desired state does not lift it"
    assert restored.trading_state == "HALTED"
    resumed = restored.resume()
    assert resumed is not None
    assert (resumed.after, restored.blocks()) == ("ACTIVE", ())
    assert restored.venue_outcome("HALTED", "reconciliation_failed") is not None
    lifted = restored.venue_outcome("ACTIVE", "reconciled")
    assert lifted is not None
    assert (lifted.after, lifted.origin) == ("ACTIVE", "venue"), "a passing reconciliation lifts its own hold"
    restored.venue_outcome("HALTED", "venue_refused_account")
    assert restored.venue_outcome("ACTIVE", "reconciled") is None, "but not the venue refusing the account"
    assert restored.trading_state == "HALTED"
    older = core.to_json()
    del older["venue"], older["venue_reason"]  # a checkpoint written before live trading
    restored.restore(older)
    restored.reconciled()
    assert restored.trading_state == "ACTIVE"


async def test_limits_and_the_account_guard_deny_with_their_reason() -> None:
    account = Account()
    core = ready(account)
    account.exposures = {"ETH-USDT": D(18_000)}
    plan, _ = await core.plan(decision(1, 1.0))
    assert plan.orders == ()
    assert plan.risk.reason == "max_gross_exposure"
    account.exposures = {}
    account.guard.state.breaker_open = True
    account.guard.state.breaker_reason = "3 losing trades in a row"
    breaker, _ = await core.plan(decision(2, 1.0))
    assert breaker.risk.reason == "circuit_breaker_open"
    account.guard.state.breaker_open = False
    few = ready(limits=RiskLimits("few", D(60_000), D(60_000), 1, D(5)))
    first, _ = await few.plan(decision(3, 1.0))
    assert len(first.orders) == 1
    few.on_report(report("50", last_minute=3))
    second, _ = await few.plan(decision(3, -1.0))  # the same interval again
    assert second.risk.reason == "max_orders_per_interval"
    other = RiskCore(PairContext("run-1", "DOGE-USDT", "1m", "paper", "v1", "p", D(10_000)), LIMITS, RULES, Account())
    other.reconciled()
    plan, _ = await other.plan(decision(1, 1.0, pair="DOGE-USDT"))
    assert plan.risk.reason == "instrument_not_allowed"


def limit_core(mode: str, expiry: int) -> RiskCore:
    from dataclasses import replace

    from domain.limit_orders import LimitRules

    context = replace(CONTEXT, mode=mode, limit_rules=LimitRules("touch", expiry, None))
    core = RiskCore(context, LIMITS, RULES, Account())
    core.reconciled()
    return core


def limit_decision(minute: int, target: float | None) -> PolicyDecision:
    """A decision asking for limit entries; its candle opens at 101 and trades down to 99 (closes 100)."""
    from dataclasses import replace

    made = decision(minute, target)
    candle = replace(made.input.candle, open=101.0, high=101.0, low=99.0)
    return replace(made, input=replace(made.input, candle=candle), entry="limit")


def limit_report(quantity: str, resting: str, last_minute: int, version: int) -> PositionReport:
    from dataclasses import replace

    return replace(report(quantity, last_minute=last_minute, version=version), resting=D(resting))


@pytest.mark.parametrize("mode", ["paper", "live"])
async def test_a_live_entry_fills_by_the_venues_reports_and_a_paper_one_by_the_model(mode: str) -> None:
    """Candle 2 trades down through the entry's price: the paper model fills it there; on a live venue only the
    report says what filled, and until it does the pair waits. A full fill keeps the target held."""
    core = limit_core(mode, expiry=5)
    sent, _ = await core.plan(limit_decision(1, 1.0))
    (entry,) = sent.orders
    assert (entry.side, entry.quantity, entry.limit_price) == ("BUY", D(50), D(100))
    core.on_report(limit_report("0", "50", 1, 1))
    waited, _ = await core.plan(limit_decision(2, 1.0))
    assert waited.orders == ()
    sequence = decision_sequence("1m", T0 + 2 * 60_000)
    if mode == "paper":
        assert core.resting is None
        assert core.book(sequence).quantity == D(50), "the model filled it at candle 2"
        return
    assert core.resting is not None
    assert core.book(sequence).quantity == 0, "nothing assumed filled"
    core.on_report(limit_report("20", "30", 2, 2))  # the venue filled 20 of it
    assert core.resting is not None
    assert core.resting.remaining == D(30)
    core.on_report(limit_report("50", "0", 2, 3))  # and then the rest
    assert core.resting is None
    assert core.kernel.held_target == 1.0
    held, _ = await core.plan(limit_decision(3, 1.0))
    assert held.orders == ()


async def test_a_live_entry_ages_and_its_end_unfilled_lets_the_target_be_sized_again() -> None:
    core = limit_core("live", expiry=2)
    await core.plan(limit_decision(1, 1.0))
    core.on_report(limit_report("0", "50", 1, 1))
    aging, _ = await core.plan(limit_decision(2, 1.0))
    assert aging.orders == ()
    assert core.resting is not None
    assert core.resting.candles_left == 1
    core.on_report(limit_report("10", "40", 2, 2))
    ended, _ = await core.plan(limit_decision(3, 1.0))  # its last candle: execution cancels it on the venue
    assert core.kernel.held_target == 1.0, "sized again at once: the rest of the target"
    (again,) = ended.orders
    assert (again.side, again.quantity, again.limit_price) == ("BUY", D(40), D(100))


async def test_a_live_entry_refused_post_only_holds_no_target() -> None:
    core = limit_core("live", expiry=3)
    await core.plan(limit_decision(1, 1.0))
    core.on_report(limit_report("0", "0", 1, 1))  # the venue refused it (101215): nothing rests, nothing held
    assert core.resting is None
    assert core.kernel.held_target is None
    retried, _ = await core.plan(limit_decision(2, 1.0))
    assert [o.quantity for o in retried.orders] == [D(50)]
