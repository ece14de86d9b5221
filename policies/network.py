"""The exported policy network in plain numpy, float32 like the torch module it was exported from.

One decision is a few small matrix products: a fraction of the same network's time in torch
(`benchmarks/agents.py`, figures in docs/performance.md), and no torch in the live actors (a Ray actor
that imports torch costs about 260 MiB more)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from policies.artifact import Layer

Floats32 = npt.NDArray[np.float32]


class NumpyNetwork:
    def __init__(self, layers: tuple[Layer, ...]) -> None:
        self._layers = tuple((layer.weight, layer.bias, layer.activation) for layer in layers)

    def logits(self, inputs: Floats32) -> Floats32:
        """Inputs: one vector or a batch of rows."""
        x = inputs.astype(np.float32, copy=False)
        for weight, bias, activation in self._layers:
            x = x @ weight + bias
            if activation == "tanh":
                x = np.tanh(x)
            elif activation == "relu":
                x = np.maximum(x, np.float32(0))
        return x


def greedy(logits: Floats32) -> tuple[int, float]:
    """The most probable action of one decision and its softmax probability (a handful of logits:
    plain Python floats are faster than numpy here)."""
    values = logits.tolist()
    best = max(range(len(values)), key=values.__getitem__)
    top = values[best]
    return best, 1.0 / sum(math.exp(value - top) for value in values)
