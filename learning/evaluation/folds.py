"""Walk-forward folds over a dataset's rows (anchored, expanding training window).

The rows are cut into `folds + 1` contiguous blocks of equal size (the first ones one row shorter when
the rows do not divide evenly). Block 0 is only ever trained on. Fold k (1..folds) tests block k out of
sample, and trains on every row before it except the last `purge_bars + embargo_bars`:

    rows:   [ block 0 | block 1 | block 2 | ... | block N ]
    fold 2: [ train ........ ]gap[ test  ]

- `purge_bars` drop the training rows whose outcome could reach into the test span (a reward or a
  feature horizon that ends after the test starts).
- `embargo_bars` widen that gap further against serial correlation between the last training rows and
  the first test rows.

So no training row lies within `purge_bars + embargo_bars` rows before a test row, and none after it.
The test blocks cover the rows from block 1 to the end exactly once, in order.

A fold whose training window is shorter than `min_train_bars` is skipped and reported as such, or,
with `strict`, fails the whole evaluation before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_TEST_BARS = 2
"""A decision needs the next bar to fill and mark it."""


class FoldError(ValueError):
    """The fold layout is impossible (too few rows) or, with `strict`, a fold is too short to train."""


@dataclass(frozen=True)
class FoldSpec:
    folds: int
    purge_bars: int = 0
    embargo_bars: int = 0
    min_train_bars: int = 1
    strict: bool = False

    def __post_init__(self) -> None:
        if self.folds < 1:
            raise FoldError("folds must be at least 1")
        if min(self.purge_bars, self.embargo_bars) < 0 or self.min_train_bars < 1:
            raise FoldError("purge_bars and embargo_bars must be >= 0, min_train_bars >= 1")

    def to_json(self) -> dict[str, int | bool]:
        return {
            "folds": self.folds,
            "purge_bars": self.purge_bars,
            "embargo_bars": self.embargo_bars,
            "min_train_bars": self.min_train_bars,
            "strict": self.strict,
        }


@dataclass(frozen=True)
class Fold:
    index: int
    """1-based."""
    train_start: int
    train_end: int
    """Exclusive; `train_end - train_start` training rows (possibly fewer than required: see `skipped`)."""
    test_start: int
    test_end: int
    skipped: str | None = None
    """Why the fold is not evaluated; None when it is."""

    @property
    def train_bars(self) -> int:
        return max(0, self.train_end - self.train_start)

    @property
    def test_bars(self) -> int:
        return self.test_end - self.test_start

    def to_json(self) -> dict[str, int | str | None]:
        return {
            "fold": self.index,
            "train_start": self.train_start,
            "train_end": self.train_end,
            "test_start": self.test_start,
            "test_end": self.test_end,
            "skipped": self.skipped,
        }


def walk_forward_folds(rows: int, spec: FoldSpec) -> list[Fold]:
    blocks = spec.folds + 1
    if rows < blocks * MIN_TEST_BARS:
        raise FoldError(
            f"{rows} rows cannot make {spec.folds} folds: each of the {blocks} blocks needs {MIN_TEST_BARS} rows"
        )
    bounds = [rows * k // blocks for k in range(blocks + 1)]
    gap = spec.purge_bars + spec.embargo_bars
    folds: list[Fold] = []
    for k in range(1, blocks):
        test_start, test_end = bounds[k], bounds[k + 1]
        train_end = max(0, test_start - gap)
        skipped = None
        if train_end < spec.min_train_bars:
            skipped = (
                f"{train_end} training bars before the test span (after a gap of {gap}), "
                f"fewer than min_train_bars {spec.min_train_bars}"
            )
            if spec.strict:
                raise FoldError(f"fold {k}: {skipped} (--strict)")
        folds.append(Fold(k, 0, train_end, test_start, test_end, skipped))
    return folds
