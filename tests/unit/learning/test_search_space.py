"""The search's configurations: distinct, drawn from the space by a seeded generator, all of it when it is
small, and the same for the same seed."""

from __future__ import annotations

from learning.search import sample_configurations

SPACE = {"reward.turnover_penalty": [0.0, 0.001, 0.002], "environment.min_hold_bars": [0, 6]}


def test_a_small_space_is_searched_whole_in_order() -> None:
    assert sample_configurations(SPACE, 10, 0) == [
        {"environment.min_hold_bars": hold, "reward.turnover_penalty": turnover}
        for turnover in (0.0, 0.001, 0.002)
        for hold in (0, 6)
    ]


def test_a_larger_space_gives_distinct_configurations_fixed_by_the_seed() -> None:
    first = sample_configurations(SPACE, 4, 7)
    assert len(first) == 4
    assert len({tuple(sorted(choice.items())) for choice in first}) == 4
    assert all(set(choice) == set(SPACE) for choice in first)
    assert sample_configurations(SPACE, 4, 7) == first
    assert any(sample_configurations(SPACE, 4, seed) != first for seed in range(8))


def test_an_empty_space_is_one_configuration() -> None:
    assert sample_configurations({}, 3, 0) == [{}]
