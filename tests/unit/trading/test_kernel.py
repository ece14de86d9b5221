"""The trading kernel's rule, step by step: sizing at the decision close, legs through zero, exits that
win over the policy, the held target, the pair limits, the two-phase account check, and the projection
of working orders the live risk guard decides on. Each case fails on the wrong rule."""

from __future__ import annotations

from decimal import Decimal

from domain.fills import FillRules, Position, market_fill
from domain.messages import RiskOutcome
from domain.orders import client_order_id
from features.state import state_features
from trading.kernel import HOLD, Book, PairKernel, Sizing, fill_candle, legs_of, observation, project, unlimited
from trading.limits import RiskLimits

D = Decimal
RULES = FillRules(D("0.1"), D("0.001"), D("0.001"), D(5), D("0.0002"), D("0.0005"), D(0))
SIZING = Sizing(D(10_000), D("0.5"))
LIMITS = RiskLimits("t", D(6_000), D(6_000), 3, D(1), D("0.02"), D("0.05"), frozenset({"BTC-USDT"}))


def kernel(limits: RiskLimits = LIMITS) -> PairKernel:
    return PairKernel("BTC-USDT", "run-1", limits, RULES, SIZING)


def long(quantity: str, entry: str = "100", **fields: object) -> Book:
    return Book(D(quantity), D(entry), **fields)  # type: ignore[arg-type]


def test_sizing_is_a_fraction_of_max_notional_from_equity_at_the_decision_close_truncated() -> None:
    # equity 10,000 + 60 realised - 10 fees + (103 - 100) * 10 unrealised = 10,080; half: 5,040 / 103
    book = Book(D(10), D(100), D(60), D(10))
    made = kernel(unlimited()).decide(1.0, book, D(103), 7, 0)
    (order,) = made.orders
    assert made.target_quantity == D("48.932")  # 5,040 / 103 = 48.9320388..., truncated to the step
    assert (order.side, order.quantity, order.leg, order.reduce_only) == ("BUY", D("38.932"), 1, False)
    assert order.client_order_id == client_order_id("run-1", "BTC-USDT", 7 * 4 + 1)
    assert kernel(unlimited()).decide(-0.5, Book(), D(80), 1, 0).target_quantity == D("-31.25")


def test_a_move_through_zero_is_a_reduce_only_close_then_an_opening_order() -> None:
    assert legs_of(D(50), D(-75)) == [(0, D(-50), True), (1, D(-25), False)]
    assert legs_of(D(50), D(-50)) == [(0, D(-50), True)]
    assert legs_of(D(50), D(-20)) == [(0, D(-20), True)]
    assert legs_of(D(-5), D(-5)) == [(1, D(-5), False)]
    assert legs_of(D(0), D(3)) == [(1, D(3), False)]
    assert legs_of(D(3), D(0)) == []
    made = kernel().decide(-0.5, long("50"), D(100), 2, 0)
    assert [(o.leg, o.side, o.quantity, o.reduce_only) for o in made.orders] == [
        (0, "SELL", D(50), True),
        (1, "SELL", D(25), False),
    ]


def test_exits_win_over_the_policy_at_the_decision_close_against_the_entry_price() -> None:
    stop = kernel().decide(1.0, long("50"), D("97.9"), 1, 0)  # -2.1% on a long: stop-loss at 2%
    assert [(o.side, o.quantity, o.reason, o.reduce_only) for o in stop.orders] == [("SELL", D(50), "stop_loss", True)]
    take = kernel().decide(None, long("-50"), D("94.9"), 1, 0)  # +5.1% on a short: take-profit at 5%
    assert [(o.side, o.quantity, o.reason) for o in take.orders] == [("BUY", D(50), "take_profit")]
    inside = kernel().decide(None, long("50"), D("98.1"), 1, 0)  # -1.9%: no exit, HOLD keeps it
    assert inside.orders == ()
    assert inside.target_quantity is None
    after = kernel()
    after.decide(1.0, long("50"), D("97.9"), 1, 0)
    assert after.held_target == 0.0, "an exit leaves the position flat as its held target"
    assert after.decide(1.0, Book(), D(98), 2, 60_000).orders != (), "the policy's target reopens it"


