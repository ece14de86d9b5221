"""Per-feature mean and standard deviation of a dataset: stored with the dataset, shipped with every
model trained on it, used to scale the model's inputs and by the quality gate to recognise inputs far
outside what the model has seen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
SCALE_CLIP = 10.0
"""Scaled inputs beyond 10 standard deviations carry no more information; the quality gate holds on
them anyway (`RL_FEATURE_OOD_ZSCORE_LIMIT`, default 8)."""


@dataclass(frozen=True, eq=False)
class NormalizationStats:
    names: tuple[str, ...]
    mean: Floats
    std: Floats
    rows: int
    _spread: Floats = field(init=False, repr=False)
    _centre: Floats = field(init=False, repr=False)
    _flat: npt.NDArray[np.bool_] = field(init=False, repr=False)

    @classmethod
    def of(cls, names: Sequence[str], features: Floats) -> NormalizationStats:
        """Statistics of the finite values of each column (population standard deviation)."""
        if features.ndim != 2 or features.shape[1] != len(names):
            raise ValueError(f"expected a matrix with {len(names)} columns, got shape {features.shape}")
        finite = np.isfinite(features)
        counts = finite.sum(axis=0)
        safe = np.where(finite, features, 0.0)
        mean = np.divide(safe.sum(axis=0), counts, out=np.full(len(names), np.nan), where=counts > 0)
        centred = np.where(finite, features - mean, 0.0)
        variance = np.divide((centred**2).sum(axis=0), counts, out=np.full(len(names), np.nan), where=counts > 0)
        return cls(tuple(names), mean, np.sqrt(variance), len(features))

    def zscores(self, names: Sequence[str], values: Floats) -> Floats:
        """|value - mean| / std per feature, for the features these statistics know; NaN for a feature
        without spread (a constant in training says nothing about scale)."""
        index = {name: i for i, name in enumerate(self.names)}
        z = np.full(len(names), np.nan)
        for j, name in enumerate(names):
            i = index.get(name)
            if i is not None and self.std[i] > 0:
                z[j] = (values[j] - self.mean[i]) / self.std[i]
        return z

    def __post_init__(self) -> None:
        # Precomputed once: `scale` runs per live decision.
        spread = self.std > 0
        object.__setattr__(self, "_spread", np.where(spread, self.std, 1.0))
        object.__setattr__(self, "_centre", np.where(spread, self.mean, 0.0))
        object.__setattr__(self, "_flat", ~spread)

    def scale(self, values: Floats, clip: float = SCALE_CLIP) -> Floats:
        """Model inputs: (value - mean) / std per column, clipped to +-`clip`; 0 (the mean) where a value
        is missing or a column had no spread. Rows or single vectors, columns in `names` order. The one
        scaling for training observations and live decisions."""
        scaled: Floats = (values - self._centre) / self._spread
        scaled[..., self._flat] = 0.0
        np.clip(scaled, -clip, clip, out=scaled)
        scaled[np.isnan(scaled)] = 0.0
        return scaled

    def to_json(self) -> dict[str, object]:
        return {
            "names": list(self.names),
            "mean": [None if not np.isfinite(x) else float(x) for x in self.mean],
            "std": [None if not np.isfinite(x) else float(x) for x in self.std],
            "rows": self.rows,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, object]) -> NormalizationStats:
        names = document.get("names")
        mean, std, rows = document.get("mean"), document.get("std"), document.get("rows")
        if not (isinstance(names, list) and isinstance(mean, list) and isinstance(std, list) and isinstance(rows, int)):
            raise ValueError("normalisation statistics need names, mean, std and rows")
        if not len(names) == len(mean) == len(std):
            raise ValueError("normalisation statistics: names, mean and std differ in length")
        return cls(tuple(str(n) for n in names), _floats(mean), _floats(std), rows)


def _floats(values: list[object]) -> Floats:
    """JSON numbers back to floats; null (a column without finite values) back to NaN."""
    out = np.full(len(values), np.nan)
    for i, value in enumerate(values):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[i] = value
        elif value is not None:
            raise ValueError(f"normalisation statistics: {value!r} is not a number")
    return out
