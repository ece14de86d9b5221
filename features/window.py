"""A rolling window of the latest values of one series, read as a contiguous numpy slice."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class RollingWindow:
    """The last `size` values appended. Storage is twice the size, so `last(n)` is a slice (no copy)
    and the occasional move back to the start costs `size` copies every `size` appends."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a window holds at least one value")
        self.size = size
        self._values = np.full(2 * size, np.nan)
        self._end = 0
        self.count = 0
        """Values appended so far (not capped)."""

    def append(self, value: float) -> None:
        if self._end == len(self._values):
            self._values[: self.size - 1] = self._values[self._end - self.size + 1 : self._end]
            self._end = self.size - 1
        self._values[self._end] = value
        self._end += 1
        self.count += 1

    def full(self, n: int | None = None) -> bool:
        return self.count >= (self.size if n is None else n)

    def last(self, n: int | None = None) -> npt.NDArray[np.float64]:
        """The latest `n` values (all of the window by default), oldest first; fewer while filling."""
        n = self.size if n is None else n
        if n > self.size:
            raise ValueError(f"window of {self.size} cannot give {n} values")
        return self._values[max(0, self._end - min(n, self.count)) : self._end]

    def ago(self, bars: int) -> float:
        """The value `bars` appends ago (0: the latest), or NaN when not held."""
        if bars >= min(self.count, self.size):
            return float("nan")
        return float(self._values[self._end - 1 - bars])