def test_the_same_target_again_trades_nothing() -> None:
    k = kernel(unlimited())
    first = k.decide(0.5, Book(), D(100), 1, 0)
    assert first.signed_quantity == D(25)
    # equity has moved (the position is up), but the target is the one held: no order
    assert k.decide(0.5, long("25", "90"), D(100), 2, 60_000).orders == ()
    assert k.decide(None, long("25", "90"), D(100), 3, 120_000).orders == ()
    # a new target is sized from the equity now: 10,250 * 0.5 / 100 = 51.25, less the 25 held
    assert k.decide(1.0, long("25", "90"), D(100), 4, 180_000).signed_quantity == D("26.25")


def test_decide_skips_sizing_only_when_nothing_trades_and_otherwise_is_propose_then_commit() -> None:
    """`decide`'s shortcut (HOLD without sizing for HOLD or the held target) must not skip an exit due, and
    must decide every case as the two-phase path the live risk guard runs."""
    held = kernel()
    held.held_target = 1.0
    stop = held.decide(1.0, long("50"), D("97.9"), 1, 0)  # the held target, but -2.1%: the stop-loss exits
    assert [(o.side, o.quantity, o.reason) for o in stop.orders] == [("SELL", D(50), "stop_loss")]
    assert held.held_target == 0.0
    cases = [
        (target, book, close, held_target)
        for target in (None, -1.0, -0.5, 0.0, 0.5, 1.0)
        for book in (Book(), long("50"), long("-30", "104"), long("0.01"))
        for close in (D(100), D("97.9"), D("105.5"))
        for held_target in (None, 0.0, 1.0, -0.5)
    ]
    for sequence, (target, book, close, held_target) in enumerate(cases):
        fast, slow = kernel(), kernel()
        if sequence % 2:  # every other case under a minimum holding longer than the books' (0 bars)
            fast.min_hold_bars = slow.min_hold_bars = 2
        fast.held_target = slow.held_target = held_target
        made = fast.decide(target, book, close, sequence, 0)
        planned = slow.commit(slow.propose(target, book, close, sequence, 0))
        case = f"target {target}, book {book}, close {close}, held {held_target}"
        assert (made.orders, made.outcome, made.reason) == (planned.orders, planned.outcome, planned.reason), case
        assert fast.held_target == slow.held_target, case
        if not made.orders and made.outcome.allowed:
            assert made.target_quantity in (None, planned.target_quantity), case


def test_a_position_younger_than_min_hold_bars_keeps_its_target_but_still_exits() -> None:
    k = PairKernel("BTC-USDT", "run-1", LIMITS, RULES, SIZING, held_target=1.0, min_hold_bars=3)
    for bars in (0, 1, 2):  # held 0, 1, 2 candles: the policy's flip or exit is not traded
        young = long("50", bars_held=bars)
        assert k.decide(-1.0, young, D(100), bars, 0) is HOLD
        assert k.decide(0.0, young, D(100), bars, 0) is HOLD
        proposal = k.propose(-1.0, young, D(100), bars, 0)
        assert (proposal.legs, proposal.trades, proposal.target_quantity) == ((), False, None)
        assert k.held_target == 1.0
    stopped = k.decide(-1.0, long("50", bars_held=1), D("97.9"), 9, 0)  # -2.1%: the stop-loss exits anyway
    assert [(o.side, o.quantity, o.reason) for o in stopped.orders] == [("SELL", D(50), "stop_loss")]
    k.held_target = 1.0
    old = k.decide(-1.0, long("50", bars_held=3), D(100), 10, 0)  # held 3 candles: the flip goes through
    assert [(o.leg, o.side) for o in old.orders] == [(0, "SELL"), (1, "SELL")]
    assert kernel().decide(1.0, Book(), D(100), 1, 0).orders != (), "flat is not a position to hold"
    assert PairKernel("BTC-USDT", "r", LIMITS, RULES, SIZING, min_hold_bars=3).decide(1.0, Book(), D(100), 1, 0).orders


