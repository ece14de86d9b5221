"""In sample or out of sample: what an evaluation's spans are to the policy evaluated, read from the
lineage, so that a report never calls a replay of the training data "out-of-sample".

- A walk-forward fold's test rows are out of sample by construction: each fold's model is trained from
  scratch on rows before them only (the version's own artifact is not used).
- A plain backtest of an agent version: its artifact was trained on a dataset version (stored with the
  version). The evaluated rows whose bars overlap that dataset's time span, on the same pair, are in
  sample; the label says whether all, some (with the share) or none are.
- A baseline learns nothing from data: its spans are out of sample.
- A version whose training dataset is not known (not recorded, or deleted) is labelled `unknown`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Label = Literal["in_sample", "partly_in_sample", "out_of_sample", "unknown"]
Basis = Literal["walk_forward", "training_dataset", "baseline", "no_lineage"]
HEADLINES: dict[Label, str] = {
    "in_sample": "In-sample",
    "partly_in_sample": "Partly in-sample",
    "out_of_sample": "Out-of-sample",
    "unknown": "Sample unknown",
}


@dataclass(frozen=True)
class TrainingSpan:
    """The rows an artifact was trained on: a dataset version's pair, interval and open times."""

    dataset_id: str
    pair: str
    interval_ms: int
    start_ms: int
    end_ms: int
    """Open time of the last candle trained on (inclusive)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset_id": self.dataset_id,
            "pair": self.pair,
            "interval_ms": self.interval_ms,
            "from_ms": self.start_ms,
            "to_ms": self.end_ms,
        }


@dataclass(frozen=True)
class Sample:
    label: Label
    basis: Basis
    rows: int
    """Evaluated (test) rows."""
    in_sample_rows: int
    detail: str
    training: TrainingSpan | None = None
    folds: tuple[Label, ...] = ()
    """Each evaluated span's label, in fold order."""

    @property
    def in_sample_share(self) -> float:
        return self.in_sample_rows / self.rows if self.rows else 0.0

    @property
    def headline(self) -> str:
        return HEADLINES[self.label]

    @property
    def warning(self) -> str | None:
        """What the CLI prints on stderr, for anything but out-of-sample."""
        if self.label == "out_of_sample":
            return None
        return f"{self.headline.upper()}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "basis": self.basis,
            "rows": self.rows,
            "in_sample_rows": self.in_sample_rows,
            "in_sample_share": self.in_sample_share,
            "detail": self.detail,
            "training": None if self.training is None else self.training.to_json(),
            "folds": list(self.folds),
        }


def walk_forward_sample(spans: Sequence[npt.NDArray[np.int64]]) -> Sample:
    rows = sum(len(span) for span in spans)
    return Sample(
        "out_of_sample",
        "walk_forward",
        rows,
        0,
        "each fold's model was trained from scratch on rows before its test span only",
        folds=_each("out_of_sample", spans),
    )


def baseline_sample(spans: Sequence[npt.NDArray[np.int64]]) -> Sample:
    rows = sum(len(span) for span in spans)
    return Sample(
        "out_of_sample",
        "baseline",
        rows,
        0,
        "a baseline policy is fitted to no data",
        folds=_each("out_of_sample", spans),
    )


def backtest_sample(
    subject: str,
    pair: str,
    interval_ms: int,
    spans: Sequence[npt.NDArray[np.int64]],
    training: TrainingSpan | None,
) -> Sample:
    """An artifact evaluated on the bars opening at `spans` (open times in ms, per span) of `pair`:
    in sample where a bar overlaps the time span the artifact was trained on, on the same pair."""
    rows = sum(len(span) for span in spans)
    if training is None:
        return Sample(
            "unknown",
            "no_lineage",
            rows,
            0,
            f"{subject} has no recorded training dataset: these rows may be the ones it was trained on",
            folds=_each("unknown", spans),
        )
    counts = [_overlapping(span, interval_ms, training) if pair == training.pair else 0 for span in spans]
    labels = tuple(_label(count, len(span)) for count, span in zip(counts, spans, strict=True))
    inside = sum(counts)
    label = _label(inside, rows)
    trained_on = (
        f"dataset {training.dataset_id} ({training.pair}, {_iso(training.start_ms)} to {_iso(training.end_ms)})"
    )
    if label == "out_of_sample":
        why = "another pair" if pair != training.pair else "a span that no evaluated bar overlaps"
        detail = f"{subject} was trained on {trained_on}, {why}"
    else:
        detail = (
            f"{subject} was trained on {trained_on}, which covers {inside:,} of the {rows:,} evaluated rows "
            f"({inside / rows:.0%}): those results are in-sample, not out-of-sample; evaluate on later data or "
            "run a walk-forward (--folds)"
        )
    return Sample(label, "training_dataset", rows, inside, detail, training, labels)


def _overlapping(open_ms: npt.NDArray[np.int64], interval_ms: int, training: TrainingSpan) -> int:
    """Bars [t, t + interval) that meet the training bars' time span [start, end + its interval)."""
    trained_until = training.end_ms + training.interval_ms
    return int(np.count_nonzero((open_ms < trained_until) & (open_ms + interval_ms > training.start_ms)))


def _each(label: Label, spans: Sequence[npt.NDArray[np.int64]]) -> tuple[Label, ...]:
    return tuple(label for _ in spans)


def _label(inside: int, rows: int) -> Label:
    if inside == 0:
        return "out_of_sample"
    return "in_sample" if inside == rows else "partly_in_sample"


def _iso(time_ms: int) -> str:
    return str(np.datetime64(int(time_ms), "ms").astype("datetime64[m]")).replace("T", " ")
