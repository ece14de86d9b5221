"""Walk-forward fold boundaries: properties over many layouts, and strict against lenient."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from learning.evaluation.folds import FoldError, FoldSpec, walk_forward_folds

layouts = st.builds(
    lambda rows, folds, purge, embargo, min_train: (rows, FoldSpec(folds, purge, embargo, min_train)),
    rows=st.integers(20, 50_000),
    folds=st.integers(1, 9),
    purge=st.integers(0, 500),
    embargo=st.integers(0, 500),
    min_train=st.integers(1, 20_000),
)


@given(layouts)
def test_no_training_row_lies_within_purge_and_embargo_of_a_test_row(layout: tuple[int, FoldSpec]) -> None:
    rows, spec = layout
    for fold in walk_forward_folds(rows, spec):
        gap = spec.purge_bars + spec.embargo_bars
        training = range(fold.train_start, fold.train_end)
        testing = range(fold.test_start, fold.test_end)
        # Every training row comes before every test row, by more than the gap; none overlaps.
        assert not set(training) & set(testing)
        if training:
            assert training[-1] < testing[0] - gap
            assert all(t < s - gap for t in (training[0], training[-1]) for s in (testing[0], testing[-1]))


@given(layouts)
def test_test_spans_cover_the_rows_after_the_first_block_exactly_once(layout: tuple[int, FoldSpec]) -> None:
    rows, spec = layout
    folds = walk_forward_folds(rows, spec)
    assert [fold.index for fold in folds] == list(range(1, spec.folds + 1))
    assert folds[0].test_start == rows // (spec.folds + 1)
    assert folds[-1].test_end == rows
    for before, after in itertools.pairwise(folds):
        assert before.test_end == after.test_start
    sizes = [fold.test_bars for fold in folds]
    assert max(sizes) - min(sizes) <= 1
    assert min(sizes) >= 2


@given(layouts)
def test_a_fold_is_skipped_exactly_when_it_trains_on_too_few_rows(layout: tuple[int, FoldSpec]) -> None:
    rows, spec = layout
    for fold in walk_forward_folds(rows, spec):
        assert (fold.skipped is not None) == (fold.train_bars < spec.min_train_bars)
        # Training windows are anchored at the first row and grow with the fold.
        assert fold.train_start == 0
        assert fold.train_end == max(0, fold.test_start - spec.purge_bars - spec.embargo_bars)


def test_strict_fails_where_lenient_skips() -> None:
    # 6,000 rows in 6 blocks of 1,000; a gap of 50. Fold 1 trains on 950 rows, fold 2 on 1,950.
    lenient = walk_forward_folds(6_000, FoldSpec(5, purge_bars=30, embargo_bars=20, min_train_bars=1_500))
    assert [fold.skipped is not None for fold in lenient] == [True, False, False, False, False]
    assert lenient[0].skipped is not None
    assert "950 training bars" in lenient[0].skipped
    assert (lenient[1].train_end, lenient[1].test_start, lenient[1].test_end) == (1_950, 2_000, 3_000)
    with pytest.raises(FoldError, match=r"fold 1: 950 training bars .* fewer than min_train_bars 1500 \(--strict\)"):
        walk_forward_folds(6_000, FoldSpec(5, 30, 20, 1_500, strict=True))
    assert walk_forward_folds(6_000, FoldSpec(5, 30, 20, 900, strict=True)) == walk_forward_folds(
        6_000, FoldSpec(5, 30, 20, 900)
    )


def test_impossible_layouts_are_refused() -> None:
    with pytest.raises(FoldError, match="cannot make 5 folds"):
        walk_forward_folds(11, FoldSpec(5))
    with pytest.raises(FoldError, match="at least 1"):
        FoldSpec(0)
    with pytest.raises(FoldError, match=">= 0"):
        FoldSpec(3, purge_bars=-1)