def test_pair_limits_deny_with_their_reason_and_a_reducing_order_passes_size_limits() -> None:
    small = RiskLimits("small", D(6_000), D(1_000), 3, D(1))
    made = kernel(small).decide(-1.0, long("5"), D(100), 1, 0)
    assert [(o.side, o.quantity, o.reduce_only) for o in made.orders] == [("SELL", D(5), True)]
    assert (made.outcome.allowed, made.outcome.reason) == (False, "max_order_notional")
    stops = RiskLimits("stops", D(6_000), D(1_000), 3, D(1), D("0.02"))
    exit_ = kernel(stops).decide(None, long("60"), D("97"), 1, 0)
    assert [(o.quantity, o.reason) for o in exit_.orders] == [(D(60), "stop_loss")], "an exit of 5,820 passes"
    assert kernel().decide(1.0, Book(), D(100), 1, 0, state="HALTED").outcome.reason == "trading_halted"
    reducing = kernel().decide(-1.0, long("50"), D(100), 1, 0, state="REDUCING")
    assert [o.reduce_only for o in reducing.orders] == [True]
    assert reducing.outcome.reason == "reduce_only"
    other = PairKernel("DOGE-USDT", "run-1", LIMITS, RULES, SIZING).decide(1.0, Book(), D(100), 1, 0)
    assert other.outcome.reason == "instrument_not_allowed"
    lever = RiskLimits("lever", D(60_000), D(60_000), 3, D("0.4"))
    assert kernel(lever).decide(1.0, Book(), D(100), 1, 0).outcome.reason == "max_leverage"  # 0.5 of equity
    sized = RiskLimits("position", D(4_000), D(60_000), 3, D(5))
    assert kernel(sized).decide(1.0, Book(), D(100), 1, 0).outcome.reason == "max_position_notional"


def test_orders_per_interval_count_the_legs_of_one_plan_and_earlier_plans() -> None:
    one = RiskLimits("one", D(60_000), D(60_000), 1, D(5))
    flip = kernel(one).decide(-0.5, long("50"), D(100), 1, 0)
    assert len(flip.orders) == 1
    assert flip.outcome.reason == "max_orders_per_interval"
    k = kernel(one)
    assert len(k.decide(0.5, Book(), D(100), 1, 0).orders) == 1
    assert k.decide(-0.5, long("50"), D(100), 2, 0).outcome.reason == "max_orders_per_interval"
    assert len(k.decide(-0.5, long("50"), D(100), 3, 60_000).orders) == 1, "a new interval counts afresh"


def test_the_account_sees_the_pairs_legs_and_its_denial_commits_the_prefix() -> None:
    k = kernel()
    proposal = k.propose(-0.5, long("50"), D(100), 4, 0)
    assert [(leg.after, leg.notional_after, leg.reduces_only) for leg in proposal.legs] == [
        (D(0), D(0), True),
        (D(-25), D(-2_500), False),
    ]
    made = k.commit(proposal, 1, RiskOutcome(False, "max_gross_exposure"))
    assert [o.leg for o in made.orders] == [0]
    assert made.outcome.reason == "max_gross_exposure"
    assert k.held_target is None, "a denied target is not held: the next decision tries again"


def test_below_the_venues_minimum_nothing_is_sent_but_a_full_close_is() -> None:
    assert kernel().decide(0.0001, Book(), D(100), 1, 0).orders == ()  # 0.025 contracts: 2.5 USDT < 5
    close = kernel().decide(0.0, long("0.01"), D(100), 1, 0)
    assert [(o.quantity, o.reduce_only) for o in close.orders] == [(D("0.01"), True)]


def test_projection_fills_working_orders_at_the_next_open_as_the_paper_venue_does() -> None:
    book = Book(D(10), D(100), D(0), D(0), 3, pending=D(-15))
    projected = project(book, [[(D(-10), D(110)), (D(-5), D(110))]], RULES)
    position = Position(D(10), D(100))
    for quantity in (D(10), D(5)):
        position.apply(market_fill("SELL", quantity, D(110), RULES))
    assert (projected.quantity, projected.entry_price) == (position.quantity, position.entry_price)
    assert (projected.realised, projected.fees, projected.pending) == (position.realised, position.fees, D(0))
    assert projected.bars_held == 1, "a flip restarts the count; the candle then counts one"
    held = project(Book(D(1), D(100), bars_held=3), [[], []], RULES)
    assert held.bars_held == 5
    filled, fills = fill_candle(book, [(D(-10), D(110)), (D(0), D(110)), (D(-5), D(110))], RULES)
    assert filled == projected
    assert fills == [market_fill("SELL", D(10), D(110), RULES), market_fill("SELL", D(5), D(110), RULES)]


def test_the_observation_is_the_state_features_of_the_book() -> None:
    book = Book(D(20), D(90), D(50), D(10), 144, pending=D(5))
    equity = 10_000 + 50 - 10 + 200
    expected = state_features(25.0, 200.0, equity, equity * 0.5, 100.0, 144)
    assert list(observation(book, D(100), SIZING)) == list(expected)
